"""Mitigation messages: what the orchestrator asks an executor to do, and what the executor answers.

Both travel over Pilot's data exchange (``pilotctl send-message … --type json``), so they land in an inbox that anyone
trusted can write to: every byte is hostile until parsed here. The parsers are strict (exact schema, typed fields,
capped sizes) and raise only :class:`MitigationError`, whose ``reason`` is a short stable code and whose ``detail`` is
a sentence the executor sends back in a refusal. Unknown extra keys are ignored so later versions can add fields.

Request (orchestrator → executor)::

    {"schema": "pilot-tui.mitigate/1", "request_id": "<uuid>", "action": "block", "ip": "203.0.113.7",
     "duration_s": 3600, "event_id": "…", "reason": "brute_force_ssh", "requested_by": "analyst",
     "issued_at": "2026-11-25T12:00:03.125Z", "valid_s": 300}

``issued_at``/``valid_s`` say how long the ask stands: a daemon keeps unread inbox messages for ever, so an executor
started on a fresh state dir would otherwise carry out every old request it finds (see :func:`staleness`). They are
optional on the wire only so an old request still parses and can be refused by name.

Result (executor → orchestrator, sent with ``--reply-to <the request's message_id>``)::

    {"schema": "pilot-tui.mitigate-result/1", "request_id": "…", "ip": "203.0.113.7", "action": "block",
     "status": "applied", "backend": "dry-run", "detail": "…", "expires_at": "2026-11-25T13:00:03.125Z",
     "executor": "aws-exec-node"}
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeGuard

import orjson

from ..model import ID_RE, printable
from ..pilot.inbox import parse_iso

REQUEST_SCHEMA = "pilot-tui.mitigate/1"
RESULT_SCHEMA = "pilot-tui.mitigate-result/1"
ACTIONS: tuple[str, ...] = ("block", "unblock")
STATUSES: tuple[str, ...] = ("applied", "already_applied", "refused", "failed", "expired")
"""``applied``: done now. ``already_applied``: nothing to do (already blocked — expiry maybe extended — or not blocked
for an unblock). ``refused``: not allowed or invalid, nothing done. ``failed``: the firewall command failed.
``expired``: sent later, unprompted, when a block's duration ended and it was removed."""

MAX_MESSAGE_BYTES = 64 * 1024
"""A mitigation message larger than this is rejected unread (they are a few hundred bytes)."""

MAX_DURATION_S = 10**8
"""The parser's sanity cap on ``duration_s``; the executor applies its own, smaller, configured maximum."""

DEFAULT_VALID_S = 300
"""How long a new request stands: long enough for a daemon restart (~10 s) and a short outage, short enough that an
ask nobody is waiting for any more is not carried out later."""

MAX_VALID_S = 86400
"""The cap on ``valid_s``: the executor remembers answered request ids for longer than this (7 days), so a request
can never outlive the record that it was already carried out."""

MAX_CLOCK_SKEW_S = 60.0
"""How far in the future ``issued_at`` may lie (the two nodes' clocks differ a little) before it is refused."""

Action = Literal["block", "unblock"]
Status = Literal["applied", "already_applied", "refused", "failed", "expired"]

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@ -]{0,127}$")


