"""Threat events and their wire codec (format v1, see shared/design.md).

Everything that crosses the network is parsed here and nowhere else, so the rules for what we accept live in one
place: a payload is NDJSON, each line one event; anything that is not a valid event becomes a
:class:`ValidationError` with a short machine-readable ``reason`` (used as the quarantine reason) and a human detail.
The decoder never raises anything else, whatever the bytes (a property test checks that).

The seed's three fields (``source_ip``, ``anomaly``, ``severity``) stay verbatim so a seed-style orchestrator that
only reads those still understands us; every other field is additive and optional on the wire.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

SCHEMA = "pilot-tui.threat/1"
"""Value of the ``schema`` field on events we produce."""

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
"""Known severities, lowest first; index = rank."""

SEVERITY_RANK: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}

MAX_LINE_BYTES = 16 * 1024
"""One encoded event may not exceed this; larger lines are rejected as ``oversize`` (attackers control evidence)."""

MAX_EVIDENCE_LINES = 5
"""Evidence lines kept per event (the rest are dropped, on send and on receive)."""

MAX_EVIDENCE_LINE_CHARS = 512
"""Each evidence line is cut to this many characters."""

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""A whole payload (one connect) larger than this is not parsed line by line; it is quarantined whole."""

MAX_PAYLOAD_LINES = 10_000
"""A payload with more lines than this is refused whole as ``oversize`` without decoding a line: validating costs
~5 µs a line on the engine's event loop, so 2 million lines of junk would stall every receiver (and the UI) for
seconds. Our senders batch at most 1,000 events (followers ~60 KB), so a genuine payload is far below it."""

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""An event id (also the rule for mitigation request ids and the ids a triage message names)."""
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_SENSOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_MAX_INT = 2**53  # JSON consumers (JavaScript, Elasticsearch) lose precision above this


class ValidationError(ValueError):
    """A payload or line that is not a valid threat event.

    ``reason`` is a short stable code (``bad_json``, ``invalid_utf8``, ``not_object``, ``missing_field``,
    ``wrong_type``, ``unknown_severity``, ``bad_ip``, ``bad_value``, ``oversize``, ``empty``) that quarantine counts
    by; ``detail`` says which field and why, for the analyst.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ThreatEvent:
    """One detection, as produced by an oracle and stored by an orchestrator.

    Only the first four fields are always present; the rest are ``None`` when a bare seed message carried nothing
    more. ``id`` is unique per event: resends carry the same id, which is how the orchestrator dedups.
    """

    source_ip: str
    anomaly: str
    severity: str
    id: str
    schema: str = SCHEMA
    sensor: str | None = None
    seq: int | None = None
    ts: str | None = None
    rule: str | None = None
    count: int | None = None
    window_s: float | None = None
    user: str | None = None
    log: str | None = None
    evidence: tuple[str, ...] = field(default_factory=tuple)

    @property
    def severity_rank(self) -> int:
        """0 (info) … 4 (critical), for sorting and minimum-severity filters."""
        return SEVERITY_RANK[self.severity]

    @property
    def is_seed(self) -> bool:
        """True for an event decoded from a bare seed message (three fields only)."""
        return self.id.startswith("seed-")

    def to_dict(self) -> dict[str, Any]:
        """Wire dict: the seed's three fields first, ``None`` fields and empty evidence left out."""
        out: dict[str, Any] = {"source_ip": self.source_ip, "anomaly": self.anomaly, "severity": self.severity}
        for name in _OPTIONAL_ORDER:
            value = getattr(self, name)
            if value is None or (name == "evidence" and not value):
                continue
            out[name] = list(value) if name == "evidence" else value
        return out

    def to_json(self) -> bytes:
        """One NDJSON line without the trailing newline."""
        return orjson.dumps(self.to_dict())


_OPTIONAL_ORDER = ("schema", "id", "sensor", "seq", "ts", "rule", "count", "window_s", "user", "log", "evidence")


