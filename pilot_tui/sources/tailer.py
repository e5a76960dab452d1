"""Async file tailer: paths and glob patterns in, one stream of :class:`LineBatch` out.

The per-file logic lives in :class:`~pilot_tui.sources.follower.FileFollower`; this module decides when to step
each follower (round robin, a bounded step each, so one busy log cannot starve the others), expands globs, and
sleeps until a watchdog notification or the poll timer, whichever comes first. All file I/O runs on one dedicated
worker thread, so a slow network mount never blocks the event loop and followers are never touched concurrently.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pilot_tui.aiotime import within
from pilot_tui.dirwatch import DirWatcher
from pilot_tui.sources.follower import FileFollower, TailOptions
from pilot_tui.sources.identity import is_rotated_name, is_same_file, open_regular
from pilot_tui.sources.types import (
    STATE_STARTING,
    STATE_WAITING,
    FilePosition,
    FileStats,
    LineBatch,
    RateMeter,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETIRED_MAX = 256
"""Finished (rotated-away) files remembered so a glob that matches their new name does not read them again."""


def file_key(path: str | os.PathLike[str]) -> str:
    """Persistence key of a file source: ``"file:"`` + its absolute, normalised path."""
    return "file:" + _normalise(path)


def _normalise(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _watch_root(pattern: str) -> str:
    """The deepest directory of a (glob) path without wildcards: the one a notification would come from."""
    parts = os.path.dirname(pattern).split(os.sep)
    fixed: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or os.sep


class FileTailer:
    """Follows files (explicit paths and glob patterns) and yields batches of complete lines.

    ``positions`` maps persistence keys (``file:<path>``) to what the engine stored from earlier batches; a file
    with a stored position resumes exactly there, by identity. Without one, a file that exists at startup is read
    from its end (``from_start=False``) or from 0; a file that appears later is always read from 0 (it is new), as
    is a glob match when the same pattern already has stored positions (it appeared while we were stopped).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        positions: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        from_start: bool = False,
        options: TailOptions | None = None,
    ) -> None:
        self._opts = options or TailOptions()
        self._from_start = from_start
        self._positions: dict[str, FilePosition] = {}
        for key, value in (positions or {}).items():
            if key.startswith("file:"):
                pos = FilePosition.from_json(value)
                if pos is None:
                    log.warning("ignoring malformed stored position for %s", key)
                else:
                    self._positions[key] = pos
        self._patterns: list[tuple[str, bool]] = []
        for p in paths:
            norm = _normalise(p)
            if all(norm != known for known, _ in self._patterns):
                self._patterns.append((norm, glob.has_magic(norm)))
        self._followers: dict[str, FileFollower] = {}
        self._from_glob: set[str] = set()
        self._rates: dict[str, RateMeter] = {}
        self._retired: OrderedDict[tuple[int, int], FilePosition] = OrderedDict()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pilot-tail")
        self._watcher: DirWatcher | None = None
        self._wake: asyncio.Event | None = None
        self._structural = False
        self._running = False
        self._placed = False
        self._closed = False
        self._shut = False

    # ----------------------------------------------------------------------------------------------- public

    @property
    def patterns(self) -> list[str]:
        """The configured paths and patterns, absolute."""
        return [p for p, _ in self._patterns]

    async def batches(self) -> AsyncIterator[LineBatch]:
        """Yield batches until :meth:`close`; may be iterated once. Closing happens here too when iteration stops."""
        if self._running:
            raise RuntimeError("FileTailer.batches() can only be iterated once")
        self._running = True
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._opts.use_watchdog:
            self._watcher = DirWatcher(loop, self._on_notify)
        try:
            await self._call(self._maintain, True)
            self._placed = True
            next_maintenance = time.monotonic() + self._opts.poll_interval
            while not self._closed:
                self._wake.clear()
                more = False
                for follower in list(self._followers.values()):
                    if self._closed:
                        break
                    res = await self._call(follower.step, time.monotonic())
                    more = more or res.more
                    if res.batch is not None:
                        rate = self._rates.get(follower.path)
                        if rate is not None:
                            rate.add(len(res.batch.lines))
                        yield res.batch
                now = time.monotonic()
                if self._closed:
                    break
                if now >= next_maintenance or self._structural:
                    self._structural = False
                    before = len(self._followers)
                    await self._call(self._maintain, False)
                    next_maintenance = now + self._opts.poll_interval
                    more = more or len(self._followers) != before  # step new followers now
                if more or self._closed:
                    continue
                await self._sleep(self._timeout(now, next_maintenance))
        finally:
            await self.close()

    def stats(self) -> list[FileStats]:
        """One entry per followed file, plus one per glob pattern that matches nothing yet.

        Before the first scan, one ``"starting"`` entry per configured path or pattern.
        """
        if not self._placed:
            return [
                FileStats(
                    file_key(p) if not g else "glob:" + p, p, STATE_STARTING, None, 0, None, 0.0, 0, 0, 0, 0
                )
                for p, g in self._patterns
            ]
        # Snapshots: the worker thread may be adding followers while the UI asks.
        followers, rates, from_glob = list(self._followers.items()), dict(self._rates), list(self._from_glob)
        out = [f.stats(rates[p].rate() if p in rates else 0.0) for p, f in followers]
        for pattern, is_glob in self._patterns:
            if is_glob and not any(fnmatch.fnmatchcase(p, pattern) for p in from_glob):
                out.append(
                    FileStats("glob:" + pattern, pattern, STATE_WAITING, None, 0, None, 0.0, 0, 0, 0, 0)
                )
        return out

    async def close(self) -> None:
        """Stop watching and close every file; safe to call twice and from another task than the iterating one."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._shut:
            return
        self._shut = True
        # Queued behind any step still running on the worker thread, so no descriptor is closed under a read
        # and no directory is being added to the watcher while it stops.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._shutdown)
        self._executor.shutdown(wait=False)

    # ----------------------------------------------------------------------------------------------- loop

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _on_notify(self, structural: bool) -> None:
        self._structural = self._structural or structural
        if self._wake is not None:
            self._wake.set()

    def _timeout(self, now: float, next_maintenance: float) -> float:
        due = next_maintenance
        for follower in self._followers.values():
            deadline = follower.next_deadline()
            if deadline is not None:
                due = min(due, deadline)
        return max(0.0, due - now)

    async def _sleep(self, timeout: float) -> None:
        assert self._wake is not None
        if self._wake.is_set():
            return
        try:
            await within(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass  # the poll tick: step everything whether or not a notification came

    # ----------------------------------------------------------------------------------------------- worker thread

    def _maintain(self, initial: bool) -> None:
        """Runs on the worker thread: expand patterns, forget vanished glob matches, (re)try watches."""
        for pattern, is_glob in self._patterns:
            if not is_glob:
                if pattern not in self._followers:
                    self._add(
                        pattern, self._positions.get(file_key(pattern)), initial and not self._from_start
                    )
            else:
                self._expand(pattern, initial)
            if self._watcher is not None:
                self._watcher.watch(_watch_root(pattern) if is_glob else os.path.dirname(pattern))

    def _expand(self, pattern: str, initial: bool) -> None:
        matches = set(glob.glob(pattern))
        for path in sorted(matches):
            if path in self._followers or is_rotated_name(path) or not os.path.isfile(path):
                continue
            pos = self._positions.get(file_key(path))
            if pos is None:
                inherited, defer = self._inherit(path)
                if defer:
                    continue  # still being drained under its old name; look again next tick
                pos = inherited
            seen_before = any(fnmatch.fnmatchcase(p.path, pattern) for p in self._positions.values())
            self._add(path, pos, initial and not self._from_start and not seen_before)
            self._from_glob.add(path)
        for path in [p for p in self._from_glob if p not in matches]:
            follower = self._followers.get(path)
            if follower is not None and follower.state == STATE_WAITING:
                follower.close()
                del self._followers[path]
                self._rates.pop(path, None)
                self._from_glob.discard(path)

    def _inherit(self, path: str) -> tuple[FilePosition | None, bool]:
        """Is this new glob match a file we already read under another name? Returns (position, defer)."""
        try:
            fd, st = open_regular(path)
        except OSError:
            return None, False
        try:
            ident = (st.st_dev, st.st_ino)
            if any(ident in f.held_files for f in self._followers.values()):
                return None, True
            old = self._retired.get(ident)
            if old is not None and is_same_file(fd, st, old.ino, old.fp, old.fp_len):
                return FilePosition(path, old.dev, old.ino, old.fp, old.fp_len, old.offset), False
            return None, False
        except OSError:
            return None, False
        finally:
            os.close(fd)

    def _add(self, path: str, position: FilePosition | None, start_at_end: bool) -> None:
        self._followers[path] = FileFollower(
            path, position=position, start_at_end=start_at_end, options=self._opts, on_retire=self._retire
        )
        self._rates[path] = RateMeter()

    def _retire(self, pos: FilePosition) -> None:
        self._retired[(pos.dev, pos.ino)] = pos
        while len(self._retired) > _RETIRED_MAX:
            self._retired.popitem(last=False)

    def _shutdown(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        for follower in self._followers.values():
            follower.close()