class MitigationError(ValueError):
    """A payload that is not a valid mitigation message.

    ``reason``: ``oversize``, ``invalid_utf8``, ``bad_json``, ``not_object``, ``bad_schema``, ``missing_field``,
    ``wrong_type``, ``bad_value``, ``bad_ip``. ``request_id``/``action``/``ip`` hold what could be salvaged (safe,
    capped strings or ``None``) so a refusal can still name the request it refuses.
    """

    def __init__(
        self, reason: str, detail: str, *, request_id: str | None = None, action: str | None = None,
        ip: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.request_id = request_id
        self.action = action
        self.ip = ip


def utc_iso(epoch: float) -> str:
    """Unix time as RFC 3339 UTC with milliseconds and ``Z`` (the form of ``expires_at``)."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def safe_text(value: object, limit: int = 128) -> str:
    """Attacker text cut to ``limit`` with control/bidi characters made visible, fit to echo in a refusal."""
    return printable(str(value)[: limit * 4])[:limit]


def canonical_ip(value: str) -> str:
    """The canonical text of an IPv4/IPv6 address (IPv4-mapped IPv6 becomes IPv4), or :class:`ValueError`.

    Scope ids (``fe80::1%eth0``), CIDRs and anything with spaces are refused: the result goes into firewall argv.
    """
    if not value or len(value) > 45 or "%" in value or value.strip() != value:
        raise ValueError(f"{safe_text(value, 64)!r} is not an IPv4/IPv6 address")
    addr = ipaddress.ip_address(value)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _decode(data: bytes | str) -> dict[str, Any]:
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MitigationError("invalid_utf8", "message holds unpaired surrogates") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MitigationError("wrong_type", f"expected bytes or str, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise MitigationError("oversize", f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if isinstance(exc.__cause__, UnicodeDecodeError) or "utf-8" in str(exc).lower():
            raise MitigationError("invalid_utf8", "message is not valid UTF-8") from None
        raise MitigationError("bad_json", f"not JSON: {safe_text(exc, 120)}") from None
    if not isinstance(obj, dict):
        raise MitigationError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _str(obj: dict[str, Any], key: str, *, required: bool, limit: int, pattern: re.Pattern[str] | None = None,
         salvage: dict[str, str | None]) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise MitigationError("missing_field", f"{key} is required", **salvage)
        return None
    if not isinstance(value, str):
        raise MitigationError("wrong_type", f"{key} must be a string, got {type(value).__name__}", **salvage)
    if not value or len(value) > limit or (pattern is not None and not pattern.match(value)):
        raise MitigationError("bad_value", f"{key} {safe_text(value, 64)!r} is not acceptable "
                              f"(1-{limit} characters{', letters/digits/._:-' if pattern else ''})", **salvage)
    return value


def _salvage(obj: dict[str, Any]) -> dict[str, str | None]:
    """What a refusal can echo back: request_id/action/ip only when they are plain, safe strings."""
    def pick(key: str, ok: re.Pattern[str]) -> str | None:
        value = obj.get(key)
        return value if isinstance(value, str) and ok.match(value) else None
    return {"request_id": pick("request_id", ID_RE), "action": pick("action", re.compile(r"^(block|unblock)$")),
            "ip": pick("ip", re.compile(r"^[0-9A-Fa-f.:]{2,45}$"))}


@dataclass(frozen=True, slots=True)
class MitigationRequest:
    """One ask from an orchestrator. ``duration_s`` is ``None`` when the sender left it to the executor's default."""

    request_id: str
    action: Action
    ip: str
    duration_s: int | None = None
    event_id: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    issued_at: str | None = None
    valid_s: int | None = None

    @classmethod
    def new(cls, action: Action, ip: str, *, duration_s: int | None = None, event_id: str | None = None,
            reason: str | None = None, requested_by: str | None = None, valid_s: int = DEFAULT_VALID_S,
            now: float | None = None) -> MitigationRequest:
        """Build a request with a fresh UUID, stamped as issued ``now`` (default: the wall clock) and valid for
        ``valid_s``, validated exactly as the executor will validate it."""
        issued = utc_iso(time.time() if now is None else now)
        req = cls(str(uuid.uuid4()), action, ip, duration_s, event_id, reason, requested_by, issued, valid_s)
        return parse_request(req.encode())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": REQUEST_SCHEMA, "request_id": self.request_id, "action": self.action,
                               "ip": self.ip}
        for key in ("duration_s", "event_id", "reason", "requested_by", "issued_at", "valid_s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def encode(self) -> bytes:
        """The JSON bytes to pass to ``send-message --type json --data -``."""
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class MitigationResult:
    """An executor's answer (or its later notice that a block ``expired``). ``expires_at`` is ISO UTC or ``None``."""

    request_id: str
    ip: str
    action: str
    status: Status
    backend: str
    detail: str = ""
    expires_at: str | None = None
    executor: str = ""

    @property
    def ok(self) -> bool:
        """True when the firewall now is as the request wanted (``applied`` or ``already_applied``)."""
        return self.status in ("applied", "already_applied")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": RESULT_SCHEMA, "request_id": self.request_id, "ip": self.ip, "action": self.action,
                "status": self.status, "backend": self.backend, "detail": self.detail,
                "expires_at": self.expires_at, "executor": self.executor}

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())


def is_action(value: str) -> TypeGuard[Action]:
    """``value`` is one of :data:`ACTIONS` (and so, for the type checker, an :data:`Action`)."""
    return value in ACTIONS


def is_status(value: str) -> TypeGuard[Status]:
    """``value`` is one of :data:`STATUSES` (and so, for the type checker, a :data:`Status`)."""
    return value in STATUSES


