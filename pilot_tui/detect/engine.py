"""The detector: lines in, :class:`~pilot_tui.model.ThreatEvent` s out.

::

    rules = load_rules(packs=("sshd", "sudo", "web", "portscan"), rules_file=None)
    detector = Detector(rules, allowlist=["10.0.0.0/8"], sensor="web-1", group_ipv6_64=False)
    events = detector.feed(line, log="/var/log/auth.log", now=None)

Each filter is one compiled alternation (see :mod:`.rules`); a line is searched by every filter whose ``require``
literal it contains, and the matching pattern's rules count it in their windows (:mod:`.window`). The offline scanner
(:mod:`.chunkscan`) finds matches in whole chunks instead of line by line but hands every matched line to the same
loop, :meth:`Detector._count`, so both paths give the same events — a test checks it on generated logs. Events are
built by :class:`~.events.EventFactory`, which gives exactly what :func:`~pilot_tui.model.make_event` gives without
re-validating what the detector guarantees.

The detector is not thread-safe and keeps only bounded state (windows, address and time caches, logins).
``seq`` of the events is left ``None``: the oracle engine numbers what it sends.
"""

from __future__ import annotations

import re
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pilot_tui.model import ThreatEvent, ValidationError, make_event

from .addr import AddressBook
from .events import MAX_USER_CHARS, EventFactory, event_log
from .multiline import UNTRACKED, Connections, kind_of
from .rules import FilterSpec, Match, Regex, Rule, RuleSet, compile_regex
from .timeparse import FUTURE_SLACK, SECONDS, LineClock, iso_utc
from .window import DEFAULT_MAX_KEYS, RulePlan, Tracker

MAX_REPEAT = 100_000
"""Cap on one line's weight ("message repeated N times", a ``count`` group): N is text an attacker may shape."""


MAX_LOGINS = 10_000

LOCAL_SOURCE = "127.0.0.1"
"""Source address of a user-keyed event (sudo) when the user's SSH login address is unknown."""

MAX_IP_COUNTS = 200_000
"""Addresses whose hits :attr:`DetectorStats.ip_hits` counts; later newcomers are not counted (memory stays bounded)."""

_NAMED_GROUP_RE = re.compile(r"(?<!\\)((?:\\\\)*)\(\?P([<=])([A-Za-z_]\w*)")


@dataclass(slots=True)
class PatternInfo:
    """What the engine needs to know about one branch of a compiled filter (group indexes; -1 = absent)."""

    qualified: str
    ip: int
    user: int
    repeat: int
    count: int
    login: bool
    rules: tuple[tuple[RulePlan, int], ...]  # (the rule's plan, group index of rule.distinct or -1)
    hits: int = 0


Branch = tuple[PatternInfo, int, int, int, int, bool, tuple[tuple[RulePlan, int], ...], int]
"""A :class:`PatternInfo` with its fields: (info, ip, user, repeat, count, login, rules, kind) — ``kind`` being the
pattern's :mod:`.multiline` kind bits (read in connection-tracked filters only)."""


class CompiledFilter:
    """A filter's patterns merged into one regex; ``branches`` maps ``match.lastindex`` to the pattern matched."""

    def __init__(self, spec: FilterSpec, rules: Iterable[RulePlan], index: int = 0) -> None:
        self.spec = spec
        self.index = index  # position among the detector's filters
        self.name = spec.name
        self.require = spec.require
        # Each branch ends in an empty marker group, the last group it closes, so ``match.lastindex`` names the
        # branch. A marker at the end rather than a group around the branch keeps the branch's first literal first,
        # where ``re`` skips a branch whose first character cannot match without entering it (a fifth less
        # matching time on sshd lines); the language matched is the same.
        parts = [f"(?:{_rename_groups(p.regex, i)})(?P<_b{i}>)" for i, p in enumerate(spec.patterns)]
        # user filters run on RE2 (linear time), built-in packs on re: see rules.compile_regex
        self.rx: Regex = compile_regex(spec, spec.prefix + "(?:" + "|".join(parts) + ")")
        groupindex = self.rx.groupindex
        rules = list(rules)
        self.branches: dict[int, PatternInfo] = {}
        # match.lastindex -> the branch's PatternInfo and its fields, unpacked in one step on the hot path
        self.by_index: list[Branch | None] = [None] * (self.rx.groups + 1)
        self.conn = groupindex.get("conn", -1)
        """Group of the connection id (sshd's pid) when the filter ties lines of a connection together, else -1."""
        for i, p in enumerate(spec.patterns):

            def group(name: str, i: int = i) -> int:
                return groupindex.get(f"_g{i}_{name}", groupindex.get(name, -1))

            mine = tuple(
                (plan, group(plan.rule.distinct) if plan.rule.distinct else -1)
                for plan in rules
                if p.id in plan.rule.patterns
            )
            info = PatternInfo(
                f"{spec.name}/{p.id}",
                group("ip"),
                group("user"),
                group("repeat"),
                group("count"),
                p.login,
                mine,
            )
            self.branches[groupindex[f"_b{i}"]] = info
            self.by_index[groupindex[f"_b{i}"]] = (
                info,
                info.ip,
                info.user,
                info.repeat,
                info.count,
                info.login,
                mine,
                kind_of(p.nofail, p.success, p.closes, p.login),
            )


