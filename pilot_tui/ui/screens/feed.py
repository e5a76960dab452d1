"""The orchestrator's threat feed: filterable virtual table, detail pane, stats, and the analyst's actions.

Every action goes through the engine (``acknowledge``, ``false_positive``, ``reopen``, ``mitigate``); the screen
only decides what to ask and shows what the engine reports. Reads go through the engine's read API
(``engine.query``); the slow ones (counts over a text filter, stats) run in a worker thread. New events are picked
up on the app's update tick (≤10×/s), never per event.
"""

from __future__ import annotations

import time
from dataclasses import replace

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input

from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.model import SEVERITIES
from pilot_tui.store.events import StoredEvent
from pilot_tui.store.queries import FeedQuery

from ..bridge import TRIAGE_KINDS
from ..feedquery import FeedWindow
from ..filters import FIELDS, FilterError, ViewFilter, parse_query
from ..messages import EngineUpdates, FeedCursorMoved, FeedRowChosen
from ..widgets.event_detail import EventDetail
from ..widgets.feed_table import FeedTable
from ..widgets.key_hints import KeyHints
from ..widgets.orchestrator_panels import StatsStrip, status_text
from ..widgets.receiver_banner import ReceiverBanner
from ..widgets.status_line import StatusLine
from ..widgets.view_bar import ViewBar
from .base import EngineScreen
from .triage import TriageActions

FILTER_DEBOUNCE_S = 0.12
"""The filter applies this long after the last key typed in the ``/`` box (one query per pause, not per key)."""

STATS_EVERY_S = 2.0
"""Top sources and the per-minute sparkline are aggregate queries: refreshed at most this often."""


class FilterInput(Input):
    """The ``/`` box. It takes every printable key, so the footer would otherwise be empty while typing: it says
    how to leave instead."""

    HELP_SECTION = "Filter box"
    BINDINGS = [
        Binding("enter", "submit", "Keep filter", id="keep-filter"),
        Binding("escape", "screen.back", "Cancel", id="cancel-filter"),
    ]


def stats_query(query: FeedQuery, now: float) -> tuple[list[tuple[str, int]], list[int]]:
    """(top 5 sources, events per minute over 30 minutes) — through the app's reader, off the loop (inline only for the first paint)."""
    return query.top_sources(5), query.per_minute(30, now=now)


