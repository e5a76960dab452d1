"""Stream servers: "listen on Pilot port P, read a payload, reply, close".

pilotctl has no replying stream server (``recv`` never answers, see pilotctl-contract.md), so three backends exist:

``sdk``
    the ``pilotprotocol`` package's ctypes listener — the real network, able to reply (connect returns in ~14 ms).
``sim``
    :mod:`pilot_tui.sim.sdk`, the emulator's twin of that SDK, same API — used by the demo and the tests.
``recv``
    a loop of short ``pilotctl recv`` runs: works with any pilotctl but cannot reply, so each sender's ``connect``
    waits for its own timeout and a connect that lands between two runs fails. Its status says so.

Both SDKs block, so they run on a small private thread pool (never the loop's default executor, whose few threads
a blocked ``accept`` would starve). Every backend hands out :class:`StreamConn` objects with async reads bounded by
a timeout.
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
    """An SDK connection (real or sim) driven from asyncio through a private thread pool."""

    can_reply = True

    def __init__(self, conn: Any, pool: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._pool = pool

    async def read(self, size: int, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = time.time() + timeout
        await loop.run_in_executor(self._pool, self._conn.set_read_deadline, deadline)
        try:
            return bytes(await loop.run_in_executor(self._pool, self._conn.read, size))
        except Exception as exc:  # the SDKs raise their own PilotError for deadlines and resets
            if time.time() >= deadline - 0.01:
                raise TimeoutError(f"no data within {timeout:g}s") from None
            raise ConnectionError(f"stream read failed: {exc}") from None

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._conn.write, data)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._pool, self._conn.close)


class SdkListener:
    """A listener on top of an SDK ``Driver`` class (``pilotprotocol.Driver`` or ``pilot_tui.sim.sdk.Driver``)."""

    can_reply = True

    def __init__(self, driver_cls: Callable[[str], Any], socket_path: str, port: int, kind: str) -> None:
        self.kind = kind
        self.port = check_port(port)
        self._driver_cls = driver_cls
        self._socket_path = socket_path
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"pilot-{kind}-{port}")
        self._driver: Any = None
        self._listener: Any = None

    def describe(self) -> str:
        return f"{self.kind} stream server on port {self.port} (replies with stored ids)"

    async def start(self) -> SdkListener:
        """Open the driver and bind the port; raises :class:`ConnectionFailed` when that fails."""
        loop = asyncio.get_running_loop()
        try:
            self._driver = await loop.run_in_executor(self._pool, self._driver_cls, self._socket_path)
            self._listener = await loop.run_in_executor(self._pool, self._driver.listen, self.port)
        except Exception as exc:  # the SDKs raise their own error classes, not ours
            await self.close()
            raise ConnectionFailed(f"cannot listen on port {self.port}: {exc}") from None
        return self

    async def accept(self) -> StreamConn:
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(self._pool, self._listener.accept)
        except Exception as exc:
            raise ConnectionFailed(f"accept on port {self.port} failed: {exc}") from None
        return _ThreadConn(conn, self._pool)

    async def close(self) -> None:
        # Closing the listener from another thread is what ends a blocked accept() in both SDKs.
        for obj in (self._listener, self._driver):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        self._listener = self._driver = None
        self._pool.shutdown(wait=False, cancel_futures=True)


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


async def open_stream_listener(pilotctl: Pilotctl, port: int, *, backend: str = "auto") -> StreamListener:
    """Bind ``port`` with the best backend available: ``sim`` for pilot-sim, else ``sdk``, else ``recv``.

    ``backend`` forces one ("sdk", "sim", "recv"). The result says which one it is (``kind``, ``describe()``) so
    the UI can show a degraded mode.
    """
    if backend == "auto":
        with contextlib.suppress(PilotError):
            await pilotctl.version()
        backend = "sim" if pilotctl.is_sim else "sdk"
    socket_path = pilotctl.socket_path()
    if backend == "sim":
        from pilot_tui.sim.sdk import Driver as SimDriver

        return await SdkListener(SimDriver, socket_path, port, "sim").start()
    if backend == "sdk":
        try:
            from pilotprotocol import Driver as SdkDriver
        except Exception:  # not installed, or libpilot failed to load
            return await RecvLoopListener(pilotctl, port).start()
        try:
            return await SdkListener(SdkDriver, socket_path, port, "sdk").start()
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
) -> tuple[bytes, str]:
    """Read one sender's payload from ``conn`` and say why reading stopped.

    ``connect`` never half-closes, so EOF cannot mark the end: we stop when ``is_complete(buffer)`` says the
    payload is whole, at EOF, after ``idle_gap`` seconds without new bytes once something arrived, at
    ``total_timeout``, or at ``max_bytes``. Returns (payload, reason) with reason in
    ``complete | eof | idle | timeout | oversize``. A wrong "complete" guess only makes the sender resend what
    the reply does not list, never loses anything.
    """
    buf = bytearray()
    deadline = time.monotonic() + total_timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(buf), "timeout"
        wait = min(remaining, idle_gap) if buf else remaining
        try:
            chunk = await conn.read(65536, wait)
        except TimeoutError:
            if buf and time.monotonic() < deadline:
                return bytes(buf), "idle"
            return bytes(buf), "timeout"
        except ConnectionError:
            return bytes(buf), "eof"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk
        if len(buf) > max_bytes:
            return bytes(buf), "oversize"
        if is_complete(buf):
            return bytes(buf), "complete"
