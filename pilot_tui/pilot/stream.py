"""Stream servers: "listen on Pilot port P, read a payload, reply, close".

pilotctl has no replying stream server (``recv`` never answers, see pilotctl-contract.md), so three backends exist:

``sdk``
    the ``pilotprotocol`` package's ctypes listener — the real network, able to reply (connect returns in ~14 ms).
``sim``
    :mod:`pilot_tui.sim.sdk`, the emulator's twin of that SDK, same API — used by the demo and the tests.
``recv``
    a loop of short ``pilotctl recv`` runs: works with any pilotctl but cannot reply, so each sender's ``connect``
    waits for its own timeout and a connect that lands between two runs fails. Its status says so.

Both SDKs block, so they run on private threads (never the loop's default executor, whose few threads a blocked
``accept`` would starve), split three ways so that nothing a peer does can stall accepting: ``accept`` has a thread
of its own, each connection's blocking read/write takes one thread of an I/O pool sized for the connections the
caller handles at once, and the calls that never wait on a peer (opening, close) have their own small pool — so
closing an idle connection is never queued behind the reads it is meant to end. Every backend hands out
:class:`StreamConn` objects with async reads bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .driver import Pilotctl, check_port
from .errors import ConnectionFailed, PilotError


class StreamConn(Protocol):
    """One accepted connection. ``read`` returns ``b""`` at end of stream and raises TimeoutError on its deadline."""

    can_reply: bool

    async def read(self, size: int, timeout: float) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StreamListener(Protocol):
    """A bound port that yields connections until closed."""

    kind: str
    can_reply: bool
    port: int

    def describe(self) -> str: ...

    async def accept(self) -> StreamConn: ...

    async def close(self) -> None: ...


class _ThreadConn:
    """An SDK connection (real or sim) driven from asyncio through the listener's private thread pools."""

    can_reply = True

    def __init__(self, conn: Any, io_pool: ThreadPoolExecutor, ctl_pool: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._io = io_pool
        self._ctl = ctl_pool

    def _read_by(self, size: int, deadline: float) -> bytes:
        # deadline and read in one thread hop: the read holds an I/O thread, and only until ``deadline``
        self._conn.set_read_deadline(deadline)
        return bytes(self._conn.read(size))

    async def read(self, size: int, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = time.time() + timeout
        try:
            return await loop.run_in_executor(self._io, self._read_by, size, deadline)
        except Exception as exc:  # the SDKs raise their own PilotError for deadlines and resets
            if time.time() >= deadline - 0.01:
                raise TimeoutError(f"no data within {timeout:g}s") from None
            raise ConnectionError(f"stream read failed: {exc}") from None

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._conn.write, data)

    async def close(self) -> None:
        """Close at once, even while a read is blocked on this connection (that read then fails)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._ctl, self._conn.close)


class SdkListener:
    """A listener on top of an SDK ``Driver`` class (``pilotprotocol.Driver`` or ``pilot_tui.sim.sdk.Driver``)."""

    can_reply = True

    def __init__(
        self, driver_cls: Callable[[str], Any], socket_path: str, port: int, kind: str, *, io_threads: int = 64
    ) -> None:
        """``io_threads`` bounds blocking reads/writes in flight: give at least one per connection handled at once,
        or reads queue behind each other (accept never does: it has its own thread)."""
        self.kind = kind
        self.port = check_port(port)
        self._driver_cls = driver_cls
        self._socket_path = socket_path
        name = f"pilot-{kind}-{port}"
        self._accept_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-accept")
        self._io_pool = ThreadPoolExecutor(max_workers=max(1, io_threads), thread_name_prefix=f"{name}-io")
        self._ctl_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"{name}-ctl")
        self._driver: Any = None
        self._listener: Any = None

    def describe(self) -> str:
        return f"{self.kind} stream server on port {self.port} (replies with stored ids)"

    async def start(self) -> SdkListener:
        """Open the driver and bind the port; raises :class:`ConnectionFailed` when that fails."""
        loop = asyncio.get_running_loop()
        try:
            self._driver = await loop.run_in_executor(self._ctl_pool, self._driver_cls, self._socket_path)
            self._listener = await loop.run_in_executor(self._ctl_pool, self._driver.listen, self.port)
        except Exception as exc:  # the SDKs raise their own error classes, not ours
            await self.close()
            raise ConnectionFailed(f"cannot listen on port {self.port}: {exc}") from None
        return self

    async def accept(self) -> StreamConn:
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(self._accept_pool, self._listener.accept)
        except Exception as exc:
            raise ConnectionFailed(f"accept on port {self.port} failed: {exc}") from None
        return _ThreadConn(conn, self._io_pool, self._ctl_pool)

    async def close(self) -> None:
        # Closing the listener from another thread is what ends a blocked accept() in both SDKs.
        for obj in (self._listener, self._driver):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        self._listener = self._driver = None
        for pool in (self._accept_pool, self._io_pool, self._ctl_pool):
            pool.shutdown(wait=False, cancel_futures=True)


class _BufferedConn:
    """A whole message collected by ``pilotctl recv``: read once, then EOF. It cannot reply."""

    can_reply = False

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    async def read(self, size: int, timeout: float) -> bytes:
        data, self._data = self._data or b"", None
        return data

    async def write(self, data: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


class RecvLoopListener:
    """The last resort: back-to-back ``pilotctl recv PORT --count 1 --timeout T`` runs.

    The gap between two runs is one process start (~10-14 ms); a connect landing in it fails with
    ``connection_failed`` and is retried by the sender. Senders cannot learn what was stored, only that connect
    finished.
    """

    kind = "recv"
    can_reply = False

    def __init__(self, pilotctl: Pilotctl, port: int, *, run_timeout: float = 1.0) -> None:
        self.port = check_port(port)
        self._pilotctl = pilotctl
        self._run_timeout = run_timeout
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=256)
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return (
            f"pilotctl recv loop on port {self.port} — degraded: cannot reply, each sender's connect waits for "
            "its timeout (install 'pilot-tui[pilot]' for the SDK stream server)"
        )

    async def start(self) -> RecvLoopListener:
        # One probing run surfaces "port already bound" / "daemon not running" to the caller at once.
        first = await self._pilotctl.recv(self.port, count=1, timeout=0.05)
        for message in first:
            self._queue.put_nowait(message.data.encode())
        self._task = asyncio.create_task(self._loop(), name=f"recv-loop-{self.port}")
        return self

    async def _loop(self) -> None:
        while True:
            try:
                messages = await self._pilotctl.recv(self.port, count=1, timeout=self._run_timeout)
            except PilotError as exc:
                await self._queue.put(exc)
                return
            for message in messages:
                await self._queue.put(message.data.encode())

    async def accept(self) -> StreamConn:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return _BufferedConn(item)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # gather, not suppress(CancelledError): a cancel aimed at the caller must still reach it
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def open_stream_listener(
    pilotctl: Pilotctl, port: int, *, backend: str = "auto", io_threads: int = 64
) -> StreamListener:
    """Bind ``port`` with the best backend available: ``sim`` for pilot-sim, else ``sdk``, else ``recv``.

    ``backend`` forces one ("sdk", "sim", "recv"). The result says which one it is (``kind``, ``describe()``) so
    the UI can show a degraded mode. ``io_threads``: see :class:`SdkListener` (at least the connections the caller
    handles at once).
    """
    if backend == "auto":
        with contextlib.suppress(PilotError):
            await pilotctl.version()
        backend = "sim" if pilotctl.is_sim else "sdk"
    socket_path = pilotctl.socket_path()
    if backend == "sim":
        from pilot_tui.sim.sdk import Driver as SimDriver

        return await SdkListener(SimDriver, socket_path, port, "sim", io_threads=io_threads).start()
    if backend == "sdk":
        try:
            from pilotprotocol import Driver as SdkDriver
        except Exception:  # not installed, or libpilot failed to load
            return await RecvLoopListener(pilotctl, port).start()
        try:
            return await SdkListener(SdkDriver, socket_path, port, "sdk", io_threads=io_threads).start()
        except ConnectionFailed:
            return await RecvLoopListener(pilotctl, port).start()
    if backend == "recv":
        return await RecvLoopListener(pilotctl, port).start()
    raise ValueError(f"unknown stream backend {backend!r}")


async def read_payload(
    conn: StreamConn,
    is_complete: Callable[[bytearray], bool],
    *,
    idle_gap: float = 0.5,
    total_timeout: float = 10.0,
    max_bytes: int = 8 * 1024 * 1024,
    first_byte_timeout: float | None = None,
    on_first_byte: Callable[[], None] | None = None,
) -> tuple[bytes, str]:
    """Read one sender's payload from ``conn`` and say why reading stopped.

    ``connect`` never half-closes, so EOF cannot mark the end: we stop when ``is_complete(buffer)`` says the
    payload is whole, at EOF, after ``idle_gap`` seconds without new bytes once something arrived, at
    ``total_timeout``, or at ``max_bytes``. Returns (payload, reason) with reason in
    ``complete | eof | idle | timeout | silent | oversize``. A wrong "complete" guess only makes the sender resend
    what the reply does not list, never loses anything.

    ``first_byte_timeout`` (default: ``total_timeout``) ends a connection that sends nothing at all sooner
    (reason ``silent``): ``connect`` writes its payload right after dialing, so a peer silent for that long is
    not sending, and must not hold a reader for the whole ``total_timeout``. ``on_first_byte`` is called once
    when data first arrives, so a caller can tell silent connections from working ones.
    """
    buf = bytearray()
    deadline = time.monotonic() + total_timeout
    if first_byte_timeout is not None:
        first_deadline = min(deadline, time.monotonic() + first_byte_timeout)
    else:
        first_deadline = deadline
    while True:
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return bytes(buf), "timeout"
        wait = min(remaining, idle_gap) if buf else first_deadline - now
        if wait <= 0:
            return bytes(buf), "silent"
        try:
            chunk = await conn.read(65536, wait)
        except TimeoutError:
            if buf and time.monotonic() < deadline:
                return bytes(buf), "idle"
            if not buf and first_deadline < deadline:
                return bytes(buf), "silent"
            return bytes(buf), "timeout"
        except ConnectionError:
            return bytes(buf), "eof"
        if not chunk:
            return bytes(buf), "eof"
        if not buf and on_first_byte is not None:
            on_first_byte()
        buf += chunk
        if len(buf) > max_bytes:
            return bytes(buf), "oversize"
        if is_complete(buf):
            return bytes(buf), "complete"