def parse_request(data: bytes | str) -> MitigationRequest:
    """Decode and validate a request; raise :class:`MitigationError` (never anything else) when it is not one."""
    obj = _decode(data)
    salvage = _salvage(obj)
    schema = obj.get("schema")
    if schema != REQUEST_SCHEMA:
        raise MitigationError("bad_schema", f"schema must be {REQUEST_SCHEMA!r}, got {safe_text(schema, 64)!r}",
                              **salvage)
    request_id = _str(obj, "request_id", required=True, limit=128, pattern=ID_RE, salvage=salvage) or ""
    action = _str(obj, "action", required=True, limit=16, salvage=salvage) or ""
    if not is_action(action):
        raise MitigationError("bad_value", f"action must be block or unblock, got {safe_text(action, 32)!r}",
                              **salvage)
    raw_ip = _str(obj, "ip", required=True, limit=64, salvage=salvage) or ""
    try:
        ip = canonical_ip(raw_ip)
    except ValueError:
        raise MitigationError("bad_ip", f"ip {safe_text(raw_ip, 64)!r} is not an IPv4/IPv6 address",
                              **salvage) from None
    duration = obj.get("duration_s")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
        raise MitigationError("wrong_type", f"duration_s must be an integer, got {type(duration).__name__}",
                              **salvage)
    if duration is not None and not 1 <= duration <= MAX_DURATION_S:
        raise MitigationError("bad_value", f"duration_s {duration} out of range (1..{MAX_DURATION_S})", **salvage)
    issued_at = _str(obj, "issued_at", required=False, limit=40, salvage=salvage)
    if issued_at is not None and parse_iso(issued_at) is None:
        raise MitigationError("bad_value", f"issued_at {safe_text(issued_at, 40)!r} is not an ISO-8601 time",
                              **salvage)
    valid_s = obj.get("valid_s")
    if valid_s is not None and (isinstance(valid_s, bool) or not isinstance(valid_s, int)):
        raise MitigationError("wrong_type", f"valid_s must be an integer, got {type(valid_s).__name__}", **salvage)
    if valid_s is not None and not 1 <= valid_s <= MAX_VALID_S:
        raise MitigationError("bad_value", f"valid_s {valid_s} out of range (1..{MAX_VALID_S})", **salvage)
    return MitigationRequest(
        request_id=request_id,
        action=action,
        ip=ip,
        duration_s=duration,
        event_id=_str(obj, "event_id", required=False, limit=128, pattern=ID_RE, salvage=salvage),
        reason=_str(obj, "reason", required=False, limit=128, pattern=_LABEL_RE, salvage=salvage),
        requested_by=_str(obj, "requested_by", required=False, limit=128, pattern=_LABEL_RE, salvage=salvage),
        issued_at=issued_at,
        valid_s=valid_s,
    )


def staleness(req: MitigationRequest, now: float) -> str | None:
    """``None`` when ``req`` may still be carried out at ``now`` (Unix seconds), else why not, as a sentence.

    A request without ``issued_at`` is refused too: it comes from a version that could not say when it was made, and
    an old inbox message is exactly what this check exists to stop. A missing ``valid_s`` means the default.
    """
    issued = parse_iso(req.issued_at) if req.issued_at else None
    if issued is None:
        return "the request carries no issued_at time, so it may be an old inbox message; not carried out"
    valid = req.valid_s or DEFAULT_VALID_S
    if issued > now + MAX_CLOCK_SKEW_S:
        return (f"issued_at {req.issued_at} lies {issued - now:.0f}s in the future (more than "
                f"{MAX_CLOCK_SKEW_S:.0f}s of clock skew); not carried out")
    if issued + valid < now:
        return (f"issued at {req.issued_at}, {now - issued:.0f}s ago, and valid for {valid}s only; "
                f"not carried out")
    return None


def parse_result(data: bytes | str) -> MitigationResult:
    """Decode and validate a result; raise :class:`MitigationError` (never anything else) when it is not one.

    ``request_id``, ``ip`` and ``action`` are checked only as short strings (possibly empty): a refusal of a malformed
    request echoes what it could read of it.
    """
    obj = _decode(data)
    salvage = _salvage(obj)
    if obj.get("schema") != RESULT_SCHEMA:
        raise MitigationError("bad_schema", f"schema must be {RESULT_SCHEMA!r}, got "
                              f"{safe_text(obj.get('schema'), 64)!r}", **salvage)
    if "request_id" not in obj:  # present, but may be "": the refusal of a request whose id was unreadable
        raise MitigationError("missing_field", "request_id is required", **salvage)
    status = _str(obj, "status", required=True, limit=32, salvage=salvage) or ""
    if not is_status(status):
        raise MitigationError("bad_value", f"status must be one of {', '.join(STATUSES)}, got "
                              f"{safe_text(status, 32)!r}", **salvage)
    expires_at = _str(obj, "expires_at", required=False, limit=40, salvage=salvage)
    if expires_at is not None and parse_iso(expires_at) is None:
        raise MitigationError("bad_value", f"expires_at {safe_text(expires_at, 40)!r} is not an ISO-8601 time",
                              **salvage)
    detail = obj.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise MitigationError("wrong_type", "detail must be a string", **salvage)

    def opt(key: str) -> str:
        value = obj.get(key)
        if value is None or value == "":
            return ""
        return _str(obj, key, required=False, limit=128, salvage=salvage) or ""

    # kept as sent (only cut): whatever shows them escapes them once (model.printable); escaping here too would
    # double every backslash on screen
    return MitigationResult(
        request_id=opt("request_id"), ip=opt("ip")[:64], action=opt("action")[:16],
        status=status,
        backend=opt("backend")[:32], detail=(detail or "")[:1000], expires_at=expires_at,
        executor=opt("executor")[:64],
    )


def message_kind(data: bytes | str) -> Literal["request", "result"] | None:
    """Which mitigation message ``data`` claims to be (by its ``schema``), without validating the rest.

    The orchestrator uses it to route inbox messages; the executor uses it never to answer a result (no reply loops).
    """
    try:
        schema = _decode(data).get("schema")
    except MitigationError:
        return None
    if schema == REQUEST_SCHEMA:
        return "request"
    if schema == RESULT_SCHEMA:
        return "result"
    return None
