"""Fan-out: several analysts follow one orchestrator's feed through Pilot's event stream (port 1002).

Pilot's publish/subscribe goes through a *broker* — the node named in ``pilotctl publish BROKER TOPIC`` and
``pilotctl subscribe BROKER TOPIC`` — and a node can neither publish nor subscribe to itself (see
pilotctl-contract.md). So the orchestrator publishes every event it stores to a broker node, and each follower
(``pilot-tui follow BROKER``) subscribes there. Any node both sides trust can be the broker.

This is a live view, not a second copy of the record: the event stream keeps nothing, so a follower sees what is
published while it is subscribed, and a publisher that cannot reach the broker keeps at most :data:`MAX_QUEUED`
events (the oldest are dropped first, and counted). The orchestrator's own store stays the record.
Payloads are ordinary NDJSON batches (``encode_batch``), so a follower validates, dedups and quarantines them
exactly as the orchestrator does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from pilot_tui.model import ThreatEvent, encode_batch
from pilot_tui.pilot.driver import Pilotctl

DEFAULT_TOPIC = "pilot-tui.threats"
"""The topic events are published on unless ``--topic`` says otherwise."""

MAX_PUBLISH_BYTES = 60_000
"""Bytes of NDJSON per publish: the payload travels as one ``--data`` argument, and Linux caps one at 128 KiB."""

MAX_QUEUED = 10_000
"""Events waiting for the broker; beyond this the oldest are dropped (the orchestrator's store still has them)."""

Report = Callable[..., None]
"""``report(state=…, kind=…, detail=…)``: how the fan-out shows up among the engine's receivers."""


class Publisher:
    """Publishes stored events to ``broker``/``topic`` in batches, in order, retrying what failed.

    :meth:`offer` is called by the engine for every batch it stores (never blocks); :meth:`run` is the body the
    engine supervises — it raises on a publish error, and the supervisor restarts it with back-off while the
    unsent events stay queued.
    """

    def __init__(self, pilotctl: Pilotctl, broker: str, topic: str, report: Report) -> None:
        self._pilotctl = pilotctl
        self.broker = broker
        self.topic = topic
        self._report = report
        self._queue: deque[ThreatEvent] = deque()
        self._wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, events: Iterable[ThreatEvent]) -> None:
        """Queue ``events`` for the broker (the oldest queued go first when the queue is full)."""
        for event in events:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
        if self._queue:
            self._wake.set()

    def describe(self) -> str:
        text = f"publishing to {self.broker} topic {self.topic} · {self.sent:,} sent"
        if self._queue:
            text += f" · {len(self._queue):,} waiting"
        if self.dropped:
            text += f" · {self.dropped:,} dropped (broker unreachable too long)"
        return text

    async def run(self) -> None:
        self._report(kind="publish", state="running", detail=self.describe())
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take()
            await self._pilotctl.publish(self.broker, self.topic, encode_batch(batch).decode("utf-8"))
            for _ in batch:  # only now: a failed publish leaves them queued for the restart
                if self._queue:
                    self._queue.popleft()
            self.sent += len(batch)
            self._report(kind="publish", state="running", detail=self.describe())

    def _take(self) -> list[ThreatEvent]:
        """The oldest queued events that fit in one publish (always at least one)."""
        batch: list[ThreatEvent] = []
        size = 0
        for event in self._queue:
            # each line also carries "batch_size" (about 20 bytes), added by encode_batch
            cost = len(event.to_json()) + 24
            if batch and size + cost > MAX_PUBLISH_BYTES:
                break
            batch.append(event)
            size += cost
        return batch


async def follow(
    pilotctl: Pilotctl, broker: str, topic: str, ingest: Callable[[bytes], Any], report: Report
) -> None:
    """Subscribe to ``broker``/``topic`` and hand each published payload to ``ingest`` until the stream ends."""
    report(kind="subscribe", state="running", detail=f"following {broker} topic {topic}")
    async for message in pilotctl.subscribe(broker, topic):
        data = message.get("data")
        if isinstance(data, str) and data:
            ingest(data.encode("utf-8"))

