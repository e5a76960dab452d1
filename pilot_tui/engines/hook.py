"""``--on-event CMD``: feed accepted events to an external consumer (an agent) and apply what it answers.

CMD is started once (split like a shell would, but run without one) and gets each accepted event on stdin as one
NDJSON line. It may write JSON lines back: ``{"id": "<event id>", "action": "mitigate"|"ack"|"ignore", "note": …}``.
A consumer that crashes is restarted with backoff; one that reads slowly never blocks the feed — events wait in a
bounded queue and the oldest are dropped (and counted) when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pilot_tui.aiotime import within
from pilot_tui.backoff import Backoff
from pilot_tui.model import ThreatEvent
from pilot_tui.subproc import kill_and_reap, spawn

from . import updates as u

ACTIONS = ("mitigate", "ack", "ignore", "false_positive")


@dataclass(frozen=True, slots=True)
class HookAction:
    """One decision the consumer sent back."""

    event_id: str
    action: str
    note: str | None


MAX_LINE = 64 * 1024
"""Longest hook output line we read; a longer one is skipped and counted (before, it killed the reader)."""


async def read_lines(stream: asyncio.StreamReader, limit: int = MAX_LINE) -> AsyncIterator[bytes | None]:
    """The lines of ``stream`` (without the newline); ``None`` for each line longer than ``limit``, which is skipped
    without holding more than ``limit`` bytes. ``StreamReader``'s own line reading fails for good on such a line."""
    buf = bytearray()
    skipping = False
    while chunk := await stream.read(65536):
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line, buf = bytes(buf[:nl]), buf[nl + 1:]
            if skipping or len(line) > limit:
                skipping = False
                yield None
            else:
                yield line
        if len(buf) > limit:
            skipping = True
            buf.clear()
    if buf and not skipping:
        yield bytes(buf)
    elif skipping:
        yield None


def parse_action(line: bytes) -> HookAction | None:
    """Parse one line from the consumer; ``None`` for anything that is not a well-formed action."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    event_id, action, note = obj.get("id"), obj.get("action"), obj.get("note")
    if not isinstance(event_id, str) or action not in ACTIONS:
        return None
    return HookAction(event_id, action, note[:500] if isinstance(note, str) else None)


class HookRunner:
    """Runs the consumer command and shuttles events and actions. Subscribe it to the orchestrator's bus."""

    def __init__(
        self,
        command: str,
        apply: Callable[[HookAction], Awaitable[None]],
        bus: u.UpdateBus,
        *,
        queue_size: int = 10_000,
    ) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("--on-event needs a command")
        self._apply = apply
        self._bus = bus
        self._queue: asyncio.Queue[ThreatEvent] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.restarts = 0
        self.actions = 0
        self.skipped_lines = 0
        """Output lines over :data:`MAX_LINE` the hook wrote (skipped)."""

    def on_update(self, update: u.Update) -> None:
        """Bus subscriber: queue stored events for the consumer (dropping the oldest if it lags far behind)."""
        if not isinstance(update, u.EventsStored):
            return
        for event in update.events:
            if self._queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()
                self.dropped += 1
            self._queue.put_nowait(event)

    async def run(self) -> None:
        """Keep the consumer running until cancelled."""
        backoff = Backoff(0.5, 30.0)
        while True:
            started = time.monotonic()
            detail = await self._run_once()
            self.restarts += 1
            if time.monotonic() - started > 10:  # it worked for a while: this is a new failure, not the same one
                backoff.reset()
            delay = backoff.next_delay()
            self._bus.emit(u.Notice(at=time.time(), level="warning",
                                    message=f"on-event hook {detail}; restarting in {delay:.1f} s"))
            await asyncio.sleep(delay)

    async def _run_once(self) -> str:
        try:
            proc = await spawn(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            return f"could not start: {exc.strerror or exc}"
        assert proc.stdin is not None and proc.stdout is not None
        reader = asyncio.create_task(self._read_actions(proc.stdout))
        try:
            while proc.returncode is None:
                get = asyncio.create_task(self._queue.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                event = get.result()
                try:
                    proc.stdin.write(event.to_json() + b"\n")
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    break
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                return f"output could not be read ({reader.exception()})"
            try:
                status = await within(proc.wait(), 5.0)
            except TimeoutError:  # it closed its output but keeps running: a consumer we can no longer hear
                return "closed its output and was stopped"
            return f"exited with status {status}"
        finally:
            reader.cancel()
            await kill_and_reap(proc)

    async def _read_actions(self, stdout: asyncio.StreamReader) -> None:
        async for line in read_lines(stdout):
            if line is None:
                self.skipped_lines += 1
                if self.skipped_lines == 1 or self.skipped_lines % 100 == 0:
                    self._bus.emit(u.Notice(at=time.time(), level="warning", message=(
                        f"on-event hook wrote a line over {MAX_LINE // 1024} KiB: skipped "
                        f"({self.skipped_lines} so far)")))
                continue
            action = parse_action(line)
            if action is None:
                continue
            self.actions += 1
            try:
                await self._apply(action)
            except Exception as exc:  # a bad action must not stop the hook
                self._bus.emit(u.Notice(at=time.time(), level="warning",
                                        message=f"hook action {action.action} on {action.event_id} failed: {exc}"))


def make_applier(engine: Any) -> Callable[[HookAction], Awaitable[None]]:
    """Turn hook actions into orchestrator intents."""

    async def apply(action: HookAction) -> None:
        if action.action == "ack":
            engine.acknowledge([action.event_id], action.note)
        elif action.action == "false_positive":
            engine.false_positive([action.event_id], action.note)
        elif action.action == "mitigate":
            await engine.mitigate(action.event_id)

    return apply
