"""The log oracle: sources → detection → durable outbox → sender.

For every batch of lines a source yields, the detections it produced and the source position after those lines
are committed together (:meth:`pilot_tui.store.outbox.Outbox.record`). Killing the process at any point therefore
loses nothing: lines whose detections were not committed are read again on restart. The sender then drains the
outbox independently, so a slow or absent orchestrator never stalls tailing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pilot_tui.model import ThreatEvent
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.outbox import Outbox

from . import updates as u
from .sender import Sender


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
        self.lines_read = 0
        self.detections = 0
        self.recent: deque[ThreatEvent] = deque(maxlen=500)
        """The latest detections, newest last (bounded), for a UI that attaches late."""

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
        tasks.append(asyncio.create_task(self.sender.run(), name="sender"))
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

    async def _prune_outbox(self) -> None:
        """Forget delivered rows after a week, hourly, so the outbox does not grow forever (pending rows stay)."""
        while True:
            self.outbox.prune(self.config.keep_delivered_s)
            await asyncio.sleep(3600)

    async def _consume(self, source: LineSource) -> None:
        async for batch in source.batches():
            self.process(batch.key, batch.source, batch.lines, batch.position)

    def process(self, key: str, log: str, lines: list[str], position: Any) -> list[ThreatEvent]:
        """Detect on ``lines`` and commit the detections together with ``position`` (one transaction)."""
        found: list[ThreatEvent] = []
        for line in lines:
            found.extend(self.detector.feed(line, log))
        self.lines_read += len(lines)
        stored = self.outbox.record(found, {key: position})
        if stored:
            now = time.time()
            self.detections += len(stored)
            for event in stored:
                self.recent.append(event)
                self.bus.emit(u.Detected(at=now, event=event))
            self.sender.wake()
        return stored
