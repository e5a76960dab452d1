"""The read API the UI uses over the event store: typed rows and named fields, never SQL or a connection.

The UI must not depend on the table layout (column positions, SQL text, which connection it runs on): a schema
change then stays inside ``pilot_tui/store``. :class:`FeedQuery` holds every read the feed, incidents, stats and
sensors views make; :class:`QueryReader` runs the slow ones (counts and aggregates over 50k+ events) on a second,
read-only connection in a worker thread, so the UI's event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from . import feed
from .events import EVENT_COLUMNS, StoredEvent, row_to_stored, sensor_rows
from .feed import FeedFilter, Incident

T = TypeVar("T")
log = logging.getLogger(__name__)

ORDERS: dict[str, tuple[str, bool]] = {
    "time": ("rowid", True),
    "severity": ("severity", True),
    "count": ("COALESCE(count, 0)", True),
    "source": ("source_ip", False),
}
"""Feed orders by key: (SQL value sorted on, descending). ``time`` is arrival order; ties go newest first."""

_COLUMN = {name.strip(): index for index, name in enumerate(EVENT_COLUMNS.split(","))}
_TRIAGE_KEY = itemgetter(*(_COLUMN[name] for name in ("rowid", "state", "state_at", "mitigation", "flags")))
"""A decoded row stays valid while its rowid and everything triage can change are the same."""


class DecodedRows:
    """Decoded events remembered across page reads (LRU): after new arrivals the same rows come back, shifted,
    and decoding a row (JSON body) costs more than fetching it."""

    def __init__(self, kept: int = 1024) -> None:
        self.kept = kept
        self._rows: OrderedDict[Any, StoredEvent] = OrderedDict()

    def __call__(self, row: tuple[Any, ...]) -> StoredEvent:
        key = _TRIAGE_KEY(row)
        hit = self._rows.get(key)
        if hit is not None:
            self._rows.move_to_end(key)
            return hit
        stored = row_to_stored(row)
        self._rows[key] = stored
        if len(self._rows) > self.kept:
            self._rows.popitem(last=False)
        return stored


def _where(flt: FeedFilter, *extra: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    """``flt``'s WHERE clause with ``extra`` (clause, its arguments) pairs ANDed on."""
    where, args = flt.where()
    for clause, more in extra:
        where += (" AND " if where else " WHERE ") + clause
        args = [*args, *more]
    return where, args