def utc_now_iso() -> str:
    """Current time as RFC 3339 UTC with milliseconds and a ``Z`` (the ``ts`` field's form)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def new_event_id() -> str:
    """A fresh random UUID for a new detection."""
    return str(uuid.uuid4())


def seed_id(source_ip: str, anomaly: str, severity: str) -> str:
    """Stable id for a bare seed message: the same three fields always give the same id (so resends dedup)."""
    digest = hashlib.sha256(f"{source_ip}\x00{anomaly}\x00{severity}".encode()).hexdigest()
    return f"seed-{digest[:32]}"


def cap_evidence(lines: Iterable[str]) -> tuple[str, ...]:
    """Keep at most :data:`MAX_EVIDENCE_LINES` lines, each cut to :data:`MAX_EVIDENCE_LINE_CHARS` characters."""
    kept: list[str] = []
    for line in lines:
        if len(kept) >= MAX_EVIDENCE_LINES:
            break
        kept.append(line[:MAX_EVIDENCE_LINE_CHARS])
    return tuple(kept)


def make_event(
    source_ip: str,
    anomaly: str,
    severity: str,
    *,
    sensor: str | None = None,
    seq: int | None = None,
    rule: str | None = None,
    count: int | None = None,
    window_s: float | None = None,
    user: str | None = None,
    log: str | None = None,
    evidence: Iterable[str] = (),
    ts: str | None = None,
    event_id: str | None = None,
) -> ThreatEvent:
    """Build a new event for sending, with a fresh id and timestamp, validated like a received one.

    Raises :class:`ValidationError` when a field is unacceptable — a detector bug we want to see early, not at the
    orchestrator's quarantine.
    """
    event = ThreatEvent(
        source_ip=source_ip,
        anomaly=anomaly,
        severity=severity,
        id=event_id or new_event_id(),
        sensor=sensor,
        seq=seq,
        ts=ts or utc_now_iso(),
        rule=rule,
        count=count,
        window_s=window_s,
        user=user,
        log=log,
        evidence=cap_evidence(evidence),
    )
    return event_from_obj(event.to_dict())


# --------------------------------------------------------------------------------------------------------------
# Decoding


def _need_str(obj: Mapping[str, Any], key: str, *, required: bool, max_len: int) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValidationError("missing_field", f"{key} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError("wrong_type", f"{key} must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError("bad_value", f"{key} is empty")
    if len(value) > max_len:
        raise ValidationError("oversize", f"{key} is longer than {max_len} characters")
    return value


def _need_int(obj: Mapping[str, Any], key: str, *, minimum: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("wrong_type", f"{key} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= _MAX_INT:
        raise ValidationError("bad_value", f"{key} out of range ({minimum}..{_MAX_INT})")
    return value


def _need_number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("wrong_type", f"{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not 0 <= value <= 10**8:
        raise ValidationError("bad_value", f"{key} out of range (0..1e8)")
    return value


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValidationError("bad_ip", f"source_ip {value[:64]!r} is not an IPv4/IPv6 address") from None


def _check_ts(value: str) -> str:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("bad_value", f"ts {value[:40]!r} is not an ISO-8601 time") from None
    return value


def event_from_obj(obj: Any) -> ThreatEvent:
    """Validate one decoded JSON value and turn it into a :class:`ThreatEvent`.

    A dict with only the seed's three fields (or without ``id``) gets a content-derived id. Unknown extra keys are
    ignored (forward compatibility: v1 is additive). Evidence longer than the caps is cut, not rejected.
    """
    if not isinstance(obj, dict):
        raise ValidationError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    source_ip = _check_ip(_need_str(obj, "source_ip", required=True, max_len=64) or "")
    anomaly = _need_str(obj, "anomaly", required=True, max_len=64) or ""
    if not _NAME_RE.match(anomaly):
        raise ValidationError("bad_value", "anomaly must be letters, digits and ._:/- (max 64)")
    severity = _need_str(obj, "severity", required=True, max_len=16) or ""
    if severity not in SEVERITY_RANK:
        raise ValidationError("unknown_severity", f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    schema = _need_str(obj, "schema", required=False, max_len=64)
    if schema is not None and not schema.startswith("pilot-tui.threat/"):
        raise ValidationError("bad_value", f"unknown schema {schema!r}")
    event_id = _need_str(obj, "id", required=False, max_len=128)
    if event_id is not None and not ID_RE.match(event_id):
        raise ValidationError("bad_value", "id must be letters, digits and ._:- (max 128)")
    sensor = _need_str(obj, "sensor", required=False, max_len=63)
    if sensor is not None and not _SENSOR_RE.match(sensor):
        raise ValidationError("bad_value", "sensor must be letters, digits and ._- (max 63)")
    rule = _need_str(obj, "rule", required=False, max_len=64)
    if rule is not None and not _NAME_RE.match(rule):
        raise ValidationError("bad_value", "rule must be letters, digits and ._:/- (max 64)")
    ts = _need_str(obj, "ts", required=False, max_len=40)
    evidence_raw = obj.get("evidence")
    if evidence_raw is None:
        evidence: tuple[str, ...] = ()
    elif not isinstance(evidence_raw, list) or not all(isinstance(x, str) for x in evidence_raw):
        raise ValidationError("wrong_type", "evidence must be a list of strings")
    else:
        evidence = cap_evidence(evidence_raw)
    if event_id is None:
        event_id = seed_id(source_ip, anomaly, severity)
    return ThreatEvent(
        source_ip=source_ip,
        anomaly=anomaly,
        severity=severity,
        id=event_id,
        schema=schema or SCHEMA,
        sensor=sensor,
        seq=_need_int(obj, "seq", minimum=0),
        ts=_check_ts(ts) if ts is not None else None,
        rule=rule,
        count=_need_int(obj, "count", minimum=1),
        window_s=_need_number(obj, "window_s"),
        user=_need_str(obj, "user", required=False, max_len=128),
        log=_need_str(obj, "log", required=False, max_len=1024),
        evidence=evidence,
    )


def decode_event(line: bytes | str) -> ThreatEvent:
    """Decode one NDJSON line into an event, or raise :class:`ValidationError` (never anything else)."""
    if isinstance(line, str):
        try:
            line = line.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("invalid_utf8", "line holds unpaired surrogates") from None
    if len(line) > MAX_LINE_BYTES:
        raise ValidationError("oversize", f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    stripped = line.strip()
    if not stripped:
        raise ValidationError("empty", "empty line")
    try:
        stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("bad_json", str(exc)[:160]) from None
    except RecursionError:  # pragma: no cover - orjson reports depth as JSONDecodeError
        raise ValidationError("bad_json", "nesting too deep") from None
    return event_from_obj(obj)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line of a payload that did not validate, kept for quarantine (``raw`` is capped by the store)."""

    index: int
    reason: str
    detail: str
    raw: bytes