class FeedScreen(TriageActions, EngineScreen):
    """Threat feed of one :class:`OrchestratorEngine`."""

    CSS_PATH = "feed.tcss"
    ENGINES = ("orchestrator",)
    HELP_SECTION = "Threat feed"

    # The feed's keys (/ s h a f o m i t x F S c C) are the table's: see FeedTable.BINDINGS.
    BINDINGS = [
        Binding("escape", "back", "Close / clear", show=False, id="back"),
    ]

    VIEW = "feed"

    def __init__(self, engine: OrchestratorEngine) -> None:
        super().__init__()
        self.engine = engine
        self.orchestrator = engine
        self.window = FeedWindow(engine.query.feed)
        self._stats_at = 0.0
        self._stats_dirty = True
        self._quarantined = engine.query.quarantine_count()
        self._filter_before: ViewFilter | None = None
        self._filter_timer: Timer | None = None

    # -- layout ------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        follow = self.engine.config.follow
        yield ViewBar("feed", f"following {follow}" if follow else "orchestrator")
        yield StatusLine(id="feed-status", classes="status-lines")
        yield ReceiverBanner(self.engine, id="feed-receiver-banner")
        yield FilterInput(placeholder=f"filter ({FIELDS} or any text) — applies as you type; Enter keeps, Esc "
                                      "cancels", id="filter-input", max_length=200)
        with Horizontal(id="feed-main"):
            yield FeedTable(self.window, id="feed-table")
            yield EventDetail(id="feed-detail")
        yield StatsStrip(id="feed-stats")
        yield KeyHints()

    @property
    def table(self) -> FeedTable:
        return self.query_one(FeedTable)

    @property
    def detail(self) -> EventDetail:
        return self.query_one(EventDetail)

    def on_mount(self) -> None:
        self.table.reload(reset=True)
        self.table.focus()
        self._show_status()
        self._refresh_stats(force=True)

    # -- engine updates ------------------------------------------------------------------------------------------

    def on_engine_updates(self, message: EngineUpdates) -> None:
        kinds = message.kinds
        if u.EventsStored in kinds or kinds & TRIAGE_KINDS:
            full = bool(kinds & TRIAGE_KINDS) and self.window.filter.hide_handled
            added = self.window.refresh(full=full)
            self.table.reload(added_on_top=added)
            self._stats_dirty = True
            if kinds & TRIAGE_KINDS and self.detail.display:
                self.detail.show(self.table.current)
        if u.Quarantined in kinds:
            self._quarantined = self.engine.query.quarantine_count()
        self._show_status()
        self._refresh_stats()

    def _show_status(self) -> None:
        flt = self.window.filter
        total = self.engine.query.total() if flt.active else self.window.total
        self.query_one("#feed-status", StatusLine).update(status_text(
            receivers=self.engine.receivers, total=total, shown=self.window.total, quarantined=self._quarantined,
            exec_node=self.engine.config.exec_node, flt=flt, now=self.clock(), counting=self.window.counting))

    def _refresh_stats(self, *, force: bool = False) -> None:
        """Top sources and the per-minute rate: inline when forced (first paint), else in a worker thread."""
        mono = time.monotonic()
        if not force and (not self._stats_dirty or mono - self._stats_at < STATS_EVERY_S):
            return
        self._stats_at, self._stats_dirty = mono, False
        if force:
            self._show_stats(stats_query(self.engine.query.feed, self.clock()))
        else:
            self._load_stats()

    @work(name="feed stats", group="stats", exclusive=True, exit_on_error=False)
    async def _load_stats(self) -> None:
        now = self.clock()
        self._show_stats(await self.pilot_app.reader.run(lambda query: stats_query(query, now)))

    def _show_stats(self, stats: tuple[list[tuple[str, int]], list[int]]) -> None:
        self.query_one(StatsStrip).show(*stats)

    # -- table events ----------------------------------------------------------------------------------------

    def on_feed_cursor_moved(self, message: FeedCursorMoved) -> None:
        if self.detail.display:
            self.detail.show(message.stored)

    def on_feed_row_chosen(self, message: FeedRowChosen) -> None:
        self._toggle_detail(message.stored)

    def _toggle_detail(self, stored: StoredEvent | None) -> None:
        opening = not self.detail.display
        self.detail.display = opening
        self.set_class(opening, "-detail-open")
        if opening:
            self.detail.show(stored)
        self.table.focus()

    # -- filter ----------------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter-input", Input)
        if not box.display:
            self._filter_before = self.window.filter
        box.value = self.window.filter.query()
        self._show_filter_error(box, "")
        box.display = True
        box.focus()

    def _typed_filter(self, box: Input) -> ViewFilter | None:
        """The filter the box holds, or ``None`` (and the reason shown under the box) when it is not valid."""
        base = self._filter_before or self.window.filter
        try:
            flt = parse_query(box.value, base)
        except FilterError as exc:
            self._show_filter_error(box, str(exc))
            return None
        self._show_filter_error(box, "")
        return flt

    def _show_filter_error(self, box: Input, error: str) -> None:
        box.border_subtitle = error
        box.set_class(bool(error), "-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        """Apply the filter while the analyst types, once typing pauses (debounced)."""
        if event.input.id != "filter-input" or not event.input.display:
            return
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE_S, self._apply_typed)

    def _apply_typed(self) -> None:
        self._filter_timer = None
        box = self.query_one("#filter-input", Input)
        if not box.display:
            return
        flt = self._typed_filter(box)
        if flt is not None and flt != self.window.filter:
            self.apply_filter(flt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter-input":
            return
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        flt = self._typed_filter(event.input)
        if flt is None:
            return  # the error stays shown under the box; nothing is applied
        if flt != self.window.filter:
            self.apply_filter(flt)
        self._filter_before = None
        event.input.display = False
        self.table.focus()

    def apply_filter(self, flt: ViewFilter) -> None:
        """Show only events matching ``flt`` (cursor back to the newest).

        A substring filter (free text, ``anomaly:``, ``sensor:``, part of an address) has to look into every stored
        event to count its matches (~0.1 s at 50k): the first rows show at once and the count arrives from a worker
        thread — the filter applies while the analyst types, so this must stay quick.
        """
        scans = bool(flt.text or flt.anomaly or flt.sensor or flt.ip_part)  # substring tests: no index helps
        self.window.set_filter(flt, defer_count=scans)
        self.table.reload(reset=True)
        self._show_status()
        if self.window.counting:
            self._count()

    @work(name="count matches", group="count", exclusive=True, exit_on_error=False)
    async def _count(self) -> None:
        flt, bound, query = self.window.count_query()
        counted = await self.pilot_app.reader.run(query)
        if self.window.finish_count(flt, bound, counted):
            self.table.reload()
            self._show_status()

    def action_severity(self) -> None:
        flt = self.window.filter
        self.apply_filter(replace(flt, min_severity=(flt.min_severity + 1) % len(SEVERITIES)))
        self.notify(f"minimum severity: {SEVERITIES[self.window.filter.min_severity]}", timeout=2)

    def action_hide_handled(self) -> None:
        flt = self.window.filter
        self.apply_filter(replace(flt, hide_handled=not flt.hide_handled))

    def action_back(self) -> None:
        box = self.query_one("#filter-input", Input)
        if box.display:
            if self._filter_timer is not None:
                self._filter_timer.stop()
                self._filter_timer = None
            box.display = False
            if self._filter_before is not None and self._filter_before != self.window.filter:
                self.apply_filter(self._filter_before)  # Esc cancels what was typed
            self._filter_before = None
            self.table.focus()
        elif self.detail.display:
            self._toggle_detail(None)
        elif self.window.filter.active:
            self.apply_filter(ViewFilter())

    def filter_by_ip(self, ip: str | None) -> None:
        """Show one attacker's events (from the incidents view)."""
        if ip:
            flt = self.window.filter
            self.apply_filter(replace(parse_query(f"ip:{ip}", flt), min_severity=flt.min_severity))

    # the table's own keys, reachable from the command palette (which runs actions on the screen)
    def action_follow(self) -> None:
        self.table.action_follow()

    def action_sort(self) -> None:
        self.table.action_sort()

    def action_copy(self, what: str) -> None:
        self.table.action_copy(what)

    # -- secondary views -----------------------------------------------------------------------------------

    def action_incidents(self) -> None:
        from .incidents import IncidentsScreen

        self.app.push_screen(IncidentsScreen(self.engine), self._incident_chosen)

    def _incident_chosen(self, ip: str | None) -> None:
        self.filter_by_ip(ip)

    def action_sensors(self) -> None:
        from .sensors import SensorsScreen

        self.app.push_screen(SensorsScreen(self.engine))

    def action_quarantine(self) -> None:
        from .quarantine import QuarantineScreen

        self.app.push_screen(QuarantineScreen(self.engine))
