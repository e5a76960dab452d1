"""Port-1000 payload handling shared by every stream backend: when is a payload whole, and what to reply.

``pilotctl connect`` writes its payload and then waits for one read of a reply without half-closing, so the receiver
must decide by itself when a payload is complete. Our batches say how many lines they hold (``batch_size`` on every
line); a bare seed message is complete when the buffer parses as one JSON object. Anything else waits for a short
idle gap. A wrong guess is harmless: the reply says exactly which lines were stored, the sender resends the rest,
and dedup by id absorbs repeats.

The reply must fit what real ``pilotctl connect`` passes back (at most 1,152 bytes, read once), whatever the batch
size: :func:`build_ack` describes each line's outcome as runs over the batch order and binds them to the batch with
a digest of its lines; :func:`settle` is the sender's half.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilot_tui.model import batch_size_of, refused_whole
from pilot_tui.store.events import IngestResult

ACK_SCHEMA = "pilot-tui.ack/2"
"""The compact acknowledgement: per-line outcome as runs over the batch order, bound to the batch by a digest."""

ACK_V1_SCHEMA = "pilot-tui.ack/1"
"""The first acknowledgement (lists of stored and duplicate ids); still understood from older orchestrators."""

REPLY_MAX = 1100
"""Longest reply we write. Real ``pilotctl connect`` 1.18 returns at most the first 1,152 bytes of a reply
(pilotctl-contract.md); a cut reply is unreadable, so every acknowledgement must fit whatever the batch size."""

REASON_MAX = 40
"""Longest rejection reason put in a reply (ours are short codes such as ``bad_ip``)."""


def payload_complete(buf: bytes | bytearray) -> bool:
    """True when ``buf`` holds a whole batch (all announced lines) or a whole single JSON object."""
    body = bytes(buf).rstrip(b"\r\n")
    if not body.endswith(b"}"):
        return False
    first_nl = body.find(b"\n")
    announced = batch_size_of(body if first_nl < 0 else body[:first_nl])
    if announced is None:
        if first_nl >= 0:
            return False  # several lines without framing: wait for the idle gap
        try:
            return isinstance(orjson.loads(body), dict)
        except orjson.JSONDecodeError:
            return False
    lines = body.count(b"\n") + 1
    if lines < announced:
        return False
    last = body[body.rfind(b"\n") + 1 :]
    try:
        orjson.loads(last)
    except orjson.JSONDecodeError:
        return False
    return True


def payload_lines(payload: bytes) -> list[bytes]:
    """The non-blank lines of a payload, stripped, in order: what "line N" means on both ends of a stream.

    ``pilotctl connect`` rewrites CRLF to LF and drops leading blank lines and the final newline, none of which
    changes this list, so the sender and the receiver number lines alike (as :func:`pilot_tui.model.decode_payload`
    does).
    """
    return [line for line in (raw.strip() for raw in payload.split(b"\n")) if line]


def lines_digest(lines: Sequence[bytes]) -> str:
    """A short digest of the first lines of a batch, so an acknowledgement can only settle the batch it answers."""
    return hashlib.blake2b(b"\n".join(lines), digest_size=8).hexdigest()


def line_codes(line_count: int, result: IngestResult) -> str:
    """One letter per payload line: ``s`` stored, ``d`` already known, ``r`` refused (see :attr:`IngestResult.ids`).

    Empty when the payload was not taken line by line (refused whole, e.g. oversize): then no line is settled.
    """
    if len(result.ids) + len(result.rejected) != line_count:
        return ""
    refused = {r.index for r in result.rejected}
    fresh = Counter(e.id for e in result.stored)
    ids = iter(result.ids)
    codes = []
    for index in range(line_count):
        if index in refused:
            codes.append("r")
            continue
        event_id = next(ids, None)
        if event_id is not None and fresh[event_id] > 0:
            fresh[event_id] -= 1
            codes.append("s")
        else:
            codes.append("d")
    return "".join(codes)


def whole_lines(payload: bytes) -> bytes:
    """What to take from a payload that stopped early (EOF, idle gap, deadline): a batch that announced more lines
    than arrived loses its cut-off tail — the sender resends every line the reply does not settle, so a half line is
    noise, not a hostile input to quarantine (it happened when a receiver shut down mid-read). A seed message or an
    unframed payload is taken as it is."""
    if payload_complete(payload):
        return payload
    first_nl = payload.find(b"\n")
    if batch_size_of(payload if first_nl < 0 else payload[:first_nl]) is None:
        return payload
    last_nl = payload.rfind(b"\n")
    return payload[:last_nl] if last_nl >= 0 else b""


def _runs(codes: str) -> list[tuple[str, int]]:
    """``"sssdr"`` → ``[("s", 3), ("d", 1), ("r", 1)]``."""
    return [(m.group(0)[0], len(m.group(0))) for m in re.finditer(r"(.)\1*", codes)]


def build_ack(payload: bytes, result: IngestResult) -> bytes:
    """The reply a sender gets: what became of each line of its payload, in at most :data:`REPLY_MAX` bytes.

    ``lines`` and ``digest`` name the payload as received (its line count and a digest of those lines), ``runs``
    give each line's outcome in order as run lengths (``s`` stored, ``d`` duplicate, ``r`` refused), ``reasons``
    the refusal reason of each refused line. When a pathological mix of outcomes would not fit, the runs stop
    early: ``upto`` says how many lines they cover and the sender resends the rest (dedup by id makes that
    harmless). A batch from our own sender is one or two runs, so even a 1,000-event batch is answered in ~110 bytes.
    """
    # A payload refused whole settles no line, so its lines need no naming (splitting a flood of them took 0.6 s).
    lines = [] if refused_whole(payload) else payload_lines(payload)
    reasons = {r.index: r.reason[:REASON_MAX] for r in result.rejected}
    reply: dict[str, Any] = {
        "schema": ACK_SCHEMA, "lines": len(lines), "digest": lines_digest(lines), "upto": 0, "runs": [],
        "reasons": [],
    }

    def fits(runs: list[str], refused: list[list[Any]], upto: int) -> bool:
        return len(orjson.dumps({**reply, "upto": upto, "runs": runs, "reasons": refused})) < REPLY_MAX

    for code, length in _runs(line_codes(len(lines), result)):
        start, runs, refused = reply["upto"], reply["runs"], reply["reasons"]
        take = length
        if code == "r":  # each refused line adds its reason: take as many as fit
            take = 0
            while take < length:
                item = [start + take, reasons.get(start + take, "rejected")]
                if not fits([*runs, f"r{take + 1}"], [*refused, item], start + take + 1):
                    break
                refused.append(item)
                take += 1
        elif not fits([*runs, f"{code}{length}"], refused, start + length):
            take = 0
        if take:
            runs.append(f"{code}{take}")
            reply["upto"] = start + take
        if take < length:
            break
    return orjson.dumps(reply) + b"\n"


def build_unstored(payload: bytes, reason: str) -> bytes:
    """The reply when the store refused the whole payload (disk full, read-only, corrupt): an acknowledgement that
    settles no line and says why, so the sender keeps every row and resends later — never a silent close, which a
    sender would in the end take for a receiver that cannot reply and count as delivered.

    An older sender reads it as an acknowledgement of nothing (``upto`` 0) and resends too.
    """
    lines = [] if refused_whole(payload) else payload_lines(payload)
    reply: dict[str, Any] = {"schema": ACK_SCHEMA, "lines": len(lines), "digest": lines_digest(lines), "upto": 0,
                             "runs": [], "reasons": [], "error": ""}
    room = REPLY_MAX - len(orjson.dumps(reply)) - 8
    reply["error"] = reason.encode("utf-8")[:max(0, room)].decode("utf-8", "ignore")
    return orjson.dumps(reply) + b"\n"


@dataclass(slots=True)
class Settlement:
    """What an acknowledgement says about the rows of one batch (by event id)."""

    stored: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


class BadAck(ValueError):
    """A reply that claims to be an acknowledgement but cannot settle this batch (cut, corrupt, another batch)."""


class NotStored(BadAck):
    """The receiver answered this batch but could not store it (its reply carries ``error``): every row stays
    pending. A :class:`BadAck`, so a sender that knows no better resends after its back-off too."""


def is_ack(text: str) -> bool:
    """True when a reply at least starts like one of our acknowledgements (whole or not)."""
    return text.lstrip().startswith('{"schema":"pilot-tui.ack/')


def settle(text: str, payload: bytes, ids: Sequence[str]) -> Settlement | None:
    """Read an orchestrator's reply to ``payload``, whose lines carry the events ``ids`` in order.

    Returns ``None`` when the reply is empty or not one of ours (e.g. a seed receiver's free text), a
    :class:`Settlement` naming what the receiver stored, already had and refused, and raises :class:`BadAck`
    when the reply is ours but cannot be trusted for this payload (cut short, corrupt, or for other lines) —
    :class:`NotStored` when it says the receiver could not store the batch. Rows the settlement does not name stay
    pending and are resent.
    """
    body = text.strip()
    if not body:
        return None
    try:
        obj = orjson.loads(body.splitlines()[0])
    except orjson.JSONDecodeError:
        if is_ack(body):
            raise BadAck(f"acknowledgement cut or corrupt ({len(text.encode())} bytes)") from None
        return None
    if not isinstance(obj, dict) or obj.get("schema") not in (ACK_SCHEMA, ACK_V1_SCHEMA):
        return None
    if obj["schema"] == ACK_V1_SCHEMA:
        return _settle_v1(obj, ids)
    return _settle_v2(obj, payload_lines(payload), ids)


def _settle_v1(obj: dict[str, Any], ids: Sequence[str]) -> Settlement:
    for key in ("stored", "duplicate"):
        if not isinstance(obj.get(key), list) or not all(isinstance(x, str) for x in obj[key]):
            raise BadAck(f"acknowledgement field {key!r} is not a list of ids")
    if not isinstance(obj.get("rejected"), list):
        raise BadAck("acknowledgement field 'rejected' is not a list")
    sent = set(ids)
    return Settlement(
        stored=[i for i in obj["stored"] if i in sent],
        duplicate=[i for i in obj["duplicate"] if i in sent],
        rejected={
            r["id"]: str(r.get("reason") or "rejected")
            for r in obj["rejected"]
            if isinstance(r, dict) and r.get("id") in sent
        },
    )


def _settle_v2(obj: dict[str, Any], lines: list[bytes], ids: Sequence[str]) -> Settlement:
    seen, upto, runs = obj.get("lines"), obj.get("upto"), obj.get("runs")
    if not (isinstance(seen, int) and isinstance(upto, int) and isinstance(runs, list)):
        raise BadAck("acknowledgement without lines/upto/runs")
    if not 0 <= upto <= seen <= len(lines) or len(lines) != len(ids):
        raise BadAck(f"acknowledgement for {seen} lines, this batch has {len(lines)}")
    if obj.get("digest") != lines_digest(lines[:seen]):
        raise BadAck("acknowledgement digest does not match this batch")
    error = obj.get("error")
    if isinstance(error, str) and error and upto == 0:
        raise NotStored(error[:300])
    reasons = {
        item[0]: str(item[1])
        for item in obj.get("reasons") or []
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
    }
    out = Settlement()
    index = 0
    for run in runs:
        if not (isinstance(run, str) and re.fullmatch(r"[sdr][0-9]{1,6}", run)):
            raise BadAck(f"bad run {str(run)[:20]!r} in acknowledgement")
        code, length = run[0], int(run[1:])
        if index + length > upto:
            raise BadAck("acknowledgement runs exceed the lines they cover")
        for k in range(index, index + length):
            if code == "s":
                out.stored.append(ids[k])
            elif code == "d":
                out.duplicate.append(ids[k])
            else:
                out.rejected[ids[k]] = reasons.get(k, "rejected")
        index += length
    if index != upto:
        raise BadAck("acknowledgement runs do not cover the lines they claim")
    return out
