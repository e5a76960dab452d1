"""``connect``, ``recv``, ``publish`` and ``subscribe``: the stream commands, with pilotctl's exact behaviour.

Order of checks, texts and timers follow pilotctl 1.18 (source and measurements): resolve the target
(``not_found``), check trust (``trust_required``), then parse the port, then read the payload, then dial
(``connection_failed``). ``connect`` writes and waits for ONE read: a reply is printed, a close prints
``sent N bytes (no response)`` (exit 0), neither within ``--timeout`` is ``timeout`` (exit 1) although the data
was delivered. ``recv`` binds the port for its lifetime and reads each stream until EOF or its timeout.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import time
from typing import Any

from .cli_base import CliError, Ctx, dur, flag_duration, flag_int, parse_flags
from .client import CALL_TIMEOUT, Control, DaemonDown, RemoteError, connect_socket, open_stream, read_line
from .proto import (
    PORT_EVENTSTREAM,
    PORT_STDIO,
    dumps_line,
    encode_event,
    format_addr,
    go_json,
    go_quote,
    node_ref,
    parse_uint,
)

MAX_STDIN_LINE = 16 * 1024 * 1024


CONNECT_REPLY_MAX = 1152
"""Real ``pilotctl connect`` 1.18 makes one read of the reply and passes on at most its first 1,152 bytes (measured
on two daemons: a 1,083- or 1,122-byte reply arrives whole, anything from ~1,500 bytes comes back as exactly 1,152,
cut mid-line). A longer buffer here would hide every receiver bug that real replies expose."""


def resolve_target(ctx: Ctx, ctl: Control, arg: str) -> tuple[int, str]:
    """(node id, address) for an address, a bare node id or a hostname (``not_found`` otherwise)."""
    node = node_ref(arg)
    if node is not None:
        return node, format_addr(node)
    try:
        answer = ctl.call("resolve", hostname=arg)
    except RemoteError:
        raise CliError(
            "not_found",
            f"cannot resolve {go_quote(arg)} — is the hostname correct and is there mutual trust? "
            "(see: pilotctl handshake)",
        ) from None
    if not ctx.json:
        ctx.err(f"resolved {go_quote(arg)} → {answer['address']}")
    return int(answer["node_id"]), str(answer["address"])


def require_trust(ctl: Control, node: int, addr: str) -> None:
    """pilotctl refuses, client-side, to open a tunnel to a private node it has no mutual trust with."""
    answer = ctl.call("trust_check", node_id=node)
    if answer.get("trusted") or answer.get("public"):
        return
    hint = f"run: pilotctl handshake {addr}"
    if not answer.get("known"):
        raise CliError(
            "trust_required",
            f"cannot look up peer {addr} (node not found); refusing tunnel to untrusted node",
            hint,
        )
    raise CliError("trust_required", f"refusing tunnel to private node {addr} without trust", hint)


def dial(ctx: Ctx, node: int, port: int, timeout: float) -> tuple[socket.socket, bytes]:
    """A stream to node:port through our daemon; RemoteError carries the daemon's reason."""
    sock, rest, _ = open_stream(
        ctx.socket, {"op": "dial", "node_id": node, "port": port, "timeout": timeout}, timeout
    )
    return sock, rest


def scan_lines(raw: bytes) -> bytes:
    """What pilotctl does to piped stdin (bufio.Scanner): CRLF -> LF, leading blank lines and final newline dropped."""
    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    out = bytearray()
    for tok in parts:
        if len(tok) > MAX_STDIN_LINE:
            raise CliError("invalid_argument", "reading stdin: bufio.Scanner: token too long")
        if tok.endswith(b"\r"):
            tok = tok[:-1]
        if out:
            out += b"\n"
        out += tok
    return bytes(out)


