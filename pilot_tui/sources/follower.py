"""Follow one log path through rotation, truncation, deletion and restarts.

:class:`FileFollower` is a synchronous state machine advanced one bounded step at a time (at most one read chunk,
at most one batch). It does no waiting and knows nothing about asyncio or watchdog: the driver in ``tailer.py``
decides *when* to step (a notification, or the poll timer), this module decides *what* a step does. Keeping the
two apart is what makes correctness independent of notifications, which only reduce latency.

The file being read is held as an open descriptor and identified by inode + head fingerprint, so a rename
rotation keeps reading the renamed-away old file to its end (lines written to it after the rename are not lost)
before switching to the new file at the configured path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from pilot_tui.sources.identity import (
    FINGERPRINT_BYTES,
    find_by_identity,
    fingerprint_fd,
    head_matches,
    is_same_file,
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


@dataclass(frozen=True)
class TailOptions:
    """Knobs of the file tailer; the defaults suit a syslog-style auth log."""

    poll_interval: float = 1.0
    """Seconds between polls when no notification arrives (also the glob rescan period)."""
    rotate_wait: float = 5.0
    """After a rename rotation, keep reading the old file until it has been quiet this long (the writer may not
    have reopened its log yet). A deleted old file is switched away from as soon as it is read to its end."""
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
    text = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{text}: {exc.filename}" if exc.filename else text


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
    def held(self) -> tuple[int, int] | None:
        """(dev, inode) of the file currently open, if any."""
        return (self._dev, self._ino) if self._fd is not None else None

    def next_deadline(self) -> float | None:
        """Monotonic time at which a step is due even without a notification (end of the rotation grace)."""
        return self._drain_since + self._opts.rotate_wait if self._draining else None

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
        """Release the file descriptor."""
        self._close_fd()

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
        )

    # ----------------------------------------------------------------------------------------------- steps

    def _step(self, now: float) -> StepResult:
        if self._fd is None:
            if not self._began:
                self._begin(now)
            else:
                self._open_fresh()
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
        self._checked_size = size

        if size > self._scan:
            data = os.pread(fd, min(self._opts.read_chunk_bytes, size - self._scan), self._scan)
            if data:
                return self._consume(data, now)
        if self._dirty:
            return StepResult(self._batch([]), False)

        # At the end of the file: has it been rotated or deleted?
        if not self._draining:
            if self._path_changed():
                self._draining, self._drain_since, self._state = True, now, STATE_DRAINING
                return StepResult(None, True)  # read once more: the writer may have added lines meanwhile
            return StepResult(None, False)
        if st.st_nlink == 0 or now - self._drain_since >= self._opts.rotate_wait:
            return self._finish_old()
        return StepResult(None, False)

    def _consume(self, data: bytes, now: float) -> StepResult:
        start = self._scan
        res = self._splitter.feed(data, self._opts.max_batch_lines)
        self._scan = start + res.consumed
        if res.boundary >= 0:
            self._offset = start + res.boundary
        if self._draining:
            self._drain_since = now
        lines = [(b[:-1] if b.endswith(b"\r") else b).decode("utf-8", "replace") for b in res.lines]
        # Always step again after reading: at the end of the file that next step checks for rotation, which a
        # notification-driven loop would otherwise only do on the next poll tick.
        more = True
        if lines or self._dirty or res.boundary >= 0:
            return StepResult(self._batch(lines), more)
        return StepResult(None, more)

    def _finish_old(self) -> StepResult:
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
            self._open_fresh()
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

    def _path_changed(self) -> bool:
        """Does the configured path now name another file (or nothing)?"""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # cannot tell (e.g. directory permissions); keep reading what we hold
        return (st.st_dev, st.st_ino) != (self._dev, self._ino)

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
