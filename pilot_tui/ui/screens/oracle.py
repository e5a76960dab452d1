"""The oracle's send view: what is tailed, what was detected, the outbox, and every batch sent (or not).

State is read from the engine (``sender``, ``outbox``, ``source_stats()``, ``recent``) on the app's update tick and
on a 1 s timer (ages, file offsets, rates); the send log is built from ``SendResult`` updates.

The detections list follows new detections (newest selected, view at the top) until the analyst moves in it or
presses ``F``; from then on the selected detection stays selected and the title counts the newer ones above.
"""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label

from pilot_tui.engines import updates as u
from pilot_tui.engines.oracle import OracleEngine
from pilot_tui.model import ThreatEvent

from ..format import safe_text
from ..messages import EngineUpdates
from ..tones import BAD
from ..widgets.event_detail import detail_renderable
from ..widgets.key_hints import KeyHints
from ..widgets.list_table import ListTable
from ..widgets.oracle_panels import detection_row, file_row, oracle_status_text, send_result_text
from ..widgets.spark import Bars
from ..widgets.status_line import StatusLine
from ..widgets.text_log import TextLog
from ..widgets.view_bar import ViewBar
from .base import EngineScreen
from .detail import EventDetailScreen

DETECTIONS_SHOWN = 100
"""Newest detections listed (the engine keeps 500)."""

DETECTIONS_EVERY_S = 0.5
"""During a flood the detections list is rebuilt at most this often."""

SEND_LOG_LINES = 300
RATE_SAMPLES = 60
"""Seconds of tail rate in the sparkline."""


