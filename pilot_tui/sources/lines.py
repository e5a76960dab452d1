"""Bytes in, complete lines out, with bounded memory.

Shared by the file tailer and the journal follower. A line is only handed out once its newline has arrived: the
writer may be half-way through it, and a detection rule must never see half a line. Attacker-controlled text can
be arbitrarily long, so a line is capped (cut and counted) and the partial tail held between reads never exceeds
the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_LINE_BYTES = 64 * 1024


@dataclass
class SplitResult:
    """What one :meth:`LineSplitter.feed` call produced."""

    lines: list[bytes]
    """Complete lines, without their newline."""
    consumed: int
    """Bytes of the input accounted for: all of it, unless ``max_lines`` stopped the split early."""
    boundary: int
    """Index in the input just after the last newline used, or -1 if no newline was used."""


class LineSplitter:
    """Incremental newline splitter that remembers the unfinished last line between calls."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line = max_line_bytes
        self._pending = b""
        self._overlong = False
        self._discard = False
        self.cut = 0
        """Lines cut to the cap so far."""

    @property
    def pending_bytes(self) -> int:
        """Size of the partial line held (at most the cap)."""
        return len(self._pending)

    def reset(self, discard_first: bool = False) -> None:
        """Forget the partial line (after truncation or a file switch).

        ``discard_first`` drops everything up to the next newline: used when reading starts in the middle of a
        line (starting at the end of a file whose last line is unfinished and longer than the cap).
        """
        self._pending = b""
        self._overlong = False
        self._discard = discard_first

    def feed(self, data: bytes, max_lines: int) -> SplitResult:
        """Split ``data`` (the bytes following the previous call's input), at most ``max_lines`` lines."""
        parts = data.split(b"\n")
        complete = len(parts) - 1
        if complete == 0:
            self._absorb(data)
            return SplitResult([], len(data), -1)
        limited = complete > max_lines
        if limited:
            parts = parts[: max_lines + 1]
            take = max_lines
        else:
            take = complete
        out = parts[:take]
        first = out[0]
        if self._discard:
            out = out[1:]
            self._discard = False
        elif self._pending or self._overlong:
            if self._overlong:
                self.cut += 1
                out[0] = self._pending
            else:
                joined = self._pending + first
                if len(joined) > self.max_line:
                    self.cut += 1
                    joined = joined[: self.max_line]
                out[0] = joined
        self._pending = b""
        self._overlong = False
        cap = self.max_line
        for i, line in enumerate(out):
            if len(line) > cap:  # lines joined with the pending tail above are already capped
                self.cut += 1
                out[i] = line[:cap]
        boundary = sum(len(p) for p in parts[:take]) + take
        if limited:
            return SplitResult(out, boundary, boundary)
        self._absorb(parts[-1])
        return SplitResult(out, len(data), boundary)

    def flush(self) -> bytes | None:
        """Hand out the unfinished last line, if any: used when a file is finished for good (rotated away)."""
        if self._discard:
            self.reset()
            return None
        line = self._pending
        had = bool(line) or self._overlong
        if self._overlong:
            self.cut += 1
        self.reset()
        return line if had else None

    def _absorb(self, tail: bytes) -> None:
        if not tail or self._discard:
            return
        if self._overlong:
            return
        pending = self._pending + tail
        if len(pending) > self.max_line:
            pending = pending[: self.max_line]
            self._overlong = True
        self._pending = pending
