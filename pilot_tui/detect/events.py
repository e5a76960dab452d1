"""Building the detector's events without re-validating what the detector already guarantees.

:func:`pilot_tui.model.make_event` validates every field the way a *received* event is validated (it round-trips
through :func:`~pilot_tui.model.event_from_obj`): right for events built from untrusted input, but a scan of a
busy log fires tens of thousands of events, and re-checking constant rule fields, re-parsing canonical addresses
and re-parsing timestamps cost more than detecting them did.

:class:`EventFactory` checks the constant part once per rule (name, anomaly, ``window_s``, the sensor) by building
a sample event with ``make_event``. At fire time only what varies is checked, cheaply: types, the count's range,
the severity, lengths, and — once per distinct value, remembered in bounded sets — that the source address is
canonical (it always is: :class:`~pilot_tui.detect.addr.AddressBook` made it) and that the timestamp's second
parses. Anything outside that envelope (a rule built in code that would not validate, a count past 2**53, a year
before 1000) goes through ``make_event`` itself, so the outcome — event or :class:`~pilot_tui.model.ValidationError`
— is always what ``make_event`` gives; ``tests/test_detect_events.py`` checks the two agree field by field.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from ipaddress import ip_address
from itertools import repeat
from os import urandom

from pilot_tui.model import (
    MAX_EVIDENCE_LINE_CHARS,
    MAX_EVIDENCE_LINES,
    SCHEMA,
    SEVERITY_RANK,
    ThreatEvent,
    ValidationError,
    make_event,
)

from .rules import Rule

MAX_COUNT = 2**53
"""Largest ``count`` the wire model accepts (JSON consumers lose integer precision above it)."""

MAX_USER_CHARS = 128
MAX_LOG_CHARS = 1024
MAX_ADDRESSES = 100_000
"""Canonical addresses (and valid timestamp seconds) remembered; cleared when full (bounded in a long-running oracle)."""

_TS_LEN = len("2026-11-25T12:00:01.000Z")
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def event_log(log: str) -> str | None:
    """The ``log`` field of a detector's event for lines read from ``log``: cut to the wire limit, None if empty."""
    return log[:MAX_LOG_CHARS] or None


def new_event_id() -> str:
    """A random UUID (version 4) in canonical text form — what ``str(uuid.uuid4())`` gives, in a third of the time.

    The version nibble is set to 4 and the variant bits to RFC 4122's ``10``, exactly as ``uuid.UUID(bytes=…,
    version=4)`` does; the other 122 bits are random.
    """
    h = urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class EventFactory:
    """Builds the :class:`ThreatEvent` of a fired rule; see the module doc for what is trusted and why."""

    def __init__(self, sensor: str | None, rules: Iterable[Rule] = ()) -> None:
        self.sensor = sensor
        self._trusted: dict[int, bool] = {}  # id(rule) -> its constant fields validate
        self._rules: list[Rule] = []  # keeps the rules checked alive, so their ids stay theirs
        self._addresses: set[str] = set()  # source addresses seen to be canonical
        self._heads: set[str] = set()  # "YYYY-MM-DDTHH:MM:SS." parts of timestamps seen to be valid
        for rule in rules:
            self._check_rule(rule)

    def build(
        self,
        rule: Rule,
        source_ip: str,
        severity: str,
        count: int,
        ts: str,
        user: str | None,
        log: str | None,
        evidence: Iterable[str],
        event_id: str | None = None,
    ) -> ThreatEvent:
        """Exactly what ``make_event`` returns (or raises) for these fields (a fresh random id unless ``event_id``).

        Fast when the detector's invariants hold: ``source_ip`` canonical, ``user`` and ``log`` non-empty and
        within the wire limits, ``evidence`` already capped (a window keeps at most
        :data:`~pilot_tui.model.MAX_EVIDENCE_LINES` lines, each cut to
        :data:`~pilot_tui.model.MAX_EVIDENCE_LINE_CHARS`), ``ts`` in :func:`~.timeparse.iso_utc` form, no
        ``event_id``. Anything else is handed to ``make_event`` as it is.
        """
        trusted = self._trusted.get(id(rule))
        if trusted is None:
            trusted = self._check_rule(rule)
        lines = tuple(evidence)
        if (
            trusted
            and event_id is None
            and type(count) is int
            and 1 <= count <= MAX_COUNT
            and type(severity) is str
            and severity in SEVERITY_RANK
            and self._ts_ok(ts)
            and type(source_ip) is str
            and (source_ip in self._addresses or self._canonical(source_ip))
            and (user is None or (type(user) is str and 0 < len(user) <= MAX_USER_CHARS))
            and (log is None or (type(log) is str and 0 < len(log) <= MAX_LOG_CHARS))
            and len(lines) <= MAX_EVIDENCE_LINES
            and all(map(isinstance, lines, repeat(str)))
            and (not lines or max(map(len, lines)) <= MAX_EVIDENCE_LINE_CHARS)
        ):
            return ThreatEvent(
                source_ip,
                rule.anomaly,
                severity,
                new_event_id(),
                SCHEMA,
                self.sensor,
                None,
                ts,
                rule.name,
                count,
                rule.findtime,
                user,
                log,
                lines,
            )
        return make_event(
            source_ip,
            rule.anomaly,
            severity,
            sensor=self.sensor,
            rule=rule.name,
            count=count,
            window_s=rule.findtime,
            user=user,
            log=log,
            evidence=lines,
            ts=ts,
            event_id=event_id,
        )

    def trusts(self, rule: Rule) -> bool:
        """Whether ``rule``'s constant fields (and the sensor) validate, so its events may take the fast path (the C
        engine builds events only for such rules)."""
        trusted = self._trusted.get(id(rule))
        return self._check_rule(rule) if trusted is None else trusted

    def _check_rule(self, rule: Rule) -> bool:
        """Whether ``rule``'s constant fields (and the sensor) pass ``make_event``; remembered per rule."""
        try:
            make_event(
                "127.0.0.1",
                rule.anomaly,
                "info",
                sensor=self.sensor,
                rule=rule.name,
                count=1,
                window_s=rule.findtime,
                ts="2026-01-01T00:00:00.000Z",
            )
            ok = True
        except ValidationError:
            ok = False
        self._trusted[id(rule)] = ok
        self._rules.append(rule)
        return ok

    def _ts_ok(self, ts: str) -> bool:
        """True when ``ts`` is ``YYYY-MM-DDTHH:MM:SS.mmmZ`` that ``make_event`` accepts (checked once per second)."""
        if type(ts) is not str or len(ts) != _TS_LEN or ts[23] != "Z":
            return False
        millis = ts[20:23]
        if not (millis.isascii() and millis.isdecimal()):
            return False
        head = ts[:20]
        if head in self._heads:
            return True
        if "Z" in head:  # make_event rewrites every Z; leave such oddities to it
            return False
        try:
            datetime.fromisoformat(head + "000+00:00")
        except ValueError:
            return False
        if len(self._heads) >= MAX_ADDRESSES:
            self._heads.clear()
        self._heads.add(head)
        return True

    def _canonical(self, text: str) -> bool:
        """True (and remembered) when ``text`` is an address in its canonical form, as ``make_event`` outputs it."""
        try:
            ok = type(text) is str and str(ip_address(text)) == text
        except ValueError:
            return False
        if ok:
            if len(self._addresses) >= MAX_ADDRESSES:
                self._addresses.clear()
            self._addresses.add(text)
        return ok
