"""Port-1000 payload handling shared by every stream backend: when is a payload whole, and what to reply.

``pilotctl connect`` writes its payload and then waits for one read of a reply without half-closing, so the receiver
must decide by itself when a payload is complete. Our batches say how many lines they hold (``batch_size`` on every
line); a bare seed message is complete when the buffer parses as one JSON object. Anything else waits for a short
idle gap. A wrong guess is harmless: the reply lists exactly what was stored, the sender resends the rest, and
dedup by id absorbs repeats.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilot_tui.model import Rejected, batch_size_of
from pilot_tui.store.events import IngestResult

ACK_SCHEMA = "pilot-tui.ack/1"


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


def _rejected_id(rej: Rejected) -> str | None:
    """The ``id`` a rejected line claims, if it is readable, so the sender can stop resending that event."""
    try:
        obj = orjson.loads(rej.raw)
    except orjson.JSONDecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and len(value) <= 128 else None


def build_ack(result: IngestResult) -> bytes:
    """The reply a sender gets: which ids were stored, which were already known, which lines were refused and why.

    Kept to one line of JSON; senders cap batches (100 events) so the reply fits in the single read ``connect``
    makes.
    """
    reply: dict[str, Any] = {
        "schema": ACK_SCHEMA,
        "stored": [e.id for e in result.stored],
        "duplicate": result.duplicates,
        "rejected": [
            {"line": r.index, "id": _rejected_id(r), "reason": r.reason} for r in result.rejected[:200]
        ],
    }
    return orjson.dumps(reply) + b"\n"


def parse_ack(text: str) -> dict[str, Any] | None:
    """Read an orchestrator's reply; ``None`` when it is not one of ours (e.g. a seed receiver's free text)."""
    try:
        obj = orjson.loads(text.strip().splitlines()[0]) if text.strip() else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("schema") != ACK_SCHEMA:
        return None
    for key in ("stored", "duplicate"):
        if not isinstance(obj.get(key), list) or not all(isinstance(x, str) for x in obj[key]):
            return None
    if not isinstance(obj.get("rejected"), list):
        return None
    return obj
