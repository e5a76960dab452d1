"""A window over the event store for the feed table: the matching total and a few cached pages of rows.

The feed never loads every event. The table asks for the row at an index (0 = newest); the window fetches the page
holding it through the store's read API (:class:`~pilot_tui.store.queries.FeedQuery`: no SQL here) and keeps at
most :data:`MAX_PAGES` pages. When new events arrive, :meth:`FeedWindow.refresh` counts only rows newer than the
last one it saw (a rowid range, cheap at any store size) and reports how many were added on top so the table can
keep the analyst's row in place. Deferred counts run through a :class:`~pilot_tui.store.queries.QueryReader`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pilot_tui.store.events import StoredEvent
from pilot_tui.store.queries import ORDERS, DecodedRows, FeedQuery

from .filters import ViewFilter

PAGE_ROWS = 64
"""Rows fetched per query."""

MAX_PAGES = 6
"""Pages kept in memory (bounded: a few hundred decoded events at most)."""

DECODED_KEPT = 1024
"""Decoded rows remembered across refreshes (keyed by rowid and triage state)."""


@dataclass(frozen=True, slots=True)
class Sort:
    """One order of the feed: its key (one of the store's :data:`~pilot_tui.store.queries.ORDERS`) and label."""

    key: str
    label: str

    @property
    def descending(self) -> bool:
        return ORDERS[self.key][1]


SORTS: tuple[Sort, ...] = (
    Sort("time", "received, newest first"),
    Sort("severity", "severity, highest first"),
    Sort("count", "count, largest first"),
    Sort("source", "source address"),
)
"""Orders the analyst cycles through (``S``); ties are broken newest first."""

SORT_BY_KEY = {sort.key: sort for sort in SORTS}


class FeedWindow:
    """Total and rows of the filtered feed, newest first. Read-only, through the engine's :class:`FeedQuery`."""

    def __init__(self, query: FeedQuery, flt: ViewFilter | None = None) -> None:
        self.query = query
        self.filter = flt or ViewFilter()
        self.total = 0
        """Events matching the filter."""
        self._max_rowid = 0
        self._pages: OrderedDict[int, list[StoredEvent]] = OrderedDict()
        self._decoded = DecodedRows(DECODED_KEPT)
        self.queries = 0
        """Page queries run so far (tests and the bench look at it)."""
        self.counting = False
        """True while :attr:`total` is only a lower bound (a deferred count is running, see :meth:`set_filter`)."""
        self.sort = SORTS[0]
        """Current order; arrival order (newest first) unless the analyst chose another (:meth:`set_sort`)."""
        self.recount()

    def recount(self) -> None:
        """Count from scratch (after a filter change or a triage change that may hide rows)."""
        self._max_rowid = self.query.newest_rowid()
        self.total = self.query.count(self.filter)
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
        self._max_rowid = self.query.newest_rowid()
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
        return self.query.position(self.filter, self.sort.key, rowid, self._max_rowid)

    def count_query(self) -> tuple[ViewFilter, int, Callable[[FeedQuery], int]]:
        """(filter, rowid bound, ``read(query) -> count``) for the deferred count of the current filter, to run
        through a :class:`~pilot_tui.store.queries.QueryReader`."""
        flt, bound = self.filter, self._max_rowid

        def read(query: FeedQuery) -> int:
            return query.count(flt, upto=bound)

        return flt, bound, read

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
        return self.query.count(self.filter, after=low, upto=high)

    def refresh(self, *, full: bool = False) -> int:
        """Pick up changes; returns how many matching rows were added on top (0 after a full recount)."""
        if full:
            self.recount()
            return 0
        newest = self.query.newest_rowid()
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
        first = page_no * PAGE_ROWS
        want = min(PAGE_ROWS, self.total - first)
        if not self.arrival_order:
            return self._keep_page(page_no, self.query.sorted_page(
                self.filter, self.sort.key, upto=self._max_rowid, limit=want, offset=first, decode=self._decoded))
        before, after = self._pages.get(page_no - 1), self._pages.get(page_no + 1)
        low, high, ascending, offset = 0, self._max_rowid, False, first
        if before:
            high, offset = min(high, before[-1].rowid - 1), 0
        elif after:
            low, ascending, offset = after[0].rowid + 1, True, 0
        elif first > self.total // 2:
            ascending, offset = True, max(0, self.total - first - want)
        rows = self.query.arrival_page(self.filter, low=low, high=high, ascending=ascending, limit=want,
                                       offset=offset, decode=self._decoded)
        if ascending:
            rows.reverse()
        return self._keep_page(page_no, rows)

    def _keep_page(self, page_no: int, rows: list[StoredEvent]) -> list[StoredEvent]:
        self.queries += 1
        self._pages[page_no] = rows
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        return rows

    def index_of(self, rowid: int, near: int, span: int = PAGE_ROWS) -> int | None:
        """Where the event with ``rowid`` is now, looking only around index ``near`` (cheap; ``None`` if not found)."""
        start = max(0, near - span)
        for index in range(start, min(self.total, near + span + 1)):
            row = self.row(index)
            if row is not None and row.rowid == rowid:
                return index
        return None
