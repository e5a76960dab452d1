"""The log oracle: sources → detection → durable outbox → sender.

For every batch of lines a source yields, the detections it produced and the source position after those lines
are committed together (:meth:`pilot_tui.store.outbox.Outbox.record`). Killing the process at any point therefore
loses nothing: lines whose detections were not committed are read again on restart. The sender then drains the
outbox independently, so a slow or absent orchestrator never stalls tailing.

When the outbox cannot be written (disk full, read-only, corrupt), the batch in hand waits with its detections until it
can be committed — tailing pauses at the last committed position, so nothing is skipped even if the process is
stopped meanwhile — and the sender is restarted once the outbox takes a write again (rows it could not mark stay
pending and are resent; the orchestrator dedups them). One notice when it starts failing, one when it works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pilot_tui.model import ThreatEvent
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.db import StoreFault, rerun_on_fault, until_stored
from pilot_tui.store.outbox import Outbox

from . import updates as u
from .fault_episode import FaultEpisode
from .queries import OracleQuery
from .sender import Sender

DETECT_SLICE_S = 0.05
"""Longest stretch of detection before the event loop gets a turn (signals, the sender, the UI)."""
DETECT_SLICE_LINES = 64
"""Lines detected between two looks at the clock. A line costs microseconds: user patterns run on RE2 in time
linear in the line (:mod:`pilot_tui.detect.linear`) and lines are at most 64 KiB, so a slice stays well inside the
2 s in which SIGTERM must stop the oracle."""


class LineSource(Protocol):
    """What the oracle needs from a log source (see :mod:`pilot_tui.sources`)."""

    def batches(self) -> AsyncIterator[Any]: ...

    def stats(self) -> Any: ...

    async def close(self) -> None: ...


class LineDetector(Protocol):
    def feed(self, line: str, log: str, now: float | None = None) -> list[ThreatEvent]: ...


@dataclass(slots=True)
class OracleConfig:
    """Settings of one oracle."""

    peer: str
    """Orchestrator hostname or Pilot address."""
    port: int = 1000
    transport: str = "stream"
    """``stream`` (pilotctl connect, replies with stored ids) or ``message`` (send-message → inbox)."""
    sensor: str = ""
    """This oracle's name in events."""
    connect_timeout: float = 10.0
    """Seconds a stream connect waits for the orchestrator's acknowledgement."""
    keep_delivered_s: float = 7 * 86400
    """Delivered and rejected outbox rows are deleted once this old."""
    hedge: bool = False
    """Send a slow small batch a second time (tail control for lossy paths; see :mod:`.sender`)."""


