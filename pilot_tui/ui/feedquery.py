"""A window over the event store for the feed table: the matching total and a few cached pages of rows.

The feed never loads every event. The table asks for the row at an index (0 = newest); the window fetches the page
holding it (``feed.window`` with LIMIT/OFFSET) and keeps at most :data:`MAX_PAGES` pages. When new events arrive,
:meth:`FeedWindow.refresh` counts only rows newer than the last one it saw (a rowid range, cheap at any store size)
and reports how many were added on top so the table can keep the analyst's row in place.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pilot_tui.store import feed
from pilot_tui.store.events import EVENT_COLUMNS, StoredEvent, row_to_stored

from .filters import ViewFilter

PAGE_ROWS = 64
"""Rows fetched per query."""

MAX_PAGES = 6
"""Pages kept in memory (bounded: a few hundred decoded events at most)."""

DECODED_KEPT = 1024
"""Decoded rows remembered across refreshes (keyed by rowid and triage state)."""


@dataclass(frozen=True, slots=True)
class Sort:
    """One order of the feed: its key, header label, SQL order and the column compared to find a row's place."""

    key: str
    label: str
    expr: str
    """SQL value sorted on (``rowid`` = arrival order)."""
    descending: bool


SORTS: tuple[Sort, ...] = (
    Sort("time", "received, newest first", "rowid", True),
    Sort("severity", "severity, highest first", "severity", True),
    Sort("count", "count, largest first", "COALESCE(count, 0)", True),
    Sort("source", "source address", "source_ip", False),
)
"""Orders the analyst cycles through (``S``); ties are broken newest first."""

SORT_BY_KEY = {sort.key: sort for sort in SORTS}


