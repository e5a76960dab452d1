"""A twin of the ``pilotprotocol`` SDK (``pilotprotocol.client``) that talks to a pilot-sim node.

Same class names, method names, signatures, blocking behaviour and exception class as the real ctypes SDK, so one
thread-based stream server can run on either::

    d = Driver("/tmp/pilot.sock")          # like the real one, it does not read $PILOT_SOCKET
    ln = d.listen(1000)                    # binds in the node's port table (a `recv 1000` then fails)
    conn = ln.accept()                     # blocks; ln.close() from another thread ends it with PilotError
    conn.set_read_deadline(time.time() + 5)
    data = conn.read(4096)                 # b"" at EOF; PilotError past the deadline
    conn.write(b"stored 1\\n"); conn.close()

``Driver.dial("0:0000.0000.0002:1000", timeout=5)`` opens a stream the other way. Calls block: run them in
threads, exactly as with the real SDK.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from .client import CALL_TIMEOUT, Control, DaemonDown, RemoteError, connect_socket, open_stream, read_line
from .proto import (
    DEFAULT_SOCKET,
    MSG_TYPES,
    PORT_DATAEXCHANGE,
    PORT_EVENTSTREAM,
    dumps_line,
    encode_dx_frame,
    encode_event,
    node_ref,
    parse_uint,
)

DEFAULT_SOCKET_PATH = DEFAULT_SOCKET


class PilotError(Exception):
    """Raised for every failure, as ``pilotprotocol.PilotError`` is."""


class Conn:
    """A stream connection (one accepted or dialled stream)."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"", remote: str = "") -> None:
        self._sock = sock
        self._buf = leftover
        self._closed = False
        self._deadline: float | None = None
        self.remote_addr = remote
        # close() from another thread must end a blocked read() at once, as the real SDK's does. Closing the fd
        # under a reader is not safe: its number can be reused by the next socket before the reader polls it, and
        # the read then waits on a stranger's socket until its deadline. So close() only shuts the socket down
        # while a read is running, and the reader closes the fd when it leaves.
        self._io_lock = threading.Lock()
        self._readers = 0

    def read(self, size: int = 4096) -> bytes:
        """Read up to ``size`` bytes; blocks until data arrives. ``b""`` at EOF."""
        with self._io_lock:
            if self._closed:
                raise PilotError("connection closed")
            self._readers += 1
        try:
            return self._read(size)
        finally:
            with self._io_lock:
                self._readers -= 1
                close_now = self._closed and self._readers == 0
            if close_now:
                self._sock.close()

    def _read(self, size: int) -> bytes:
        if size <= 0:
            return b""
        if self._buf:
            data, self._buf = self._buf[:size], self._buf[size:]
            return data
        deadline = self._deadline
        try:
            if deadline is not None:
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise PilotError("read: i/o timeout (deadline exceeded)")
                self._sock.settimeout(remaining)
            else:
                self._sock.settimeout(None)
            data = self._sock.recv(min(size, 16 * 1024 * 1024))
        except TimeoutError:
            raise PilotError("read: i/o timeout (deadline exceeded)") from None
        except OSError as exc:
            if self._closed:
                raise PilotError("connection closed") from None
            raise PilotError(f"read: {exc}") from None
        if self._closed:  # closed by another thread while we were blocked
            raise PilotError("connection closed")
        return data

    def read_full(self, size: int) -> bytes:
        """Read exactly ``size`` bytes, fewer only when the peer stops sending."""
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = self.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def write(self, data: bytes) -> int:
        """Write bytes; returns how many were written."""
        if self._closed:
            raise PilotError("connection closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise PilotError(f"write: {exc}") from None
        return len(data)

    def close(self) -> None:
        """Close the stream (the peer reads EOF); a read blocked in another thread ends at once."""
        with self._io_lock:
            if self._closed:
                return
            self._closed = True
            reading = self._readers > 0
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not reading:  # else the reader closes the fd once it is out of recv (see __init__)
            self._sock.close()

    def set_read_deadline(self, deadline: float | None) -> None:
        """Unix time after which ``read()`` raises :class:`PilotError`; ``None`` clears it."""
        if self._closed:
            raise PilotError("connection closed")
        self._deadline = deadline

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Listener:
    """A bound port. The binding lives as long as this object's control connection."""

    def __init__(self, socket_path: str, ctl: socket.socket, port: int, lid: int) -> None:
        self._path = socket_path
        self._ctl = ctl
        self.port = port
        self._lid = lid
        self._closed = False
        self._lock = threading.Lock()
        self._waiting: set[socket.socket] = set()

    def accept(self) -> Conn:
        """Block until a stream arrives on the port; :class:`PilotError` once the listener is closed."""
        if self._closed:
            raise PilotError("listener closed")
        try:
            sock = connect_socket(self._path)
        except DaemonDown as exc:
            raise PilotError(f"accept: {exc}") from None
        with self._lock:
            if self._closed:
                sock.close()
                raise PilotError("listener closed")
            self._waiting.add(sock)
        try:
            sock.sendall(_line({"op": "accept", "port": self.port, "lid": self._lid}))
            line, rest = read_line(sock)
        except OSError:
            line, rest = b"", b""
        finally:
            with self._lock:
                self._waiting.discard(sock)
        answer = _parse(line)
        if self._closed or not answer.get("ok"):
            sock.close()
            raise PilotError(answer.get("error") or "listener closed")
        return Conn(sock, rest, str(answer.get("remote", "")))

    def close(self) -> None:
        """Unbind the port; a blocked ``accept()`` in another thread raises :class:`PilotError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiting = list(self._waiting)
        for sock in [self._ctl, *waiting]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._ctl.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Driver:
    """Connection to one sim node's daemon (``Driver(socket_path)``)."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET_PATH) -> None:
        self._path = socket_path
        try:
            self._ctl = Control(socket_path)
        except DaemonDown as exc:
            raise PilotError(f"daemon not running: {exc}") from None
        self._lock = threading.Lock()
        self._closed = False
        self._listeners: list[Listener] = []

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        if self._closed:
            raise PilotError("driver closed")
        with self._lock:
            try:
                return self._ctl.call(op, **fields)
            except RemoteError as exc:
                raise PilotError(str(exc)) from None

    def close(self) -> None:
        """Disconnect; listeners opened through this driver are closed too."""
        if self._closed:
            return
        self._closed = True
        for ln in self._listeners:
            ln.close()
        self._ctl.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """The node's status (node_id, address, hostname, ...)."""
        return self._call("info")

    def resolve_hostname(self, hostname: str) -> dict[str, Any]:
        """node_id / address of a registered hostname."""
        return self._call("resolve", hostname=hostname)

    def handshake(self, node_id: int, justification: str = "") -> dict[str, Any]:
        """Ask ``node_id`` to trust this node."""
        return self._call("handshake", node_id=node_id, justification=justification)

    def approve_handshake(self, node_id: int) -> dict[str, Any]:
        """Approve ``node_id``'s pending request (traffic then flows both ways; our trust entry says mutual: false)."""
        return self._call("approve", node_id=node_id)

    def reject_handshake(self, node_id: int, reason: str = "") -> dict[str, Any]:
        """Reject ``node_id``'s pending request."""
        return self._call("reject", node_id=node_id, reason=reason)

    def pending_handshakes(self) -> dict[str, Any]:
        """Requests waiting for this node's approval."""
        return self._call("pending")

    def trusted_peers(self) -> dict[str, Any]:
        """Peers this node trusts."""
        return self._call("trusted")

    def dial(self, addr: str, timeout: float | None = None) -> Conn:
        """Open a stream to ``"N:XXXX.YYYY.YYYY:PORT"`` (a hostname works too)."""
        host, _, port_text = addr.rpartition(":")
        try:
            port = parse_uint(port_text, 16)
        except ValueError as exc:
            raise PilotError(f"dial: invalid address {addr!r}: {exc}") from None
        node = node_ref(host)
        if node is None:
            node = int(self.resolve_hostname(host)["node_id"])
        request = {"op": "dial", "node_id": node, "port": port, "timeout": timeout or 30.0}
        try:
            sock, rest, _ = open_stream(self._path, request, None if timeout is None else timeout + 1.0)
        except (DaemonDown, RemoteError) as exc:
            raise PilotError(str(exc)) from None
        return Conn(sock, rest, host)

    def listen(self, port: int) -> Listener:
        """Bind ``port`` on this node; :class:`PilotError` when it is already bound."""
        try:
            sock, _, answer = open_stream(self._path, {"op": "listen", "port": int(port)}, CALL_TIMEOUT)
        except (DaemonDown, RemoteError) as exc:
            raise PilotError(str(exc)) from None
        ln = Listener(self._path, sock, int(port), int(answer["lid"]))
        self._listeners.append(ln)
        return ln

    def send_message(self, target: str, data: bytes, msg_type: str = "text") -> dict[str, Any]:
        """Data exchange (port 1001), as the real SDK does it: one frame, then the daemon's ACK."""
        addr = self._address(target)
        with self.dial(f"{addr}:{PORT_DATAEXCHANGE}") as conn:
            conn.write(encode_dx_frame(MSG_TYPES.get(msg_type, 1), data))
            header = conn.read_full(8)
            ack = conn.read_full(int.from_bytes(header[4:8], "big")).decode() if len(header) == 8 else ""
        return {"sent": len(data), "type": msg_type, "target": addr, **({"ack": ack} if ack else {})}

    def publish_event(self, target: str, topic: str, data: bytes) -> dict[str, Any]:
        """Publish one event on ``target``'s event stream (port 1002)."""
        with self.dial(f"{self._address(target)}:{PORT_EVENTSTREAM}") as conn:
            conn.write(encode_event(topic, b""))
            conn.write(encode_event(topic, data))
        return {"status": "published", "topic": topic, "bytes": len(data)}

    def _address(self, target: str) -> str:
        return target if node_ref(target) is not None else str(self.resolve_hostname(target)["address"])


def _line(obj: dict[str, Any]) -> bytes:
    return dumps_line(obj)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line) if line else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}