class OracleScreen(EngineScreen):
    """Send view of one :class:`OracleEngine`."""

    CSS_PATH = "oracle.tcss"
    ENGINES = ("oracle",)
    HELP_SECTION = "Oracle"
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume", id="pause"),
        Binding("r", "retry", "Retry now", id="retry"),
        Binding("enter", "detail", "Event detail", id="detail"),
        Binding("F", "follow", "Follow", id="follow"),
    ]

    def __init__(self, engine: OracleEngine, *, view_name: str = "oracle") -> None:
        super().__init__()
        self.engine = engine
        self.view_name = view_name
        self.last_error = ""
        self._rates: deque[float] = deque([0.0] * RATE_SAMPLES, maxlen=RATE_SAMPLES)
        self._last_lines = engine.lines_read
        self._shown_ids: list[str] = []
        self._files_key: list[tuple[str, ...]] | None = None
        self._detections_at = 0.0
        self._detections_dirty = False
        self.following = True
        """The detections list keeps the newest detection selected (``F`` toggles; moving in the list stops it)."""
        self.new_above = 0
        """Detections that arrived above the selected one since the list stopped following."""

    def compose(self) -> ComposeResult:
        yield ViewBar(self.view_name, "oracle")
        yield StatusLine(id="oracle-status", classes="status-lines")
        with Vertical(id="files-box"):
            yield Label("Tailed files", classes="panel-title")
            yield DataTable(id="files", cursor_type="none", show_cursor=False)
        with Horizontal(id="oracle-main"):
            with Vertical(id="oracle-left"):
                yield Label(self._detections_title(), id="detections-title", classes="panel-title", markup=False)
                yield ListTable(id="detections", zebra_stripes=True)
            with Vertical(id="oracle-right"):
                yield StatusLine(id="rate-label", classes="panel-title")
                yield Bars(id="oracle-rate", classes="bars")
                yield Label("Send log", classes="panel-title")
                yield TextLog(id="send-log", max_lines=SEND_LOG_LINES)
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#files", DataTable).add_columns("FILE", "SIZE", "OFFSET", "LINES/S", "ROT", "STATE")
        self.query_one("#detections", DataTable).add_columns("EVENT TIME", "SEV", "SOURCE IP", "N", "ANOMALY")
        for update in self.pilot_app.history("oracle"):
            self._apply(update)
        self._show_files()
        self._show_detections()
        self._show_rate()
        self._show_status()
        self.set_interval(1.0, self._tick)
        self.query_one("#detections", DataTable).focus()

    # -- updates -----------------------------------------------------------------------------------------------

    def on_engine_updates(self, message: EngineUpdates) -> None:
        for update in message.updates:
            self._apply(update)
        if message.dropped:
            self.query_one(TextLog).add(Text(f"… {message.dropped} updates skipped (UI fell behind)", style="dim"))
        if u.Detected in message.kinds:
            self._detections_dirty = True
            if time.monotonic() - self._detections_at >= DETECTIONS_EVERY_S:
                self._show_detections()
        self._show_status()

    def _apply(self, update: object) -> None:
        if isinstance(update, u.SendResult):
            self.query_one(TextLog).add(send_result_text(update))
            self.last_error = "" if update.ok else f"{update.error_code}: {update.hint or update.error}"
        elif isinstance(update, u.SourceError):
            line = Text("source ", style=BAD)
            line.append_text(safe_text(f"{update.source}: {update.message}"))
            self.query_one(TextLog).add(line)

    def _tick(self) -> None:
        if self._detections_dirty:
            self._show_detections()
        lines = self.engine.lines_read
        self._rates.append(max(0, lines - self._last_lines))
        self._last_lines = lines
        self._show_rate()
        self._show_files()
        self._show_status()

    def _show_rate(self) -> None:
        self.query_one("#oracle-rate", Bars).show(self._rates)
        self.query_one("#rate-label", StatusLine).show(Text(f"Lines / s (60 s) · now {self._rates[-1]:.0f}"))

    def _show_status(self) -> None:
        self.query_one("#oracle-status", StatusLine).update(oracle_status_text(
            sensor=self.engine.config.sensor, status=self.engine.query.send_status(now=self.clock()),
            lines_read=self.engine.lines_read, detections=self.engine.detections, last_error=self.last_error))

    def _show_files(self) -> None:
        """Rebuild the files table only when a value changed (it is re-read every second)."""
        rows = [file_row(stats) for stats in self.engine.source_stats()[:50]]
        key = [tuple(str(cell) for cell in row) for row in rows]
        if key == self._files_key:
            return
        self._files_key = key
        table = self.query_one("#files", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row(Text("no log sources", style="dim"), "", "", "", "", "")

    def _detections_title(self) -> str:
        state = "● live" if self.following else (f"{self.new_above:,} new ↑ (F follows)" if self.new_above
                                                  else "not following (F follows)")
        return f"Detections (newest first) · {state} · Enter for detail"

    def _show_detections(self) -> None:
        self._detections_at, self._detections_dirty = time.monotonic(), False
        table = self.query_one("#detections", DataTable)
        old_row = table.cursor_row
        keep = self._shown_ids[old_row] if 0 <= old_row < len(self._shown_ids) else None
        old_scroll = table.scroll_y
        recent: list[ThreatEvent] = list(self.engine.recent)[-DETECTIONS_SHOWN:][::-1]
        self._shown_ids = [e.id for e in recent]
        table.clear()
        for event in recent:
            table.add_row(*detection_row(event, self.clock()))
        if self.following or keep not in self._shown_ids:
            row = 0 if self.following else min(max(0, old_row), max(0, len(recent) - 1))
            table.move_cursor(row=row, animate=False)
            if self.following:
                table.scroll_to(y=0, animate=False)
        else:
            row = self._shown_ids.index(keep)
            delta = row - old_row
            self.new_above += max(0, delta)
            table.move_cursor(row=row, animate=False, scroll=False)
            # the list does not move under the analyst: scroll by as many rows as landed above
            self.call_after_refresh(table.scroll_to, y=max(0.0, old_scroll + delta), animate=False)
        self.query_one("#detections-title", Label).update(self._detections_title())

    def on_list_table_user_moved(self, message: ListTable.UserMoved) -> None:
        if message.table.id != "detections":
            return
        if message.table.cursor_row == 0:
            self.new_above = 0
        if self.following:
            self.following = False
        self.query_one("#detections-title", Label).update(self._detections_title())

    def action_follow(self) -> None:
        self.following = not self.following
        self.new_above = 0
        self._show_detections()

    # -- intents -------------------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        paused = not self.engine.query.paused
        self.engine.set_paused(paused)
        self.notify("sending paused — detections keep going to the outbox" if paused else "sending resumed",
                    timeout=3)
        self._show_status()

    def action_retry(self) -> None:
        self.notify(self.engine.retry_now(), timeout=3, markup=False)  # sends, or says why not

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "detections":
            event.stop()
            self.action_detail()

    def action_detail(self) -> None:
        table = self.query_one("#detections", DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self._shown_ids):
            self.notify("No detection selected.", severity="warning", timeout=3)
            return
        event = next((e for e in self.engine.recent if e.id == self._shown_ids[row]), None)
        if event is None:
            return
        state = self.engine.query.outbox_state(event.id)
        extra = [("outbox", safe_text(f"{state[0]} ({state[1] or '—'})" if state else "pruned"))]
        self.app.push_screen(EventDetailScreen(f"Detection {event.id[:24]}", detail_renderable(event, extra)))
