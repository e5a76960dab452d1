"""The two services every sim node runs itself, as the real daemon does: data exchange (1001) and events (1002).

Both run inside the daemon on streams that arrived from a peer daemon, so the bytes really travel between two
processes. Data exchange stores each message as one JSON file in the node's inbox — the real daemon's file name
and record format, measured with pilotctl 1.18 — and answers each frame with an ``ACK <TYPE> <n> bytes`` frame.
The event stream is a tiny broker: the first frame on a connection subscribes it to a topic (or ``*``), every
later frame is published to the other subscribers of that topic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import struct
import time
from pathlib import Path

from .proto import (
    MAX_FRAME,
    MAX_TOPIC,
    TYPE_NAMES,
    TYPE_TAGGED,
    TYPE_TEXT,
    decode_tagged,
    encode_dx_frame,
    encode_event,
    inbox_stamp,
    rfc3339nano,
)

log = logging.getLogger("pilot_sim.services")
_seq = itertools.count(1)


def write_inbox_message(
    inbox: Path, ftype: int, payload: bytes, sender: str, message_id: str = "", reply_to: str = ""
) -> Path:
    """Store one received message the way the real daemon does; returns the file written."""
    inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = time.time_ns()
    name = TYPE_NAMES.get(ftype, f"TYPE{ftype}")
    record: dict[str, object] = {
        "bytes": len(payload),
        "from": sender,
        "received_at": rfc3339nano(now),
        "type": name,
    }
    if message_id:
        record["message_id"] = message_id
    if reply_to:
        record["reply_to"] = reply_to
    text: str | None = None
    if name != "BINARY":  # binary frames and invalid UTF-8 are kept losslessly as base64, like the real one
        with contextlib.suppress(UnicodeDecodeError):
            text = payload.decode("utf-8")
    if text is None:
        record["data_b64"] = base64.b64encode(payload).decode()
        record["data_encoding"] = "base64"
    else:
        record["data"] = text
        record["data_encoding"] = "utf8"
    path = inbox / f"{name}-{inbox_stamp(now)}-{next(_seq):06d}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    os.replace(tmp, path)  # readers (inbox listing, --wait) never see a half-written file
    return path


async def serve_dataexchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: str, inbox: Path
) -> None:
    """Port 1001: read frames until EOF, store each in the inbox, answer each with an ACK frame."""
    try:
        while True:
            try:
                header = await reader.readexactly(8)
            except asyncio.IncompleteReadError:
                return
            ftype, length = struct.unpack(">II", header)
            if length > MAX_FRAME:
                writer.write(encode_dx_frame(TYPE_TEXT, b"ERR frame too large"))
                await writer.drain()
                return
            payload = await reader.readexactly(length)
            message_id = reply_to = ""
            if ftype == TYPE_TAGGED:
                ftype, payload, message_id, reply_to = decode_tagged(payload)
            name = TYPE_NAMES.get(ftype, f"TYPE{ftype}")
            if ftype in TYPE_NAMES and name != "FILE":
                try:
                    path = write_inbox_message(inbox, ftype, payload, sender, message_id, reply_to)
                    log.info("inbox message saved path=%s type=%s bytes=%d", path, name, len(payload))
                    ack = f"ACK {name} {len(payload)} bytes"
                except OSError as exc:
                    ack = f"ERR {name} save failed: {exc}"
            else:
                ack = f"ERR {name} save failed: unsupported frame type {ftype}"
            writer.write(encode_dx_frame(TYPE_TEXT, ack.encode()))
            await writer.drain()
    except (ConnectionError, OSError, ValueError, KeyError, asyncio.IncompleteReadError) as exc:
        log.info("dataexchange connection from %s ended: %s", sender, exc)


class EventBroker:
    """Port 1002: topic subscriptions of this node's event stream (``*`` matches every topic)."""

    def __init__(self) -> None:
        self._subs: dict[asyncio.StreamWriter, str] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sender: str) -> None:
        """Handle one connection: first frame subscribes, later frames are published to the others."""
        try:
            first = await _read_event(reader)
            if first is None:
                return
            self._subs[writer] = first[0]
            while True:
                event = await _read_event(reader)
                if event is None:
                    return
                await self.publish(event[0], event[1], source=writer)
        except (ConnectionError, OSError, ValueError) as exc:
            log.info("eventstream connection from %s ended: %s", sender, exc)
        finally:
            self._subs.pop(writer, None)

    async def publish(self, topic: str, payload: bytes, source: asyncio.StreamWriter | None = None) -> int:
        """Forward one event to every matching subscriber except ``source``; returns how many got it."""
        frame = encode_event(topic, payload)
        delivered = 0
        for sub, pattern in list(self._subs.items()):
            if sub is source or (pattern != "*" and pattern != topic):
                continue
            try:
                sub.write(frame)
                await sub.drain()
                delivered += 1
            except (ConnectionError, OSError):
                self._subs.pop(sub, None)
        return delivered

    @property
    def subscribers(self) -> int:
        """How many connections are subscribed (tests wait on it before publishing)."""
        return len(self._subs)

    def close(self) -> None:
        """Drop every subscriber (daemon shutdown)."""
        for sub in list(self._subs):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                sub.close()
        self._subs.clear()


async def _read_event(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """One event frame, or None at a clean EOF."""
    try:
        (tlen,) = struct.unpack(">H", await reader.readexactly(2))
        if tlen > MAX_TOPIC:
            raise ValueError("topic too long")
        topic = (await reader.readexactly(tlen)).decode("utf-8", "replace")
        (plen,) = struct.unpack(">I", await reader.readexactly(4))
        if plen > MAX_FRAME:
            raise ValueError("event too large")
        return topic, await reader.readexactly(plen)
    except asyncio.IncompleteReadError:
        return None