@dataclass(slots=True)
class DecodedPayload:
    """The result of decoding one payload: valid events in order, rejected lines, the announced batch size."""

    events: list[ThreatEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    batch_size: int | None = None

    @property
    def lines(self) -> int:
        return len(self.events) + len(self.rejected)


def batch_size_of(line: bytes) -> int | None:
    """The ``batch_size`` a line announces, or ``None`` (cheap check used while a payload is still arriving)."""
    if b'"batch_size"' not in line:
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = obj.get("batch_size") if isinstance(obj, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 100_000:
        return value
    return None


def refused_whole(payload: bytes) -> str | None:
    """Why ``payload`` is refused whole without looking at its lines (too many bytes or lines), or ``None``.

    Counting line ends runs at C speed, so a flood of lines is refused before paying for each one.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
    newlines = payload.count(b"\n")
    if newlines > MAX_PAYLOAD_LINES:
        return f"payload of {newlines:,} lines exceeds {MAX_PAYLOAD_LINES:,}"
    return None


def decode_payload(payload: bytes) -> DecodedPayload:
    """Decode a whole NDJSON payload (one stream connection or one inbox message).

    CRLF and blank lines are tolerated (``pilotctl connect`` rewrites line ends and drops the final newline). A
    payload above :data:`MAX_PAYLOAD_BYTES` or :data:`MAX_PAYLOAD_LINES` is rejected whole as ``oversize`` rather than
    split.
    """
    result = DecodedPayload()
    whole = refused_whole(payload)
    if whole:
        result.rejected.append(Rejected(0, "oversize", whole, payload))
        return result
    index = 0
    for raw in payload.split(b"\n"):
        if not raw.strip():
            continue
        if result.batch_size is None:
            result.batch_size = batch_size_of(raw)
        try:
            result.events.append(decode_event(raw))
        except ValidationError as exc:
            result.rejected.append(Rejected(index, exc.reason, exc.detail, raw))
        index += 1
    return result


def encode_batch(events: Iterable[ThreatEvent]) -> bytes:
    """Encode events as one NDJSON payload; each line carries ``batch_size`` so a receiver knows when it is whole.

    ``batch_size`` is additive: a seed-style reader sees ordinary event lines. The result ends with a newline.
    """
    items = list(events)
    lines = []
    for event in items:
        obj = event.to_dict()
        obj["batch_size"] = len(items)
        lines.append(orjson.dumps(obj))
    return b"\n".join(lines) + b"\n" if lines else b""


_ESCAPE_CANDIDATE_RE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")
"""Every character but printable ASCII other than the backslash: what :func:`printable` looks at (most text never
matches; the rest is decided one character at a time)."""


def _escape_one(match: re.Match[str]) -> str:
    """One candidate character as itself or its escape. "Printable" is Python's own rule (``str.isprintable``, the
    one ``repr`` uses): not a control (escape sequences, carriage return), format character (bidi overrides,
    zero-width joiners, tag characters), surrogate left by undecodable bytes, private-use or unassigned code point,
    line/paragraph separator, or a space other than the ASCII one — what a reader cannot see or tell apart, or what
    acts on the terminal instead of showing."""
    char = match.group()
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """Attacker text made safe and unambiguous for a terminal: a backslash becomes ``\\\\``, a control character
    ``\\xNN``, other invisible or direction-changing code points ``\\uNNNN`` / ``\\UNNNNNNNN`` — Python's own escape
    forms, fixed width, so the result reads back to exactly the original (``codecs`` ``unicode_escape``).

    Why the backslash too: otherwise a typed ``\\x1b`` looks exactly like a real ESC made visible, and U+202E
    could not be told from ``\\x20`` followed by ``2e``. Escape once, where the text is shown (a second pass
    doubles every backslash). This removes ANSI/OSC escape sequences' power; Rich *markup* is a separate concern —
    the UI never passes such text through markup (it builds ``rich.text.Text`` objects).
    """
    if text.isprintable() and "\\" not in text:
        return text  # most text: two C-speed scans instead of a Python call per non-ASCII character
    return _ESCAPE_CANDIDATE_RE.sub(_escape_one, text)
