"""``send-message``: data exchange on port 1001, acknowledged by the receiving node and kept in its inbox.

Every message gets a fresh 32-hex ``message_id``; ``--reply-to <id>`` marks an answer (an inbox id is looked up
to its message_id) and ``--wait d`` then finds that answer in the sender's own inbox, counted from the ACK.
Validation order and texts follow pilotctl 1.18 as measured (``--data is required``, ``give --data or
--data-file, not both``, ``--wait must be a positive duration`` ... before the daemon is even asked).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from .cli_base import CliError, Ctx, dur, flag_int, parse_flags
from .cli_stream import dial, require_trust, resolve_target
from .client import DaemonDown, RemoteError
from .inbox import find_reply, message_id_for
from .proto import MSG_TYPES, PORT_DATAEXCHANGE, encode_tagged, go_json, go_quote, parse_duration_or_seconds

USAGE = (
    "usage: pilotctl send-message <address|hostname> --data <text> | --data - | --data-file <path> "
    "[--type text|json|binary] [--trace] [--count <n>] [--reuse-conn] [--wait <dur>] [--timeout <dur>] "
    "[--no-resend] [--reply-to <message-id>]"
)


def _positive(flags: dict[str, str], key: str, default: float) -> float:
    raw = flags[key]
    if raw == "true":
        return default
    try:
        value = parse_duration_or_seconds(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise CliError("invalid_argument", f"--{key} must be a positive duration")
    return value


def _os_error(op: str, path: str, exc: OSError) -> str:
    """Go's ``open /x: no such file or directory`` wording."""
    text = (exc.strerror or str(exc)).lower()
    return f"{op} {path}: {text}"


def _payload(ctx: Ctx, flags: dict[str, str]) -> bytes:
    if "data" in flags and "data-file" in flags:
        raise CliError("invalid_argument", "give --data or --data-file, not both")
    if "data-file" in flags:
        path = flags["data-file"]
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError as exc:
            raise CliError("invalid_argument", f"read --data-file: {_os_error('read', path, exc)}") from None
        except OSError as exc:
            raise CliError("invalid_argument", f"read --data-file: {_os_error('open', path, exc)}") from None
        if not data:
            raise CliError("invalid_argument", f"--data-file {path} is empty")
        return data
    raw = flags.get("data", "")
    data = ctx.stdin.read() if raw == "-" else raw.encode()
    if not data:
        raise CliError("invalid_argument", "--data is required")
    return data


def _read_ack(sock: socket.socket, deadline: float) -> str:
    """The receiving daemon's ACK frame text ('' when it never came)."""
    buf = b""
    need = 8
    while True:
        while len(buf) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                return ""
            if not chunk:
                return ""
            buf += chunk
        if need == 8:
            need = 8 + struct.unpack(">II", buf[:8])[1]
            continue
        return buf[8:need].decode("utf-8", "replace")


def _send_one(
    ctx: Ctx, node: int, addr: str, ftype: int, data: bytes, reply_to: str, deadline: float
) -> dict[str, Any]:
    message_id = os.urandom(16).hex()
    try:
        sock, _ = dial(ctx, node, PORT_DATAEXCHANGE, max(0.001, deadline - time.monotonic()))
    except (DaemonDown, RemoteError):
        raise CliError(
            "connection_failed",
            f"cannot connect to {addr} (data exchange port {PORT_DATAEXCHANGE})",
            f"check that {addr} is reachable: pilotctl ping {addr}",
        ) from None
    try:
        sock.sendall(encode_tagged(ftype, data, message_id, reply_to))
        ack = _read_ack(sock, deadline)
    except OSError as exc:
        return {"error": str(exc), "seq": 0}
    finally:
        sock.close()
    result: dict[str, Any] = {"bytes": len(data), "message_id": message_id, "reused": False, "tagged": True}
    if ack:
        result["ack"] = ack
    if reply_to:
        result["reply_to"] = reply_to
    return result


def cmd_send_message(ctx: Ctx, args: list[str]) -> int:
    """``send-message <host|addr> --data … [--type] [--wait d] [--reply-to id] [--count n] [--timeout d]``."""
    flags, pos = parse_flags(args)
    if not pos:
        raise CliError("invalid_argument", USAGE)
    data = _payload(ctx, flags)
    wait = _positive(flags, "wait", 30.0) if "wait" in flags else 0.0
    total = _positive(flags, "timeout", 30.0) if "timeout" in flags else 0.0
    count = max(1, flag_int(flags, "count", 1))
    msg_type = flags.get("type", "text")
    ctl = ctx.control()
    try:
        node, addr = resolve_target(ctx, ctl, pos[0])
        if msg_type not in MSG_TYPES:
            raise CliError(
                "invalid_argument", f"unknown type {go_quote(msg_type)} (use text, json, or binary)"
            )
        require_trust(ctl, node, addr)
    finally:
        ctl.close()
    reply_to = message_id_for(ctx, flags["reply-to"]) if flags.get("reply-to", "true") != "true" else ""
    deadline = time.monotonic() + (total or 30.0)
    cutoff = time.time() - 1.0
    results = []
    for seq in range(count):
        res = _send_one(ctx, node, addr, MSG_TYPES[msg_type], data, reply_to, deadline)
        res["seq"] = seq
        results.append(res)
    if count > 1:
        return ctx.ok({"results": results, "reuse_conn": False, "target": addr, "to": addr, "type": msg_type})
    result = dict(results[0], target=addr, to=addr, type=msg_type)
    if not wait:
        return ctx.ok(result)
    if not ctx.json:
        ctx.ok(result)
        ctx.err(f"waiting for reply from {pos[0]} (up to {dur(wait)})...")
    until = time.monotonic() + wait
    if total:
        until = min(until, deadline)
    while True:
        reply = find_reply(ctx, addr, str(result.get("message_id", "")), cutoff)
        if reply is not None:
            break
        if time.monotonic() >= until:
            raise CliError("timeout", f"no reply from {addr} within {dur(wait)}")
        time.sleep(0.02)
    if ctx.json:
        return ctx.ok(dict(result, reply=reply))
    ctx.out(go_json(reply, indent=True))
    return 0
