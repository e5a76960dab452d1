"""Plain data shared by every log source: batches, positions, live stats.

The source layer never persists anything itself. The oracle engine commits a detection and the log position that
produced it in one SQLite transaction, so a source only *describes* how far it has read: each :class:`LineBatch`
carries an opaque, JSON-serialisable ``position`` meaning "everything up to and including these lines has been read".
The engine stores it under ``batch.key`` after it has processed the batch and hands the mapping back on restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POSITION_VERSION = 1
"""Bumped if the position format ever changes; older positions are then ignored (read as "no position")."""

STATE_FOLLOWING = "following"
STATE_WAITING = "waiting for file"
STATE_DRAINING = "rotated: draining old file"
STATE_STARTING = "starting"
STATE_STOPPED = "stopped"
ERROR_PREFIX = "error: "
"""Error states are ``"error: <text>"`` so the UI can show them verbatim and test ``state.startswith("error")``."""


@dataclass(frozen=True)
class LineBatch:
    """Complete lines read from one source, plus where reading stopped.

    ``lines`` may be empty: a batch then only moves the position (first placement at the end of an existing file, a
    switch to a new file after rotation, a restart at 0 after truncation, a journal entry without text). Persist it
    like any other batch, otherwise a restart can lose the lines written in between.
    """

    key: str
    """Stable persistence key: ``"file:<absolute path>"`` or ``"journal:<units>"``."""
    source: str
    """What to show and to put in an event's ``log`` field: the file path, or ``"journal"``."""
    lines: list[str]
    """Complete lines, without the trailing newline (nor ``\\r``), decoded as UTF-8 with ``errors="replace"``."""
    position: dict[str, Any]
    """JSON-serialisable; everything up to and including ``lines`` has been read. Fed back on restart."""


@dataclass(frozen=True)
class FilePosition:
    """Where a file tail stopped, and which file that was (by inode + fingerprint, not by name alone).

    ``fp`` is a hash of the first ``fp_len`` bytes of the file; a log only ever grows at the end, so the prefix is a
    stable name for its content. Inode alone is not enough because inodes are reused after deletion.
    """

    path: str
    dev: int
    ino: int
    fp: str
    fp_len: int
    offset: int
    """Byte offset just after the last complete line handed out (always a line boundary)."""

    def to_json(self) -> dict[str, Any]:
        """The dict that goes into :attr:`LineBatch.position`."""
        return {
            "v": POSITION_VERSION,
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "fp": self.fp,
            "fp_len": self.fp_len,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FilePosition | None:
        """Parse a stored position; ``None`` for anything malformed (stored state must never crash the tailer)."""
        if not isinstance(data, Mapping) or data.get("v") != POSITION_VERSION:
            return None
        try:
            pos = cls(
                path=str(data["path"]),
                dev=int(data["dev"]),
                ino=int(data["ino"]),
                fp=str(data["fp"]),
                fp_len=int(data["fp_len"]),
                offset=int(data["offset"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        if pos.offset < 0 or pos.fp_len < 0:
            return None
        return pos


@dataclass(frozen=True)
class FileStats:
    """Live view of one followed file, for the UI's sources panel."""

    key: str
    path: str
    state: str
    """One of the ``STATE_*`` strings or ``"error: <text>"``."""
    size: int | None
    """Size of the file being read (the old one while draining); ``None`` when there is none."""
    offset: int
    """Byte offset of the next unread line in that file."""
    inode: int | None
    lines_per_s: float
    """Rolling rate over the last few seconds."""
    lines_total: int
    rotations: int
    """Renames / deletions followed to a new file."""
    truncations: int
    """Shrinks seen (copytruncate); reading restarted at 0."""
    lines_cut: int
    """Lines longer than the cap, cut to it."""
    generations_waiting: int = 0
    """Newer files seen at the path (after fast rotations) held open until the one being read is finished."""


@dataclass(frozen=True)
class JournalStats:
    """Live view of the journal follower."""

    key: str
    units: tuple[str, ...]
    state: str
    cursor: str | None
    lines_per_s: float
    lines_total: int
    restarts: int
    """How many times journalctl was started again after it exited or failed to start."""
    skipped: int
    """Entries that could not be parsed or had no message (their cursor still advances)."""
    last_stderr: str
    """Last line journalctl wrote to stderr (e.g. its hint about missing group membership)."""


class RateMeter:
    """Rolling lines-per-second over a short window; cheap enough to update on every batch."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._sum = 0

    def add(self, count: int, now: float | None = None) -> None:
        """Record ``count`` lines read at ``now`` (monotonic seconds)."""
        if count <= 0:
            return
        t = time.monotonic() if now is None else now
        self._events.append((t, count))
        self._sum += count
        self._expire(t)

    def rate(self, now: float | None = None) -> float:
        """Lines per second over the window ending at ``now``."""
        t = time.monotonic() if now is None else now
        self._expire(t)
        return self._sum / self._window

    def _expire(self, now: float) -> None:
        limit = now - self._window
        while self._events and self._events[0][0] < limit:
            self._sum -= self._events.popleft()[1]
