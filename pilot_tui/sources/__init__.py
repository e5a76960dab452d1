"""Log sources: follow files (rotation, truncation, restarts) and the systemd journal.

Sources read; they never persist. Each :class:`LineBatch` carries ``key`` and a JSON-serialisable ``position``
that the engine commits together with whatever it derived from the lines, and hands back on restart, which gives
at-least-once reading: a crash before the commit re-reads those lines, never skips them.

Typical use::

    source = open_sources(["/var/log/auth.log"], stored_positions, journal_units=["ssh.service"])
    async for batch in source.batches():
        detections = detect(batch.lines)
        store.commit(detections, batch.key, batch.position)   # one transaction
    ...
    await source.close()
"""

from pilot_tui.sources.follower import TailOptions
from pilot_tui.sources.journal import JournalSource, format_entry, journal_key
from pilot_tui.sources.multi import MultiSource, open_sources
from pilot_tui.sources.tailer import FileTailer, file_key
from pilot_tui.sources.types import (
    ERROR_PREFIX,
    STATE_DRAINING,
    STATE_FOLLOWING,
    STATE_STARTING,
    STATE_STOPPED,
    STATE_WAITING,
    FilePosition,
    FileStats,
    JournalStats,
    LineBatch,
)

__all__ = [
    "ERROR_PREFIX",
    "STATE_DRAINING",
    "STATE_FOLLOWING",
    "STATE_STARTING",
    "STATE_STOPPED",
    "STATE_WAITING",
    "FilePosition",
    "FileStats",
    "FileTailer",
    "JournalSource",
    "JournalStats",
    "LineBatch",
    "MultiSource",
    "TailOptions",
    "file_key",
    "format_entry",
    "journal_key",
    "open_sources",
]