def _rename_groups(regex: str, i: int) -> str:
    """Give pattern ``i``'s named groups unique names (``ip`` → ``_g3_ip``) so branches can share one regex."""
    return _NAMED_GROUP_RE.sub(lambda m: f"{m.group(1)}(?P{m.group(2)}_g{i}_{m.group(3)}", regex)


@dataclass(slots=True)
class DetectorStats:
    """Counters for ``scan`` summaries and the oracle's status line. ``matched_lines`` are lines; ``ip_hits`` are the
    failures counted per address (a line's weight: "message repeated 4 times" is 4; a context line that is no
    failure, such as pam_unix's in sshd, is none — see :mod:`.multiline`)."""

    lines: int = 0
    matched_lines: int = 0
    ip_hits: Counter[str] = field(default_factory=Counter)
    ip_times: dict[str, list[float]] = field(default_factory=dict)
    """Per address of ``ip_hits``: [first, last] time of its counted failures (``scan`` lists them)."""
    allowlisted: int = 0
    bad_ip: int = 0
    events: int = 0


class Detector:
    """Applies a :class:`RuleSet` to log lines and returns the events that are due (see the module doc).

    ``allowlist`` holds addresses and CIDR networks never reported; ``group_ipv6_64`` counts IPv6 sources per /64
    (the event then names the last address seen); ``count_ips`` keeps per-address hit counts for summaries (for at
    most :data:`MAX_IP_COUNTS` addresses, so it is safe to leave on in a long-running oracle).
    """

    def __init__(
        self,
        rules: RuleSet,
        allowlist: Iterable[str] = (),
        sensor: str | None = None,
        group_ipv6_64: bool = False,
        max_keys: int = DEFAULT_MAX_KEYS,
        count_ips: bool = True,
    ) -> None:
        if sensor is not None:
            try:
                make_event(LOCAL_SOURCE, "check", "info", sensor=sensor)
            except ValidationError as exc:
                raise ValueError(f"sensor name {sensor!r}: {exc.detail}") from None
        self.rules = rules
        self.sensor = sensor
        self.addresses = AddressBook(allowlist, group_ipv6_64)
        self.tracker = Tracker(max_keys)
        self.clock = LineClock()
        self.stats = DetectorStats()
        self.count_ips = count_ips
        self.logins: OrderedDict[str, str] = OrderedDict()
        self._addr_cache = self.addresses._cache  # read directly on the hot path; resolve() fills it
        self._rule_hits = [0] * len(rules.rules)
        self.event_factory = EventFactory(sensor, rules.rules)
        self.plans = [RulePlan(i, r) for i, r in enumerate(rules.rules)]
        self.filters: tuple[CompiledFilter, ...] = tuple(
            CompiledFilter(spec, [p for p in self.plans if p.rule.filter == spec.name], i)
            for i, spec in enumerate(rules.filters)
        )
        self.connections: dict[int, Connections] = {cf.index: Connections() for cf in self.filters if cf.conn >= 0}
        """Open connections per connection-tracked filter (by index): which matched lines are failures."""

    def feed(self, line: str, log: str, now: float | None = None) -> list[ThreatEvent]:
        """Process one line (without or with its line ending) from ``log``; return the events it triggers.

        ``now`` is the wall-clock time used for lines that carry no timestamp and as the reference year for syslog
        times; ``None`` means :func:`time.time`.
        """
        ref = time.time() if now is None else now
        line = line.rstrip("\r\n")
        self.stats.lines += 1
        events: list[ThreatEvent] = []
        matched = False
        for cf in self.filters:
            if cf.require is not None and cf.require not in line:
                continue
            m = cf.rx.search(line)
            if m is not None:
                matched = True
                self._count(cf, ((m, line),), log, ref, events)
        if matched:
            self.stats.matched_lines += 1
        return events

    def rule_hits(self) -> dict[str, int]:
        """Lines counted per rule (after the allowlist), as rule name → count."""
        return {rule.name: n for rule, n in zip(self.rules.rules, self._rule_hits, strict=True)}

    def pattern_hits(self) -> dict[str, int]:
        """Lines matched per pattern, as ``filter/pattern`` → count."""
        return {info.qualified: info.hits for cf in self.filters for info in cf.branches.values()}

    def _count(
        self,
        cf: CompiledFilter,
        found: Iterable[tuple[Match, str]],
        log: str,
        ref: float,
        out: list[ThreatEvent],
    ) -> None:
        """Count matched lines of filter ``cf`` — ``(match, line)`` pairs, in log order — appending events to ``out``.

        Shared by :meth:`feed` (one pair) and the chunk scanner (a run of one filter's matches, often thousands):
        both paths run this very loop, which is why they give the same events. It runs once per matching line of a
        scan, so everything it touches is hoisted into locals first, and the common cases (a known address, a
        syslog minute seen before) are dict lookups.
        """
        by_index = cf.by_index
        addr_cache = self._addr_cache
        resolve = self.addresses.resolve
        stats = self.stats
        minutes = self.clock.minutes_for(ref)
        late = ref + FUTURE_SLACK  # a syslog time past this belongs to the previous year (see timeparse)
        line_time = self.clock.line_time
        ip_hits = stats.ip_hits if self.count_ips else None
        ip_times = stats.ip_times
        logins = self.logins
        rule_hits = self._rule_hits
        hit = self.tracker.hit
        conns = self.connections.get(cf.index)  # None unless the filter ties lines of a connection together
        judge = conns.judge if conns is not None else None
        conn_group = cf.conn
        for m, line in found:
            info, ip_group, user_group, repeat_group, count_group, login, plans, kind = by_index[m.lastindex]  # type: ignore[index,misc]  # a match always closes its branch marker: lastindex set, entry filled
            info.hits += 1
            addr = key_ip = None
            text = m.group(ip_group) if ip_group >= 0 else None
            user = m.group(user_group) if user_group >= 0 else None
            failure = True
            if judge is not None:  # one attempt, several lines: the connection decides which line is a failure
                judged = None if kind & UNTRACKED else judge(m.group(conn_group), kind, text, user)
                if judged is None:
                    failure = False
                else:
                    text, user = judged
            if text is not None:
                res = addr_cache.get(text)
                if res is None:
                    res = resolve(text)
                if res is None:
                    stats.bad_ip += 1
                elif res is False:
                    stats.allowlisted += 1
                    continue
                else:
                    addr, key_ip = res
            if login:
                if user and addr:
                    self.remember_login(user, addr)
                if not plans:
                    continue
            if not failure:
                continue
            weight = 1
            if repeat_group >= 0:
                rep = m.group(repeat_group)
                if rep:
                    weight = min(int(rep), MAX_REPEAT)
            if count_group >= 0:
                cnt = m.group(count_group)
                if cnt:
                    weight = min(weight * int(cnt), MAX_REPEAT)
            if weight <= 0:
                continue
            ts: float | None  # the event's time: None only until the fallback to ``ref`` below
            pair = minutes.get(line[:12])  # LineClock.line_time's own lookups, without the calls
            if pair is not None and (sec := SECONDS.get(line[13:15])) is not None:
                ts = pair[0] + sec
                if ts > late:
                    ts = pair[1] + sec
            else:
                ts = line_time(line, ref)
                if ts is None:
                    ts = ref
            if addr is not None and ip_hits is not None:
                n = ip_hits.get(addr)
                if n is not None:
                    ip_hits[addr] = n + weight
                    span = ip_times.get(addr)
                    if span is not None:
                        if ts > span[1]:
                            span[1] = ts
                        elif ts < span[0]:
                            span[0] = ts
                elif len(ip_hits) < MAX_IP_COUNTS:  # bounded for a long-running oracle
                    ip_hits[addr] = weight
                    ip_times[addr] = [ts, ts]
            for plan, distinct in plans:
                if plan.by_ip:
                    if key_ip is None:
                        continue
                    key, source = key_ip, addr
                else:
                    if not user:
                        continue
                    key, source = user, addr or logins.get(user)
                rule_hits[plan.index] += 1
                fire = hit(
                    plan, key, ts, weight, m.group(distinct) if distinct >= 0 else None, line, user, source
                )
                if fire is not None:
                    st = fire.state
                    out.append(self._event(plan.rule, fire.count, st.ip, st.user, st.evidence, log, iso_utc(ts)))

    def remember_login(self, user: str, addr: str) -> None:
        """A successful login: sudo-style rules keyed by user then know the address (bounded, most recent kept)."""
        logins = self.logins
        logins[user] = addr
        logins.move_to_end(user)
        if len(logins) > MAX_LOGINS:
            logins.popitem(last=False)

    def _event(
        self,
        rule: Rule,
        count: int,
        ip: str | None,
        user: str | None,
        evidence: Iterable[str],
        log: str,
        ts: str,
    ) -> ThreatEvent:
        event = self.event_factory.build(
            rule,
            ip or LOCAL_SOURCE,
            rule.severity_for(count),
            count,
            ts,
            user[:MAX_USER_CHARS] if user else None,
            event_log(log),
            evidence,
        )
        self.stats.events += 1
        return event
