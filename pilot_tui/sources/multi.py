"""Merge several sources (files, journal) into one async stream of batches.

The oracle engine wants one loop: take a batch, detect, commit detections + ``batch.position`` under
``batch.key``. Each source keeps its own order (positions of one key only ever move forward within a run); across
sources batches interleave as they come. A small bounded queue between the sources and the consumer gives
back-pressure: a source stops reading while the engine is behind, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pilot_tui.sources.follower import TailOptions
from pilot_tui.sources.journal import JournalSource
from pilot_tui.sources.tailer import FileTailer
from pilot_tui.sources.types import FileStats, JournalStats, LineBatch

_DONE = object()
_STOP = object()


class MultiSource:
    """Runs each source in its own task and yields their batches as one stream.

    If a source's iterator fails with an exception, the stream re-raises it after closing the others: a source
    bug must surface, not silently stop one log. (I/O trouble does not raise; it shows in :meth:`stats`.)
    """

    def __init__(self, sources: Sequence[FileTailer | JournalSource], queue_size: int = 4) -> None:
        self.sources = list(sources)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def batches(self) -> AsyncIterator[LineBatch]:
        """Yield batches from every source until all are finished or :meth:`close` is called."""
        self._tasks = [
            asyncio.create_task(self._pump(s), name=f"source-{i}") for i, s in enumerate(self.sources)
        ]
        remaining = len(self._tasks)
        try:
            while remaining:
                item = await self._queue.get()
                if item is _STOP:
                    return
                if item is _DONE:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            await self.close()

    def stats(self) -> list[FileStats | JournalStats]:
        """Stats of every source, files first."""
        out: list[FileStats | JournalStats] = []
        for source in self.sources:
            if isinstance(source, FileTailer):
                out.extend(source.stats())
            else:
                out.append(source.stats())
        return out

    async def close(self) -> None:
        """Close every source and stop their tasks; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s.close() for s in self.sources), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Wake a consumer blocked on the queue. Batches still queued are dropped: their positions were never
        # persisted, so they are read again after a restart (at least once).
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_STOP)

    async def _pump(self, source: FileTailer | JournalSource) -> None:
        try:
            async for batch in source.batches():
                await self._queue.put(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which re-raises it: nothing is swallowed
            await self._queue.put(exc)
            return
        await self._queue.put(_DONE)


def open_sources(
    logs: Sequence[str | os.PathLike[str]],
    positions: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    from_start: bool = False,
    journal_units: Sequence[str] | None = None,
    journalctl: str | Sequence[str] = "journalctl",
    options: TailOptions | None = None,
) -> MultiSource:
    """Everything the oracle follows, as one stream: ``--log`` paths/globs and, if ``journal_units`` is not None,
    the journal (an empty list = the whole journal). ``positions`` is the key -> position mapping the engine
    persisted; pass it unchanged."""
    sources: list[FileTailer | JournalSource] = []
    if logs:
        sources.append(FileTailer(logs, positions, from_start=from_start, options=options))
    if journal_units is not None:
        sources.append(JournalSource(journal_units, positions, from_start=from_start, journalctl=journalctl))
    return MultiSource(sources)
