"""The scanner's C hot path (:mod:`._native`): when it may be used, and what it is given.

The C engine does what :meth:`Detector._count <.engine.Detector._count>`, :meth:`Tracker.hit <.window.Tracker.hit>`
and the chunk scanner do, with PCRE2 instead of ``re``, so it must only ever see patterns both engines read alike.
:func:`pattern_problem` refuses, conservatively, every construct where they differ (or might): non-ASCII patterns,
``\\Z`` (PCRE2's also matches before a final newline), ``\\v`` (a class in PCRE2), ``\\N``/``\\u``/``\\U``,
numbered back-references, ``{,n}`` (a quantifier in Python, literal text in PCRE2 before 10.43), POSIX-looking
classes ``[:…:]``, and the verbose/ASCII/locale/unicode flags. PCRE2 must then compile the pattern and number its
groups exactly as ``re`` did, or the engine is not built. Chunks the C code cannot judge exactly (non-ASCII, CR,
``\\x1c``–``\\x1f``) are scanned by Python with the C windows, so one scan never mixes two sets of state.

A refusal is never an error: the detector then runs on the pure Python path, which gives the same events. One limit:
the C engine reads text as UTF-8, so a ``str`` with lone surrogates handed to a native detector's ``feed`` raises
``UnicodeEncodeError``; text decoded from a file (as ``scan`` does, with ``errors="replace"``) never has them.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from pilot_tui.model import MAX_EVIDENCE_LINE_CHARS, MAX_EVIDENCE_LINES, SCHEMA, SEVERITY_RANK, ThreatEvent

from .addr import CACHE_MAX as ADDRESS_CACHE_MAX
from .events import MAX_COUNT, MAX_USER_CHARS
from .timeparse import CACHE_MAX as MINUTES_CACHE_MAX
from .timeparse import FUTURE_SLACK
from .window import MAX_DISTINCT, SWEEP_EVERY

if TYPE_CHECKING:
    from .engine import Detector

try:
    from . import _native
except ImportError as exc:  # no C compiler at install time, or another platform
    _native = None
    _IMPORT_PROBLEM: str | None = f"the C extension is not built ({exc})"
else:
    _IMPORT_PROBLEM = _native.PCRE2_PROBLEM

_RISKY_ESCAPE_RE = re.compile(r"\\(?:[ZvNuU]|[1-9])")
_RISKY_TEXT = ("{,", "[:", "[=", "[.")
_RISKY_FLAGS_RE = re.compile(r"\(\?[a-zA-Z-]*[xaLu]")

EVENT_FIELDS = (
    "source_ip",
    "anomaly",
    "severity",
    "id",
    "schema",
    "sensor",
    "seq",
    "ts",
    "rule",
    "count",
    "window_s",
    "user",
    "log",
    "evidence",
)
"""The order the C engine fills a ThreatEvent's fields in; if the model ever differs, C builds no events."""

LOCAL_SOURCE = "127.0.0.1"
"""Source address of a user-keyed event (sudo) when the user's SSH login address is unknown."""

Fire = tuple[int, int, bool, float, "str | None", "str | None", tuple[str, ...], "str | None"]
"""What the C engine reports for a fired window: (rule index, count, escalation, time, user, address, evidence,
the time as :func:`~.timeparse.iso_utc` formats it — None outside the years 1970–9999)."""


def unavailable() -> str | None:
    """Why the C engine cannot be used on this machine at all, or None."""
    return _IMPORT_PROBLEM


def pattern_problem(pattern: str) -> str | None:
    """Why PCRE2 might read ``pattern`` differently from ``re`` (see the module doc), or None."""
    if not pattern.isascii():
        return "non-ASCII pattern"
    found = _RISKY_ESCAPE_RE.search(pattern.replace("\\\\", ""))
    if found:
        return f"pattern uses {found.group()}"
    for text in _RISKY_TEXT:
        if text in pattern:
            return f"pattern contains {text!r}"
    found = _RISKY_FLAGS_RE.search(pattern)
    if found:
        return f"pattern sets flags {found.group()}"
    return None


def build(detector: Detector, max_keys: int, max_repeat: int, max_ip_counts: int) -> tuple[Any, str | None]:
    """A C engine for ``detector``'s filters and rules — or ``(None, why not)``."""
    if _native is None or _IMPORT_PROBLEM:
        return None, _IMPORT_PROBLEM
    if max_keys < 1:
        return None, "max_keys below 1"
    filters = []
    for cf in detector.filters:
        problem = pattern_problem(cf.rx.pattern)
        if problem:
            return None, f"filter {cf.name!r}: {problem}"
        branches = [
            (
                bgroup,
                info.ip,
                info.user,
                info.repeat,
                info.count,
                int(info.login),
                tuple((plan.index, distinct) for plan, distinct in info.rules),
            )
            for bgroup, info in cf.branches.items()
        ]
        filters.append(
            (
                b"(*LF)" + cf.rx.pattern.encode(),
                cf.require.encode() if cf.require is not None else None,
                cf.rx.groups,
                dict(cf.rx.groupindex),
                branches,
            )
        )
    factory = detector.event_factory
    plans = [
        (
            float(p.findtime),
            float(p.cooldown),
            float(p.span),
            int(p.maxretry),
            p.distinct,
            p.by_ip,
            # events of this rule may be built in C: what EventFactory.build's fast path requires of a rule
            factory.trusts(p.rule)
            and all(level in SEVERITY_RANK for level in (p.rule.severity, *(lv for _, lv in p.rule.severity_at))),
            p.rule.anomaly,
            p.rule.name,
            p.rule.findtime,
            p.rule.severity,
            tuple(p.rule.severity_at),
        )
        for p in detector.plans
    ]
    names = tuple(f.name for f in fields(ThreatEvent))
    events = (ThreatEvent, names, SCHEMA, detector.sensor, LOCAL_SOURCE, MAX_COUNT, MAX_USER_CHARS)
    callbacks = (
        detector.addresses.resolve,
        detector.clock.line_time,
        detector.clock.minutes,
        detector.remember_login,
        detector.logins,
        detector.stats.ip_hits if detector.count_ips else None,
        detector.clock,
    )
    limits = (
        max_keys,
        MAX_EVIDENCE_LINES,
        MAX_EVIDENCE_LINE_CHARS,
        MAX_DISTINCT,
        SWEEP_EVERY,
        max_repeat,
        max_ip_counts,
        FUTURE_SLACK,
        MINUTES_CACHE_MAX,
        ADDRESS_CACHE_MAX,
    )
    try:
        return _native.Engine(filters, plans, callbacks, limits, events if names == EVENT_FIELDS else None), None
    except (ValueError, TypeError) as exc:  # PCRE2 reads a pattern differently; or a stale build of _native
        return None, str(exc)

