"""Sliding windows with fail2ban's semantics, plus a cooldown and escalation so a long attack is one story, not spam.

Per (rule, key) — key is an address, an IPv6 /64 or a user name — we keep the hits of the last ``findtime`` seconds:

* **fire** when the count reaches ``maxretry`` (fail2ban's ban moment);
* then **cooldown**: no new event for ``cooldown`` seconds, however many more lines arrive;
* **escalate**: during the cooldown, a count at least twice the last reported one sends an update (new event, higher
  count, perhaps a higher severity) and restarts the cooldown;
* after the cooldown the next hit that still has ``maxretry`` in the window fires again (the attack goes on). With
  ``cooldown >= findtime`` (the default) those are all new hits, as after a fail2ban unban.

Hits are kept per whole second (a bucket of [second, weight]), so one key holds at most ``findtime`` buckets however
fast it is attacked; distinct-value rules keep value → last second, capped at :data:`MAX_DISTINCT`. Keys live in an
LRU of at most ``max_keys``; idle keys whose window and cooldown are both over are swept as time moves on. Memory is
therefore bounded whatever the log holds.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from pilot_tui.model import MAX_EVIDENCE_LINE_CHARS, MAX_EVIDENCE_LINES

from .rules import Rule

DEFAULT_MAX_KEYS = 100_000
"""Tracked (rule, key) pairs before the least recently hit one is dropped."""

MAX_DISTINCT = 4096
"""Distinct values remembered per key (a port scan of 65,535 ports still fires long before this)."""

SWEEP_EVERY = 4096
"""Hits between sweeps of expired keys."""


class KeyState:
    """Window and alert state of one (rule, key)."""

    __slots__ = (
        "buckets",
        "total",
        "values",
        "last",
        "expires",
        "fired_count",
        "fired_at",
        "evidence",
        "user",
        "ip",
    )

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0
        self.values: OrderedDict[str, int] | None = None
        self.last = float("-inf")
        self.expires = float("-inf")
        self.fired_count = 0
        self.fired_at = float("-inf")
        self.evidence: deque[str] = deque(maxlen=MAX_EVIDENCE_LINES)
        self.user: str | None = None
        self.ip: str | None = None


@dataclass(frozen=True, slots=True)
class Fire:
    """A window decision: report ``count`` hits now; ``escalation`` when it updates an earlier report."""

    count: int
    escalation: bool
    state: KeyState


class RulePlan:
    """What :meth:`Tracker.hit` reads of a rule, flattened once per detector (``index`` = the rule's position).

    ``span`` is how long a key stays alive after a hit: its window or its cooldown, whichever is longer.
    """

    __slots__ = ("index", "rule", "findtime", "cooldown", "span", "maxretry", "distinct", "by_ip")

    def __init__(self, index: int, rule: Rule) -> None:
        self.index = index
        self.rule = rule
        self.findtime = rule.findtime
        self.cooldown = rule.cooldown
        self.span = rule.findtime if rule.findtime > rule.cooldown else rule.cooldown
        self.maxretry = rule.maxretry
        self.distinct = bool(rule.distinct)
        self.by_ip = rule.key == "ip"


class Tracker:
    """All windows of one detector; :meth:`hit` is called once per counted line, in log order."""

    __slots__ = ("max_keys", "states", "_since_sweep", "evicted")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.max_keys = max_keys
        self.states: OrderedDict[tuple[int, str], KeyState] = OrderedDict()
        self._since_sweep = 0
        self.evicted = 0

    def hit(
        self,
        plan: RulePlan,
        key: str,
        ts: float,
        weight: int,
        value: str | None,
        line: str,
        user: str | None,
        ip: str | None,
    ) -> Fire | None:
        """Count one line for ``key`` at time ``ts``; return a :class:`Fire` when an event is due.

        Runs for every counted line of a scan: the common case (a known key, a hit in the same second as the
        last) is the straight path, and rule fields come from the flattened ``plan``.
        """
        states = self.states
        skey = (plan.index, key)
        st = states.get(skey)
        if st is None or st.expires < ts:
            if st is not None:
                # window and cooldown both over: start afresh, exactly as if the sweep had already dropped the key
                del states[skey]
            st = states[skey] = KeyState()
            if plan.distinct:
                st.values = OrderedDict()
            if len(states) > self.max_keys:
                states.popitem(last=False)
                self.evicted += 1
        else:
            states.move_to_end(skey)
        now = st.last
        if ts > now:  # a line from the past must not rewind the window
            now = st.last = ts
        st.expires = now + plan.span
        cutoff = now - plan.findtime
        values = st.values
        if values is None:
            sec = int(ts)
            buckets = st.buckets
            tail = buckets[-1] if buckets else None
            if tail is not None and tail[0] == sec:
                tail[1] += weight
            else:
                buckets.append([sec, weight])
            count = st.total + weight
            while buckets[0][0] <= cutoff:
                count -= buckets.popleft()[1]
                if not buckets:
                    break
            st.total = count
        else:
            value = value or ""
            if value in values:
                del values[value]
            values[value] = int(ts)
            if len(values) > MAX_DISTINCT:
                values.popitem(last=False)
            while values:
                first = next(iter(values.values()))
                if first > cutoff:
                    break
                values.popitem(last=False)
            count = len(values)
        st.evidence.append(line[:MAX_EVIDENCE_LINE_CHARS])
        if user:
            st.user = user
        if ip:
            st.ip = ip
        since = self._since_sweep + 1
        if since >= SWEEP_EVERY:
            self._sweep(now)
        else:
            self._since_sweep = since
        if count < plan.maxretry:
            return None
        fired = st.fired_count
        if fired == 0 or now - st.fired_at >= plan.cooldown:
            escalation = False
        elif count >= 2 * fired:
            escalation = True
        else:
            return None
        st.fired_count = count
        st.fired_at = now
        return Fire(count, escalation, st)

    def _sweep(self, now: float) -> None:
        """Drop least-recently-hit keys whose window and cooldown have both run out."""
        self._since_sweep = 0
        states = self.states
        while states:
            first = next(iter(states.values()))
            if first.expires >= now:
                break
            states.popitem(last=False)

    def __len__(self) -> int:
        return len(self.states)
