"""Blocking client side of a sim node's socket, shared by the ``pilot-sim`` CLI and the SDK twin.

Plain sockets, no asyncio: every CLI invocation is a short process and must start fast. The protocol is one JSON
line per request and per answer; a ``dial``/``listen``/``accept`` connection turns into a raw byte stream after
its ``ok`` line, so any bytes read past that line are handed back to the caller (``leftover``).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from .proto import dumps_line

CALL_TIMEOUT = 10.0
"""Seconds a question may take: every one is answered at once by a sim node, so a silent socket is not one."""


class DaemonDown(Exception):
    """Nothing answers on the socket (no daemon, or a stale socket file)."""


class RemoteError(Exception):
    """The daemon answered with an error; ``str()`` is its message."""


def connect_socket(path: str) -> socket.socket:
    """A connected Unix socket to the node, or :class:`DaemonDown`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise DaemonDown(f"connect {path}: {exc.strerror or exc}") from None
    return sock


def read_line(sock: socket.socket, buf: bytes = b"", deadline: float | None = None) -> tuple[bytes, bytes]:
    """Read up to a newline: (line without it, bytes after it). ``(b"", b"")`` at EOF; TimeoutError at deadline."""
    while b"\n" not in buf:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the daemon")
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("timed out waiting for the daemon") from None
        finally:
            if deadline is not None:
                sock.settimeout(None)
        if not chunk:
            return b"", b""
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


class Control:
    """A question/answer connection to one node (``info``, ``resolve``, ``handshake``...)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = connect_socket(path)
        self._buf = b""

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request; its answer, or :class:`RemoteError` (also for a socket that is not a sim node)."""
        try:
            self.sock.sendall(dumps_line({"op": op, **fields}))
            line, self._buf = read_line(self.sock, self._buf, time.monotonic() + CALL_TIMEOUT)
        except TimeoutError:
            raise RemoteError(
                f"no answer on {self.path} within {CALL_TIMEOUT:g}s (not a pilot-sim node?)"
            ) from None
        except OSError as exc:
            raise RemoteError(f"daemon connection lost: {exc}") from None
        if not line:
            raise RemoteError("daemon closed the connection")
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:
            raise RemoteError(f"unexpected answer on {self.path} (not a pilot-sim node?)") from None
        if not isinstance(answer, dict):
            raise RemoteError(f"unexpected answer on {self.path} (not a pilot-sim node?)")
        if "error" in answer:
            raise RemoteError(str(answer["error"]))
        return answer

    def close(self) -> None:
        """Close the connection (idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass


def open_stream(
    path: str, request: dict[str, Any], timeout: float | None = None
) -> tuple[socket.socket, bytes, dict[str, Any]]:
    """Send a stream request (dial/listen/accept); on ``ok`` return (socket, leftover bytes, answer).

    ``timeout`` bounds only the wait for the answer line (a dial); ``None`` waits forever (an accept).
    """
    sock = connect_socket(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        sock.sendall(dumps_line(request))
        line, rest = read_line(sock, b"", deadline)
    except (OSError, TimeoutError) as exc:
        sock.close()
        if isinstance(exc, TimeoutError):
            op = str(request.get("op"))
            raise RemoteError(f"{op}: daemon: {op} timeout") from None
        raise RemoteError(f"daemon connection lost: {exc}") from None
    if not line:
        sock.close()
        raise RemoteError("daemon closed the connection")
    try:
        answer: dict[str, Any] = json.loads(line)
    except ValueError:
        sock.close()
        raise RemoteError(f"unexpected answer on {path} (not a pilot-sim node?)") from None
    if "error" in answer:
        sock.close()
        raise RemoteError(str(answer["error"]))
    return sock, rest, answer