def _stdin_is_terminal(ctx: Ctx) -> bool:
    """A tty or /dev/null (both character devices): pilotctl then insists on --message."""
    try:
        return stat.S_ISCHR(os.fstat(ctx.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def cmd_connect(ctx: Ctx, args: list[str]) -> int:
    """``connect <host|addr> [port] [--message m] [--timeout d]`` — send, then wait for one reply."""
    flags, pos = parse_flags(args)
    if not pos:
        raise CliError(
            "invalid_argument",
            "usage: pilotctl connect <address|hostname> [port] [--message <msg>] [--timeout <dur>]",
        )
    ctl = ctx.control()
    try:
        node, addr = resolve_target(ctx, ctl, pos[0])
        require_trust(ctl, node, addr)
    finally:
        ctl.close()
    port = PORT_STDIO
    if len(pos) > 1:
        try:
            port = parse_uint(pos[1], 16)
        except ValueError as exc:
            raise CliError("invalid_argument", f"invalid port {go_quote(pos[1])}: {exc}") from None
    message = flags.get("message", "")
    timeout = flag_duration(flags, "timeout", 30.0)
    if message:
        payload, read_err = message.encode(), "read"
    else:
        if _stdin_is_terminal(ctx):
            raise CliError(
                "invalid_argument",
                "--message is required (interactive mode not supported)",
                "use --message to send a single message, or pipe data via stdin",
            )
        payload, read_err = scan_lines(ctx.stdin.read()), "read failed"
        if not payload:
            raise CliError("invalid_argument", "no data on stdin — use --message or pipe data")
    try:
        sock, rest = dial(ctx, node, port, timeout)
    except (DaemonDown, RemoteError):
        raise CliError(
            "connection_failed",
            f"cannot connect to {addr} port {port}",
            f"check that {addr} is reachable: pilotctl ping {addr}",
        ) from None
    try:
        try:
            sock.sendall(payload)
        except OSError as exc:
            raise CliError("connection_failed", f"write failed: {exc}") from None
        reply = rest[:CONNECT_REPLY_MAX]
        if not reply:
            sock.settimeout(max(timeout, 1e-4))
            try:
                reply = sock.recv(CONNECT_REPLY_MAX)
            except TimeoutError:
                raise CliError(
                    "timeout",
                    f"no response within {dur(timeout)}",
                    "increase with --timeout, or check if the target is listening on that port",
                ) from None
            except OSError as exc:
                raise CliError("connection_failed", f"{read_err}: {exc}") from None
    finally:
        sock.close()
    response = reply.decode("utf-8", "replace")
    sent = payload.decode("utf-8", "replace")
    if ctx.json:
        return ctx.ok({"port": port, "response": response, "sent": sent, "target": addr})
    if response:
        ctx.out(response)
    else:
        ctx.err(f"sent {len(payload)} bytes (no response)")
    return 0


def _read_all(sock: socket.socket, rest: bytes, deadline: float) -> tuple[bytes, str]:
    """Read until EOF or the deadline: (data, error text when nothing at all was read)."""
    chunks = [rest] if rest else []
    err = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            err = "i/o timeout"
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            err = "i/o timeout"
            break
        except OSError as exc:
            err = str(exc)
            break
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    return data, ("" if data else err)


def _recv_done(ctx: Ctx, messages: list[dict[str, Any]], timed_out: bool) -> int:
    if ctx.json:
        return ctx.ok({"messages": messages or None, "timeout": timed_out})
    if timed_out:
        ctx.err("timeout")
    return 0


def cmd_recv(ctx: Ctx, args: list[str]) -> int:
    """``recv <port> [--count n] [--timeout d]`` — the CLI's only stream receiver; it never replies."""
    flags, pos = parse_flags(args)
    if not pos:
        raise CliError("invalid_argument", "usage: pilotctl recv <port> [--count <n>] [--timeout <dur>]")
    try:
        port = parse_uint(pos[0], 16)
    except ValueError as exc:
        raise CliError("invalid_argument", f"invalid port {go_quote(pos[0])}: {exc}") from None
    count = flag_int(flags, "count", 1)
    timeout = flag_duration(flags, "timeout", 30.0)
    ctx.control().close()  # not_running before anything else, as pilotctl's connectDriver
    try:
        ctl, _, answer = open_stream(ctx.socket, {"op": "listen", "port": port}, CALL_TIMEOUT)
    except DaemonDown:
        raise CliError("connection_failed", "accept error") from None
    except RemoteError as exc:
        raise CliError("connection_failed", f"listen: {exc}") from None
    lid = answer["lid"]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        for i in range(count):
            if time.monotonic() >= deadline:
                return _recv_done(ctx, messages, True)
            try:
                sock = connect_socket(ctx.socket)
            except DaemonDown:
                raise CliError("connection_failed", "accept error") from None
            try:
                sock.sendall(dumps_line({"op": "accept", "port": port, "lid": lid}))
                try:
                    line, rest = read_line(sock, b"", deadline)
                except TimeoutError:
                    return _recv_done(ctx, messages, True)
                if not line or b'"ok"' not in line:
                    raise CliError("connection_failed", "accept error")
                data, err = _read_all(sock, rest, time.monotonic() + timeout)
            finally:
                sock.close()
            msg: dict[str, Any] = {"port": port, "seq": i}
            if err:
                msg["error"] = err
            else:
                msg["bytes"], msg["data"] = len(data), data.decode("utf-8", "replace")
            messages.append(msg)
            if not ctx.json:
                if err:
                    ctx.err(f"error: {err}")
                else:
                    ctx.out(msg["data"])
    finally:
        ctl.close()
    return _recv_done(ctx, messages, False)


def _target_and_dial(
    ctx: Ctx, arg: str, what: str, data_required: str | None = None
) -> tuple[str, socket.socket, bytes]:
    """Resolve + trust + (payload check) + dial the target's event stream (port 1002)."""
    ctl = ctx.control()
    try:
        node, addr = resolve_target(ctx, ctl, arg)
        require_trust(ctl, node, addr)
    finally:
        ctl.close()
    if data_required is not None and not data_required:
        raise CliError("invalid_argument", "--data is required")
    try:
        sock, rest = dial(ctx, node, PORT_EVENTSTREAM, 30.0)
    except (DaemonDown, RemoteError):
        raise CliError(
            "connection_failed",
            f"{what} {addr} (event stream port {PORT_EVENTSTREAM})",
            f"check that {addr} is reachable: pilotctl ping {addr}",
        ) from None
    return addr, sock, rest


def cmd_publish(ctx: Ctx, args: list[str]) -> int:
    """``publish <broker> <topic> --data m`` — one event on the broker node's event stream."""
    flags, pos = parse_flags(args)
    if len(pos) < 2:
        raise CliError(
            "invalid_argument", "usage: pilotctl publish <address|hostname> <topic> --data <message>"
        )
    data = flags.get("data", "")
    addr, sock, _ = _target_and_dial(ctx, pos[0], "cannot connect to", data)
    topic = pos[1]
    try:
        sock.sendall(encode_event(topic, b"") + encode_event(topic, data.encode()))
    except OSError as exc:
        raise CliError("connection_failed", f"publish failed: {exc}") from None
    finally:
        sock.close()
    return ctx.ok(
        {"bytes": len(data.encode()), "target": addr, "topic": topic},
        f"published {len(data.encode())} bytes to {topic!r} on {addr}",
    )


class _Frames:
    """Buffered event-frame reader with an optional overall deadline."""

    def __init__(self, sock: socket.socket, rest: bytes, deadline: float | None) -> None:
        self.sock, self.buf, self.deadline = sock, rest, deadline

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.deadline is not None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError from None
            if not chunk:
                raise EOFError("EOF")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def event(self) -> tuple[str, bytes]:
        (tlen,) = struct.unpack(">H", self.exact(2))
        topic = self.exact(tlen).decode("utf-8", "replace")
        (plen,) = struct.unpack(">I", self.exact(4))
        return topic, self.exact(plen)


def cmd_subscribe(ctx: Ctx, args: list[str]) -> int:
    """``subscribe <broker> <topic|*> [--count n] [--timeout d]`` — without --count, stream NDJSON lines."""
    flags, pos = parse_flags(args)
    if len(pos) < 2:
        raise CliError(
            "invalid_argument",
            "usage: pilotctl subscribe <address|hostname> <topic> [--count <n>] [--timeout <dur>]",
        )
    addr, sock, rest = _target_and_dial(ctx, pos[0], "cannot subscribe on")
    topic = pos[1]
    count = flag_int(flags, "count", 0)
    timeout = flag_duration(flags, "timeout", 0.0)
    events: list[dict[str, Any]] = []  # kept only with --count (an endless stream must not grow memory)
    received = 0
    try:
        sock.sendall(encode_event(topic, b""))
        if not ctx.json:
            ctx.err(f"subscribed to {go_quote(topic)} on {addr} — waiting for events...")
        frames = _Frames(sock, rest, time.monotonic() + timeout if timeout > 0 else None)
        while not (count > 0 and received >= count):
            try:
                etopic, payload = frames.event()
            except TimeoutError:
                if ctx.json and count > 0:
                    return ctx.ok({"events": events or None, "timeout": True})
                if not ctx.json:
                    ctx.err("timeout")
                return 0
            except (EOFError, OSError) as exc:
                if count > 0 and received:
                    return ctx.ok({"error": str(exc), "events": events, "timeout": False}) if ctx.json else 0
                raise CliError("connection_failed", f"recv: {exc}") from None
            msg = {"bytes": len(payload), "data": payload.decode("utf-8", "replace"), "topic": etopic}
            received += 1
            if count > 0:
                events.append(msg)
            if not ctx.json:
                ctx.out(f"[{etopic}] {msg['data']}")
            elif count == 0:
                ctx.out(go_json(msg))
    finally:
        sock.close()
    return ctx.ok({"events": events, "timeout": False}) if ctx.json else 0