class FeedWindow:
    """Total and rows of the filtered feed, newest first. Read-only; uses the store's connection."""

    def __init__(self, conn: sqlite3.Connection, flt: ViewFilter | None = None) -> None:
        self.conn = conn
        self.filter = flt or ViewFilter()
        self.total = 0
        """Events matching the filter."""
        self._max_rowid = 0
        self._pages: OrderedDict[int, list[StoredEvent]] = OrderedDict()
        self._decoded: OrderedDict[tuple[object, ...], StoredEvent] = OrderedDict()
        self.queries = 0
        """Page queries run so far (tests and the bench look at it)."""
        self.counting = False
        """True while :attr:`total` is only a lower bound (a deferred count is running, see :meth:`set_filter`)."""
        self.sort = SORTS[0]
        """Current order; arrival order (newest first) unless the analyst chose another (:meth:`set_sort`)."""
        self.recount()

    def _store_max_rowid(self) -> int:
        row = self.conn.execute("SELECT MAX(rowid) FROM events").fetchone()
        return int(row[0] or 0)

    def recount(self) -> None:
        """Count from scratch (after a filter change or a triage change that may hide rows)."""
        self._max_rowid = self._store_max_rowid()
        self.total = feed.count(self.conn, self.filter)
        self.counting = False
        self._pages.clear()

    def set_filter(self, flt: ViewFilter, *, defer_count: bool = False) -> None:
        """Show ``flt``'s events. With ``defer_count`` only the first page is read now: if it is full,
        :attr:`total` is a lower bound and :attr:`counting` is set until :meth:`finish_count` gets the real total
        from :meth:`count_query` (run off the event loop: a free-text count scans every stored event)."""
        self.filter = flt
        if not defer_count:
            self.recount()
            return
        self._max_rowid = self._store_max_rowid()
        self._pages.clear()
        self.total = PAGE_ROWS
        first = self._fetch(0)
        self.total = len(first)
        self.counting = len(first) == PAGE_ROWS

    def set_sort(self, key: str) -> None:
        """Order rows by ``key`` (one of :data:`SORTS`); the total is unchanged."""
        self.sort = SORT_BY_KEY[key]
        self._pages.clear()

    @property
    def arrival_order(self) -> bool:
        """True when rows are in arrival order: new events then always land on top."""
        return self.sort.key == "time"

    def position_of(self, rowid: int) -> int | None:
        """Index of the event ``rowid`` in the current filter and order, or ``None`` when it does not match.

        One ``COUNT`` of the rows that sort before it — how the table keeps the analyst's event selected when new
        events land anywhere in a sorted feed (or when a recount moved it).
        """
        where, args = self.filter.where()
        glue = " AND " if where else " WHERE "
        expr = self.sort.expr
        found = self.conn.execute(f"SELECT {expr} FROM events{where}{glue}rowid = ? AND rowid <= ?",
                                  [*args, rowid, self._max_rowid]).fetchone()
        if found is None:
            return None
        if expr == "rowid":
            before, extra = "rowid > ?", [rowid]
        else:
            cmp = ">" if self.sort.descending else "<"
            before, extra = f"({expr} {cmp} ? OR ({expr} = ? AND rowid > ?))", [found[0], found[0], rowid]
        sql = f"SELECT COUNT(*) FROM events{where}{glue}{before} AND rowid <= ?"
        return int(self.conn.execute(sql, [*args, *extra, self._max_rowid]).fetchone()[0])

    def count_query(self) -> tuple[ViewFilter, int, Callable[[sqlite3.Connection], int]]:
        """(filter, rowid bound, ``query(conn) -> count``) for the deferred count of the current filter."""
        flt, bound = self.filter, self._max_rowid
        where, args = flt.where()
        glue = " AND " if where else " WHERE "
        sql = f"SELECT COUNT(*) FROM events{where}{glue}rowid <= ?"

        def query(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, [*args, bound]).fetchone()[0])

        return flt, bound, query

    def finish_count(self, flt: ViewFilter, bound: int, counted: int) -> bool:
        """Take a deferred count (of rows up to ``bound``); False when the filter changed meanwhile."""
        if flt is not self.filter or not self.counting:
            return False
        self.total = counted + self._count_between(bound, self._max_rowid)
        self.counting = False
        return True

    def _count_between(self, low: int, high: int) -> int:
        if high <= low:
            return 0
        where, args = self.filter.where()
        glue = " AND " if where else " WHERE "
        return int(self.conn.execute(f"SELECT COUNT(*) FROM events{where}{glue}rowid > ? AND rowid <= ?",
                                     [*args, low, high]).fetchone()[0])

    def refresh(self, *, full: bool = False) -> int:
        """Pick up changes; returns how many matching rows were added on top (0 after a full recount)."""
        if full:
            self.recount()
            return 0
        newest = self._store_max_rowid()
        added = 0
        if newest > self._max_rowid:
            added = self._count_between(self._max_rowid, newest)
            self._max_rowid = newest
            self.total += added
        self._pages.clear()
        return added

    def invalidate(self) -> None:
        """Forget cached rows (their state changed) without recounting."""
        self._pages.clear()

    def row(self, index: int) -> StoredEvent | None:
        """The event at ``index`` (0 = newest matching), or ``None`` outside the range."""
        if not 0 <= index < self.total:
            return None
        page_no, within = divmod(index, PAGE_ROWS)
        page = self._pages.get(page_no)
        if page is None:
            page = self._fetch(page_no)
        else:
            self._pages.move_to_end(page_no)
        return page[within] if within < len(page) else None

    def _fetch(self, page_no: int) -> list[StoredEvent]:
        """Fetch one page, by keyset from a cached neighbour when there is one, else by OFFSET from the nearer end.

        Rows newer than the last count stay out (``rowid <= max``) so indices match :attr:`total` until the next
        :meth:`refresh`. Deep OFFSETs over a text filter cost tens of milliseconds at 50k events; keysets and
        counting from the far end keep scrolling and ``End`` cheap.
        """
        where, args = self.filter.where()
        glue = " AND " if where else " WHERE "
        first = page_no * PAGE_ROWS
        want = min(PAGE_ROWS, self.total - first)
        if not self.arrival_order:
            return self._keep_page(page_no, self._fetch_sorted(where + glue, args, first, want))
        before, after = self._pages.get(page_no - 1), self._pages.get(page_no + 1)
        # One rowid range per query: SQLite uses a single bound of the primary key, so bounds are merged here.
        low, high, order, offset = 0, self._max_rowid, "DESC", first
        if before:
            high, offset = min(high, before[-1].rowid - 1), 0
        elif after:
            low, order, offset = after[0].rowid + 1, "ASC", 0
        elif first > self.total // 2:
            order, offset = "ASC", max(0, self.total - first - want)
        sql = (f"SELECT {EVENT_COLUMNS} FROM events{where}{glue}rowid BETWEEN ? AND ? "
               f"ORDER BY rowid {order} LIMIT ? OFFSET ?")
        params = [*args, low, high, want, offset]
        ascending = order == "ASC"
        rows = [self._decode(r) for r in self.conn.execute(sql, params)]
        if ascending:
            rows.reverse()
        return self._keep_page(page_no, rows)

    def _fetch_sorted(self, where: str, args: list[object], first: int, want: int) -> list[StoredEvent]:
        """One page in a column order: plain ``LIMIT/OFFSET`` (severity has an index; count and source sort
        the matching rows, tens of milliseconds at 50k events, only when the analyst asked for that order)."""
        direction = "DESC" if self.sort.descending else "ASC"
        sql = (f"SELECT {EVENT_COLUMNS} FROM events{where}rowid <= ? "
               f"ORDER BY {self.sort.expr} {direction}, rowid DESC LIMIT ? OFFSET ?")
        return [self._decode(r) for r in self.conn.execute(sql, [*args, self._max_rowid, want, first])]

    def _keep_page(self, page_no: int, rows: list[StoredEvent]) -> list[StoredEvent]:
        self.queries += 1
        self._pages[page_no] = rows
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        return rows

    def _decode(self, row: tuple[object, ...]) -> StoredEvent:
        """``row_to_stored`` with a small cache: after new arrivals the same rows come back, shifted."""
        key = (row[0], row[5], row[8], row[9], row[10])  # rowid + everything triage can change
        hit = self._decoded.get(key)
        if hit is not None:
            self._decoded.move_to_end(key)
            return hit
        stored = row_to_stored(row)  # type: ignore[arg-type]
        self._decoded[key] = stored
        if len(self._decoded) > DECODED_KEPT:
            self._decoded.popitem(last=False)
        return stored

    def index_of(self, rowid: int, near: int, span: int = PAGE_ROWS) -> int | None:
        """Where the event with ``rowid`` is now, looking only around index ``near`` (cheap; ``None`` if not found)."""
        start = max(0, near - span)
        for index in range(start, min(self.total, near + span + 1)):
            row = self.row(index)
            if row is not None and row.rowid == rowid:
                return index
        return None