class FeedQuery:
    """Read-only queries over one event store connection. Owns no connection: the store (or the reader) does."""

    def __init__(self, conn: sqlite3.Connection, path: Path | str | None = None) -> None:
        self._conn = conn
        self.path = path
        """The database file (``None`` or ``:memory:`` when there is none to open a second connection on)."""

    # -- the feed window -----------------------------------------------------------------------------------------

    def newest_rowid(self) -> int:
        """Arrival number of the newest stored event (0 when empty)."""
        row = self._conn.execute("SELECT MAX(rowid) FROM events").fetchone()
        return int(row[0] or 0)

    def total(self) -> int:
        """Every stored event, whatever the filter."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def count(self, flt: FeedFilter, *, after: int | None = None, upto: int | None = None) -> int:
        """Events matching ``flt`` with an arrival number in ``(after, upto]`` (open ends when ``None``)."""
        extra: list[tuple[str, list[Any]]] = []
        if after is not None:
            extra.append(("rowid > ?", [after]))
        if upto is not None:
            extra.append(("rowid <= ?", [upto]))
        where, args = _where(flt, *extra)
        return int(self._conn.execute(f"SELECT COUNT(*) FROM events{where}", args).fetchone()[0])

    def position(self, flt: FeedFilter, order: str, rowid: int, upto: int) -> int | None:
        """Index of event ``rowid`` among ``flt``'s events up to ``upto`` in ``order``; ``None`` if it does not
        match. One ``COUNT`` of the rows sorting before it."""
        expr, descending = ORDERS[order]
        where, args = _where(flt, ("rowid = ?", [rowid]), ("rowid <= ?", [upto]))
        found = self._conn.execute(f"SELECT {expr} FROM events{where}", args).fetchone()
        if found is None:
            return None
        if expr == "rowid":
            before = ("rowid > ?", [rowid])
        else:
            cmp = ">" if descending else "<"
            before = (f"({expr} {cmp} ? OR ({expr} = ? AND rowid > ?))", [found[0], found[0], rowid])
        where, args = _where(flt, before, ("rowid <= ?", [upto]))
        return int(self._conn.execute(f"SELECT COUNT(*) FROM events{where}", args).fetchone()[0])

    def arrival_page(self, flt: FeedFilter, *, low: int, high: int, ascending: bool, limit: int, offset: int,
                     decode: Callable[[tuple[Any, ...]], StoredEvent] = row_to_stored) -> list[StoredEvent]:
        """``limit`` events of ``flt`` with arrival numbers in ``[low, high]``, skipping ``offset``, in arrival
        order (``ascending``) or newest first. One rowid range per query: SQLite uses a single bound of the
        primary key."""
        where, args = _where(flt, ("rowid BETWEEN ? AND ?", [low, high]))
        order = "ASC" if ascending else "DESC"
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY rowid {order} LIMIT ? OFFSET ?"
        return [decode(r) for r in self._conn.execute(sql, [*args, limit, offset])]

    def sorted_page(self, flt: FeedFilter, order: str, *, upto: int, limit: int, offset: int,
                    decode: Callable[[tuple[Any, ...]], StoredEvent] = row_to_stored) -> list[StoredEvent]:
        """``limit`` events of ``flt`` up to ``upto`` in ``order`` (ties newest first), skipping ``offset``."""
        expr, descending = ORDERS[order]
        where, args = _where(flt, ("rowid <= ?", [upto]))
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY {expr} {direction}, rowid DESC LIMIT ? OFFSET ?"
        return [decode(r) for r in self._conn.execute(sql, [*args, limit, offset])]

    def window(self, flt: FeedFilter, offset: int, limit: int) -> list[StoredEvent]:
        """Rows ``offset … offset+limit`` of ``flt``'s events, newest first."""
        return feed.window(self._conn, flt, offset, limit)

    def folder(self) -> Path | None:
        """The directory holding the database file (where copies are written as files too); ``None`` in memory."""
        try:
            row = self._conn.execute("PRAGMA database_list").fetchone()
        except sqlite3.Error:  # a closed store simply has no directory
            return None
        return Path(row[2]).parent if row and row[2] else None

    # -- aggregates (slow at 50k events: run them through a QueryReader) ------------------------------------------

    def incidents(self, limit: int = 200) -> list[Incident]:
        return feed.incidents(self._conn, limit)

    def top_sources(self, n: int = 5, since_s: float | None = None) -> list[tuple[str, int]]:
        return feed.top_sources(self._conn, n, since_s)

    def per_minute(self, minutes: int = 30, now: float | None = None) -> list[int]:
        return feed.per_minute(self._conn, minutes, now=now)

    def sensors(self) -> list[dict[str, Any]]:
        """The sensors table (``events.sensor_rows``)."""
        return sensor_rows(self._conn)

    # -- a second connection ---------------------------------------------------------------------------------

    def read_only_copy(self) -> tuple[FeedQuery, Callable[[], None]] | None:
        """The same queries on a new read-only connection usable from another thread, with its ``close``;
        ``None`` for an in-memory store (no file to share). WAL mode: it reads a consistent snapshot while the
        engine writes."""
        path = str(self.path) if self.path is not None else ":memory:"
        if path == ":memory:" or not Path(path).exists():
            return None
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
        return FeedQuery(conn, path), conn.close


class QueryReader:
    """Runs :class:`FeedQuery` reads without blocking the event loop: on a second read-only connection in a
    worker thread, or inline on the engine's connection for an in-memory store (tests only).

    At 50,000 events ``per_minute`` scans the table (~15 ms), ``incidents`` groups it (~50 ms), ``sensors`` counts
    sequence holes (~30 ms) and a free-text count reads every body (~0.1 s): too slow for a loop where a key must
    render in well under 100 ms.
    """

    def __init__(self, query: FeedQuery) -> None:
        self.inline = query
        self._lock = threading.Lock()
        self._query: FeedQuery | None = None
        self._close: Callable[[], None] | None = None
        copy = query.read_only_copy()
        if copy is not None:
            self._query, self._close = copy

    @property
    def threaded(self) -> bool:
        """True when queries run in a thread on their own connection."""
        return self._query is not None

    async def run(self, read: Callable[[FeedQuery], T]) -> T:
        """``read(query)`` in a worker thread (or inline for an in-memory store).

        If the second connection fails (the file went away, a locking surprise), the reader falls back to the
        engine's connection for good rather than failing every refresh.
        """
        query = self._query
        if query is None:
            return read(self.inline)

        def call() -> T:
            with self._lock:
                return read(query)

        try:
            return await asyncio.to_thread(call)
        except sqlite3.Error as exc:
            log.warning("read-only store connection failed (%s); reading on the engine's connection", exc)
            self.close()
            return read(self.inline)

    async def sensors(self) -> list[dict[str, Any]]:
        """The sensors table, off the loop."""
        return await self.run(FeedQuery.sensors)

    def close(self) -> None:
        if self._close is not None:
            with self._lock:
                self._close()
        self._query, self._close = None, None
