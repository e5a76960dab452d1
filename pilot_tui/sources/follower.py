"""Follow one log path through rotation, truncation, deletion and restarts.

:class:`FileFollower` is a synchronous state machine advanced one bounded step at a time (at most one read chunk,
at most one batch). It does no waiting and knows nothing about asyncio or watchdog: the driver in ``tailer.py``
decides *when* to step (a notification, or the poll timer), this module decides *what* a step does. Keeping the
two apart is what makes correctness independent of notifications, which only reduce latency.

The file being read is held as an open descriptor and identified by inode + head fingerprint, so a rename
rotation keeps reading the renamed-away old file to its end (lines written to it after the rename are not lost)
before switching to the new file at the configured path. Every newer file seen at the path meanwhile (a
*generation*) is opened at once and held too, in order: with logrotate shifting ``auth.log`` -> ``.1`` -> ``.2``
faster than the old file goes quiet, or deleting a file soon after, a name says nothing by the time we get to it,
but a held descriptor still reads every line. Generations are read strictly one after the other, so the position
a batch carries always names the oldest unfinished one, and a restart (which finds that file by identity and the
newer ones by their rotated names) neither skips nor repeats a generation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from pilot_tui.sources.identity import (
    FINGERPRINT_BYTES,
    find_by_identity,
    fingerprint_fd,
    head_matches,
    is_same_file,
    newer_rotations,
    open_regular,
)
from pilot_tui.sources.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from pilot_tui.sources.types import (
    ERROR_PREFIX,
    STATE_DRAINING,
    STATE_FOLLOWING,
    STATE_STARTING,
    STATE_WAITING,
    FilePosition,
    FileStats,
    LineBatch,
)

log = logging.getLogger(__name__)

MAX_HELD_GENERATIONS = 32
"""Newer files held open per path while an older one drains. Past this (a rotation storm), an old file is finished
as soon as it is read to its end instead of after ``rotate_wait`` of quiet, so descriptors stay bounded; lines are
still not lost, only a write to a long-rotated file after that moment would be."""


@dataclass(frozen=True)
class TailOptions:
    """Knobs of the file tailer; the defaults suit a syslog-style auth log."""

    poll_interval: float = 1.0
    """Seconds between polls when no notification arrives (also the glob rescan period)."""
    rotate_wait: float = 5.0
    """After a rename rotation, keep reading the old file until it has been quiet this long (the writer may not
    have reopened its log yet). A deleted old file is switched away from as soon as it is read to its end. Files
    that appear at the path meanwhile are opened at once and held, and read in order afterwards, so a short wait
    never loses them; a long one only delays them."""
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """Longer lines are cut to this and counted."""
    max_batch_lines: int = 2000
    """At most this many lines per batch, so one busy file cannot starve the others or the engine."""
    read_chunk_bytes: int = 256 * 1024
    """Bytes read per step."""
    use_watchdog: bool = True
    """Use filesystem notifications; off means poll only (e.g. NFS, where inotify says nothing)."""


@dataclass(frozen=True)
class StepResult:
    """Outcome of one :meth:`FileFollower.step`."""

    batch: LineBatch | None
    more: bool
    """True if stepping again right away may produce more (unread data, a pending switch)."""


def _describe(exc: OSError) -> str:
    """Short human text for an OS error, e.g. ``"permission denied: /var/log/auth.log"``."""
    text = exc.strerror or str(exc) or type(exc).__name__
    text = text[:1].lower() + text[1:]
    return f"{text}: {exc.filename}" if exc.filename else text


@dataclass
class _Generation:
    """A newer file seen at the path, held open until every older one is finished.

    Holding the descriptor is what makes fast rotation lossless: whatever happens to its name afterwards (shifted
    to ``.2``, deleted by ``rotate 1``), its lines stay readable until we get to them.
    """

    fd: int
    dev: int
    ino: int
    size: int
    grew_at: float
    """Monotonic time its size last changed as we saw it (or when it was opened)."""
    superseded_at: float | None = None
    """When a newer file (or nothing) was seen at the path; None while it is the file the path names."""


class FileFollower:
    """Reads one configured path, whatever file currently lives there.

    ``position`` is what the engine persisted for :attr:`key`; ``start_at_end`` applies only when there is none and
    the file already exists at the first step (first run on an existing log). A file that appears later is new and
    is read from 0.
    """

    def __init__(
        self,
        path: str,
        *,
        position: FilePosition | None,
        start_at_end: bool,
        options: TailOptions,
        on_retire: Callable[[FilePosition], None] | None = None,
    ) -> None:
        self.path = path
        self.key = f"file:{path}"
        self._stored = position
        self._start_at_end = start_at_end
        self._opts = options
        self._on_retire = on_retire
        self._splitter = LineSplitter(options.max_line_bytes)
        self._fd: int | None = None
        self._dev = 0
        self._ino = 0
        self._fp = ""
        self._fp_len = 0
        self._checked_size = -1
        self._size: int | None = None
        self._offset = 0
        self._scan = 0
        self._began = False
        self._dirty = False
        self._draining = False
        self._drain_since = 0.0
        self._queue: list[_Generation] = []
        self._refused: tuple[int, int] | None = None
        self._state = STATE_STARTING
        self.rotations = 0
        self.truncations = 0
        self.lines_total = 0

    # ----------------------------------------------------------------------------------------------- public

    @property
    def state(self) -> str:
        """Current state string (see ``types.STATE_*``)."""
        return self._state

    @property
    def held_files(self) -> frozenset[tuple[int, int]]:
        """(dev, inode) of every file held open: the one being read and the newer generations waiting."""
        held = {(g.dev, g.ino) for g in self._queue}
        if self._fd is not None:
            held.add((self._dev, self._ino))
        return frozenset(held)

    @property
    def generations_waiting(self) -> int:
        """Newer files held open, waiting for the one being read to finish."""
        return len(self._queue)

    def next_deadline(self) -> float | None:
        """Monotonic time at which a step is due even without a notification (end of the rotation grace)."""
        return self._drain_since + self._opts.rotate_wait if self._draining and self._fd is not None else None

    def step(self, now: float) -> StepResult:
        """Advance by at most one read; never raises for I/O trouble (it becomes an error state and is retried)."""
        try:
            return self._step(now)
        except OSError as exc:
            self._state = ERROR_PREFIX + _describe(exc)
            if self._fd is not None:
                # Resume from here by identity once the file is readable again (ESTALE, EIO on network mounts).
                self._stored = self._position()
                self._began = False
                self._close_fd()
            return StepResult(None, False)

    def close(self) -> None:
        """Release every file descriptor (the file being read and the generations waiting)."""
        self._close_fd()
        queue, self._queue = self._queue, []
        for gen in queue:
            os.close(gen.fd)

    def stats(self, lines_per_s: float) -> FileStats:
        """Snapshot for the UI."""
        return FileStats(
            key=self.key,
            path=self.path,
            state=self._state,
            size=self._size if self._fd is not None else None,
            offset=self._offset,
            inode=self._ino if self._fd is not None else None,
            lines_per_s=lines_per_s,
            lines_total=self.lines_total,
            rotations=self.rotations,
            truncations=self.truncations,
            lines_cut=self._splitter.cut,
            generations_waiting=len(self._queue),
        )

    # ----------------------------------------------------------------------------------------------- steps

    def _step(self, now: float) -> StepResult:
        if self._fd is None:
            if not self._began:
                self._begin(now)
            else:
                self._advance(now)
            if self._fd is None:
                return StepResult(self._batch([]) if self._dirty else None, False)
        return self._read(now)

    def _begin(self, now: float) -> None:
        """First placement: resume a stored position by identity, else start at the end (or 0).

        Only marked done when it succeeds, so an I/O error half-way is retried with the same semantics (and not
        mistaken for "a new file appeared", which would re-read it from 0).
        """
        try:
            fd, st = open_regular(self.path)
        except FileNotFoundError:
            fd, st = None, None
        try:
            self._place(fd, st, now)
        except BaseException:
            if fd is not None and self._fd != fd:
                os.close(fd)
            raise
        self._began = True

    def _place(self, fd: int | None, st: os.stat_result | None, now: float) -> None:
        pos = self._stored
        if pos is None:
            if fd is None or st is None:
                self._start_at_end = False  # it will be a new file when it appears
                self._state = STATE_WAITING
                return
            offset, discard = self._end_boundary(fd, st.st_size) if self._start_at_end else (0, False)
            self._adopt(fd, st, offset, discard)
            self._dirty = True
            return
        if fd is not None and st is not None and is_same_file(fd, st, pos.ino, pos.fp, pos.fp_len):
            self._adopt(fd, st, pos.offset)
            return
        # The file at the path is not the one we were reading: find the old one (renamed away while we were
        # stopped) and finish it first, so its unread tail is not lost.
        old = find_by_identity(os.path.dirname(self.path) or ".", pos.ino, pos.fp, pos.fp_len, self.path)
        if old is not None and self._adopt_old(old, pos, now):
            if fd is not None:
                os.close(fd)
            self._track_path(now)  # the generations rotated in after it, and the file at the path now
            return
        if self._queue:
            # Resuming after an I/O error and the file we were reading is gone: go on with the next one we hold.
            if fd is not None:
                os.close(fd)
            self._advance(now)
            return
        if fd is None or st is None:
            self._state = STATE_WAITING
            return
        self._adopt(fd, st, 0)
        self._dirty = True

    def _adopt_old(self, path: str, pos: FilePosition, now: float) -> bool:
        """Drain ``path`` (the file recorded in ``pos``, now under another name) from the stored offset."""
        try:
            fd, st = open_regular(path)
        except OSError:
            return False
        try:
            if is_same_file(fd, st, pos.ino, pos.fp, pos.fp_len):
                self._adopt(fd, st, pos.offset)
                self._draining, self._drain_since, self._state = True, now, STATE_DRAINING
                return True
        except OSError:
            pass  # unreadable after all: treat as gone, like a file rotated away for good
        os.close(fd)
        return False

    def _advance(self, now: float) -> None:
        """Start on the next generation: the oldest one held, else whatever is at the path now (from 0).

        The generation leaves the queue only once adopted, so an error reading its head is retried, not a loss.
        """
        if not self._queue:
            self._open_fresh()
            return
        gen = self._queue[0]
        st = os.fstat(gen.fd)
        if st.st_size != gen.size:
            gen.size, gen.grew_at = st.st_size, now
        self._adopt(gen.fd, st, 0)
        self._queue.pop(0)
        self._dirty = True
        if gen.superseded_at is not None:
            # Its quiet time started when it stopped growing, not now: a backlog of generations drains in one
            # rotate_wait, not one per generation.
            self._draining, self._state = True, STATE_DRAINING
            self._drain_since = max(gen.grew_at, gen.superseded_at)

    def _open_fresh(self) -> None:
        """A file (re)appeared at the path after we started: it is new, read it from 0."""
        try:
            fd, st = open_regular(self.path)
        except FileNotFoundError:
            self._state = STATE_WAITING
            return
        try:
            self._adopt(fd, st, 0)
        except BaseException:
            os.close(fd)
            raise
        self._dirty = True

    def _read(self, now: float) -> StepResult:
        fd = self._fd
        assert fd is not None
        st = os.fstat(fd)
        size = st.st_size
        self._size = size
        if size < self._scan or (
            size != self._checked_size and not head_matches(fd, size, self._fp, self._fp_len)
        ):
            # copytruncate (shrink), or the content was replaced in place: the old lines are gone, restart at 0.
            self.truncations += 1
            self._offset = self._scan = 0
            self._splitter.reset()
            self._refresh_fingerprint(fd, size)
            self._dirty = True
        elif size != self._checked_size and self._fp_len < FINGERPRINT_BYTES and size > self._fp_len:
            self._refresh_fingerprint(fd, size)
        if self._draining and size != self._checked_size:
            # Still written to (the writer has not reopened its log yet): the quiet time starts again. Growth, not
            # reading, counts, so a backlog of rotated files is not held back rotate_wait each.
            self._drain_since = now
        self._checked_size = size
        # Before reading, not only at the end of the file: with a backlog we may not reach the end for a while,
        # and a file that appears at the path must be opened before it can be rotated away or deleted.
        self._watch_generations(now)

        if size > self._scan:
            data = os.pread(fd, min(self._opts.read_chunk_bytes, size - self._scan), self._scan)
            if data:
                return self._consume(data, now)
        if self._dirty:
            return StepResult(self._batch([]), False)

        # At the end of a file the path no longer names: finish it once deleted, or quiet for the grace period.
        if not self._draining:
            return StepResult(None, False)
        if (
            st.st_nlink == 0
            or len(self._queue) >= MAX_HELD_GENERATIONS
            or now - self._drain_since >= self._opts.rotate_wait
        ):
            return self._finish_old(now)
        return StepResult(None, False)

    def _consume(self, data: bytes, now: float) -> StepResult:
        start = self._scan
        res = self._splitter.feed(data, self._opts.max_batch_lines)
        self._scan = start + res.consumed
        if res.boundary >= 0:
            self._offset = start + res.boundary
        lines = [(b[:-1] if b.endswith(b"\r") else b).decode("utf-8", "replace") for b in res.lines]
        # Always step again after reading: at the end of the file that next step checks for rotation, which a
        # notification-driven loop would otherwise only do on the next poll tick.
        more = True
        if lines or self._dirty or res.boundary >= 0:
            return StepResult(self._batch(lines), more)
        return StepResult(None, more)

    def _finish_old(self, now: float) -> StepResult:
        """The old file is read to its end and quiet (or deleted): hand out its unfinished tail and switch."""
        batch = None
        tail = self._splitter.flush()
        if tail is not None:
            self._offset = self._scan
            line = (tail[:-1] if tail.endswith(b"\r") else tail).decode("utf-8", "replace")
            batch = self._batch([line])
        if self._on_retire is not None:
            self._on_retire(self._position())
        self._close_fd()
        self._draining = False
        self.rotations += 1
        try:
            self._advance(now)
        except OSError as exc:
            # Keep the old file's last line: report the new file's trouble and retry it on the next step.
            self._state = ERROR_PREFIX + _describe(exc)
        return StepResult(batch, True)

    # ----------------------------------------------------------------------------------------------- helpers

    def _adopt(self, fd: int, st: os.stat_result, offset: int, discard: bool = False) -> None:
        """Make ``fd`` the file being read, starting at ``offset`` (0 if the file is now shorter than that).

        The only step that can fail (reading the head) comes first, so on error nothing has changed and the
        caller still owns ``fd``.
        """
        fp, fp_len = fingerprint_fd(fd, min(st.st_size, FINGERPRINT_BYTES))
        self._close_fd()
        self._fd = fd
        self._dev, self._ino = st.st_dev, st.st_ino
        self._fp, self._fp_len = fp, fp_len
        self._checked_size = st.st_size
        self._size = st.st_size
        if offset > st.st_size:
            self.truncations += 1
            offset, discard = 0, False
            self._dirty = True
        self._offset = self._scan = offset
        self._splitter.reset(discard_first=discard)
        self._state = STATE_FOLLOWING

    def _refresh_fingerprint(self, fd: int, size: int) -> None:
        self._fp, self._fp_len = fingerprint_fd(fd, min(size, FINGERPRINT_BYTES))

    def _end_boundary(self, fd: int, size: int) -> tuple[int, bool]:
        """Where "start at the end" begins: just after the last newline, so an unfinished last line is read whole.

        Returns ``(offset, discard_first)``; discard is set when no newline is found within the line cap, i.e. the
        unfinished line is already overlong and only the next complete line should be handed out.
        """
        if size == 0:
            return 0, False
        window = min(size, self._opts.max_line_bytes)
        tail = os.pread(fd, window, size - window)
        i = tail.rfind(b"\n")
        if i >= 0:
            return size - window + i + 1, False
        return (size, True) if window < size else (0, False)

    def _watch_generations(self, now: float) -> None:
        """Note which held generations still grow, and take in any new file at the path."""
        for gen in self._queue:
            size = os.fstat(gen.fd).st_size
            if size != gen.size:
                gen.size, gen.grew_at = size, now
        self._track_path(now)

    def _track_path(self, now: float) -> None:
        """Does the path still name the newest file we hold? If not, that one is superseded, and the file(s) that
        replaced it are opened and queued."""
        try:
            st = os.stat(self.path)
            at_path: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            at_path = None
        except OSError:
            return  # cannot tell (e.g. directory permissions); keep reading what we hold
        if at_path is not None and at_path in self.held_files:
            return
        if self._queue:
            newest = self._queue[-1]
            if newest.superseded_at is None:
                newest.superseded_at = now
        elif not self._draining:
            self._draining, self._drain_since, self._state = True, now, STATE_DRAINING
        if at_path != self._refused:
            self._refused = None
            if at_path is not None:
                self._discover(now)

    def _discover(self, now: float) -> None:
        """Open, in order, every generation newer than the newest one held: those already shifted to a rotated
        name (two rotations between two looks), then the file at the path.

        Names are listed, then opened and checked against the listed inode; a rotation in between makes them
        disagree, and the listing is simply taken again.
        """
        if self._queue:
            dev, ino = self._queue[-1].dev, self._queue[-1].ino
        else:
            dev, ino = self._dev, self._ino
        for _ in range(3):
            listed = newer_rotations(self.path, dev, ino) or []
            at_path = None
            try:
                at_path = os.stat(self.path).st_ino
                listed.append((self.path, at_path))
            except OSError:
                pass
            found, raced = self._open_listed(listed, now)
            if not raced:
                for gen in found:
                    if gen.ino != at_path:  # already shifted away from the path: superseded by the next one
                        gen.superseded_at = now
                self._queue.extend(found)
                return
            for gen in found:
                os.close(gen.fd)
        # Still shifting under us: the next step looks again.

    def _open_listed(self, listed: list[tuple[str, int]], now: float) -> tuple[list[_Generation], bool]:
        """Open the listed (name, inode) pairs not held yet; True as second value if a name moved meanwhile."""
        held = self.held_files
        found: list[_Generation] = []
        for name, ino in listed:
            if any(ino == h_ino for _, h_ino in held):
                continue
            try:
                fd, st = open_regular(name)
            except FileNotFoundError:
                return found, True
            except OSError as exc:
                if name == self.path:
                    # Not a readable log (a FIFO, no permission): looked at again when something else is there,
                    # and reported as an error state once the files before it are finished.
                    try:
                        pst = os.stat(name)
                        self._refused = (pst.st_dev, pst.st_ino)
                    except OSError:
                        pass
                else:
                    log.warning("cannot read rotated log %s (%s); its lines are skipped", name, _describe(exc))
                continue
            if st.st_ino != ino:
                os.close(fd)
                return found, True
            found.append(_Generation(fd, st.st_dev, st.st_ino, st.st_size, now))
        return found, False

    def _position(self) -> FilePosition:
        return FilePosition(self.path, self._dev, self._ino, self._fp, self._fp_len, self._offset)

    def _batch(self, lines: list[str]) -> LineBatch:
        self._dirty = False
        self.lines_total += len(lines)
        return LineBatch(self.key, self.path, lines, self._position().to_json())

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