class OracleEngine:
    """Runs the sources, the detector and the sender. Subscribe to :attr:`bus` for updates."""

    def __init__(
        self,
        pilotctl: Pilotctl,
        outbox: Outbox,
        sources: Sequence[LineSource],
        detector: LineDetector,
        config: OracleConfig,
    ) -> None:
        self.pilotctl = pilotctl
        self.outbox = outbox
        self.sources = list(sources)
        self.detector = detector
        self.config = config
        self.bus = u.UpdateBus()
        self.sender = Sender(pilotctl, outbox, self.bus, peer=config.peer, port=config.port,
                             transport=config.transport, connect_timeout=config.connect_timeout,
                             hedge=config.hedge)
        self.query = OracleQuery(self.sender, outbox)
        """What a view reads of the sender and outbox (read-only)."""
        self.lines_read = 0
        self.detections = 0
        self.recent: deque[ThreatEvent] = deque(maxlen=500)
        """The latest detections, newest last (bounded), for a UI that attaches late."""
        self.outbox_episode = FaultEpisode(
            self._say, "outbox failing: {fault}; tailing waits at the last saved position, nothing is lost — retrying",
            "outbox writable again after {seconds:.0f} s; tailing and sending resumed")

    def set_paused(self, paused: bool) -> None:
        """Hold (or resume) sending; detections keep going to the outbox meanwhile."""
        self.sender.set_paused(paused)

    def retry_now(self) -> str:
        """Cut the sender's backoff short; one line saying what happens now (see ``Sender.retry_now``)."""
        return self.sender.retry_now()

    def source_stats(self) -> list[Any]:
        """Live per-file stats from every source (for the files panel)."""
        out: list[Any] = []
        for source in self.sources:
            with contextlib.suppress(Exception):
                out.extend(source.stats())
        return out

    async def run(self) -> None:
        """Tail, detect and send until cancelled; sources are closed (and the outbox left consistent) on exit."""
        tasks = [asyncio.create_task(self._consume(s), name=f"source-{i}") for i, s in enumerate(self.sources)]
        tasks.append(asyncio.create_task(self._send(), name="sender"))
        tasks.append(asyncio.create_task(self._prune_outbox(), name="outbox-prune"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for source in self.sources:
                with contextlib.suppress(Exception):
                    await source.close()

    async def _send(self) -> None:
        """The sender, restarted when the outbox fails under it (rows it could not mark delivered stay pending and
        go again; the orchestrator dedups them)."""
        await rerun_on_fault(self.sender.run, self._outbox_failed, self._probe_outbox)

    def _probe_outbox(self) -> None:
        self.outbox.check_writable()
        self._outbox_ok()

    async def _prune_outbox(self) -> None:
        """Forget delivered rows after a week, hourly, so the outbox does not grow forever (pending rows stay)."""
        while True:
            try:
                self.outbox.prune(self.config.keep_delivered_s)
            except StoreFault as fault:
                self._outbox_failed(fault)
            await asyncio.sleep(3600)

    async def _consume(self, source: LineSource) -> None:
        async for batch in source.batches():
            found = await self.detect_in_slices(batch.source, batch.lines)
            # held until committed with its position: tailing waits here while the outbox cannot be written
            await until_stored(functools.partial(self.commit, batch.key, found, batch.position), self._outbox_failed)

    @property
    def outbox_fault(self) -> str | None:
        """Why the outbox cannot be written (one line), or ``None`` while it works."""
        return self.outbox_episode.fault

    def _say(self, level: str, message: str) -> None:
        self.bus.emit(u.Notice(at=time.time(), level=level, message=message))

    def _outbox_failed(self, fault: StoreFault) -> None:
        """Say once per episode that the outbox cannot be written (not once per batch or retry)."""
        self.outbox_episode.failed(fault)

    def _outbox_ok(self) -> None:
        self.outbox_episode.ok()

    def process(self, key: str, log: str, lines: list[str], position: Any) -> list[ThreatEvent]:
        """Detect on ``lines`` and commit the detections together with ``position`` (one transaction)."""
        return self.commit(key, self.detect(log, lines), position)

    async def detect_in_slices(self, log: str, lines: list[str]) -> list[ThreatEvent]:
        """:meth:`detect` in slices of :data:`DETECT_SLICE_LINES`, handing the event loop back whenever
        :data:`DETECT_SLICE_S` has passed: detection runs on the loop's thread, so this is what lets SIGTERM (and the
        UI) through in the middle of a large batch. A batch cancelled midway commits nothing; its lines are read
        again after a restart."""
        found: list[ThreatEvent] = []
        due = time.monotonic() + DETECT_SLICE_S
        for start in range(0, len(lines), DETECT_SLICE_LINES):
            found += self.detect(log, lines[start : start + DETECT_SLICE_LINES])
            if time.monotonic() >= due:
                await asyncio.sleep(0)
                due = time.monotonic() + DETECT_SLICE_S
        return found

    def detect(self, log: str, lines: list[str]) -> list[ThreatEvent]:
        """Run the detector over ``lines`` (once: its windows count every line it is fed)."""
        found: list[ThreatEvent] = []
        for line in lines:
            found.extend(self.detector.feed(line, log))
        self.lines_read += len(lines)
        return found

    def commit(self, key: str, found: list[ThreatEvent], position: Any) -> list[ThreatEvent]:
        """Store ``found`` and the source ``position`` after them in one transaction; raises :class:`StoreFault`
        (nothing stored, safe to call again with the same arguments)."""
        stored = self.outbox.record(found, {key: position})
        self._outbox_ok()
        if stored:
            now = time.time()
            self.detections += len(stored)
            for event in stored:
                self.recent.append(event)
                self.bus.emit(u.Detected(at=now, event=event))
            self.sender.wake()
        return stored
