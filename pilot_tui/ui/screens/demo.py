"""The demo layout: the whole story on one screen — what the oracle sends, what the orchestrator's analyst sees,
and what the executor does when asked to block.

It reuses the views' pieces (feed table, send-log lines, decision rows) and the feed's triage actions; the full
views stay one key away for anything deeper (filters, incidents, trust).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label

from pilot_tui.engines import updates as u

from ..bridge import TRIAGE_KINDS
from ..feedquery import FeedWindow
from ..filters import ViewFilter
from ..messages import EngineUpdates, FeedCursorMoved, FeedRowChosen
from ..widgets.event_detail import EventDetail
from ..widgets.executor_panels import NARROW_DECISION_COLUMNS, decision_row
from ..widgets.feed_table import FeedTable
from ..widgets.key_hints import KeyHints
from ..widgets.oracle_panels import oracle_status_text, send_result_text
from ..widgets.orchestrator_panels import status_text
from ..widgets.receiver_banner import ReceiverBanner
from ..widgets.status_line import StatusLine
from ..widgets.text_log import TextLog
from ..widgets.view_bar import ViewBar
from .base import EngineScreen
from .triage import TriageActions

DECISIONS_SHOWN = 50


class DemoScreen(TriageActions, EngineScreen):
    """Oracle, orchestrator and executor side by side (each part only when its engine runs)."""

    CSS_PATH = "demo.tcss"
    VIEW = "demo"
    HELP_SECTION = "Demo"
    BINDINGS = [
        Binding("a", "acknowledge", "Ack", id="acknowledge"),
        Binding("m", "mitigate", "Mitigate", id="mitigate"),
        Binding("f", "false_positive", "False pos", show=False, id="false-positive"),
        Binding("p", "toggle_pause", "Pause send", id="pause"),
        Binding("b", "blocks", "Blocks", id="blocks"),
        Binding("escape", "close_detail", "Close detail", show=False, id="back"),
    ]

    def __init__(self, engines: dict[str, Any]) -> None:
        super().__init__()
        self.engines = engines
        self.ENGINES = tuple(engines)
        self.oracle = engines.get("oracle")
        self.orchestrator = engines.get("orchestrator")  # type: ignore[assignment]  # None: no feed table, so no triage
        self.executor = engines.get("executor")
        self.window = FeedWindow(self.orchestrator.query.feed) if self.orchestrator is not None else None

    @property
    def table(self) -> FeedTable:
        return self.query_one(FeedTable)

    def compose(self) -> ComposeResult:
        yield ViewBar("demo", "oracle → orchestrator → executor")
        if self.oracle is not None:
            yield StatusLine(id="demo-oracle-status", classes="demo-status status-lines")
        if self.window is not None:
            yield StatusLine(id="demo-feed-status", classes="demo-status status-lines")
            yield ReceiverBanner(self.orchestrator, id="demo-receiver-banner")
            with Horizontal(id="demo-main"):
                yield FeedTable(self.window, id="demo-feed")
                yield EventDetail(id="demo-detail")
        with Horizontal(id="demo-bottom"):
            if self.oracle is not None:
                with Vertical(id="demo-send-box"):
                    yield Label("Oracle send log", classes="panel-title")
                    yield TextLog(id="demo-send-log", max_lines=200)
            if self.executor is not None:
                with Vertical(id="demo-exec-box"):
                    yield Label("Executor decisions", id="demo-exec-title",
                                classes="panel-title")
                    yield DataTable(id="demo-decisions", cursor_type="none", show_cursor=False)
        yield KeyHints()

    def on_mount(self) -> None:
        if self.executor is not None:
            self.query_one("#demo-exec-title", Label).update(
                Text("Executor decisions" + (" — DRY-RUN" if self.executor.firewall.dry_run else ""),
                     style="bold"))
            self.query_one("#demo-decisions", DataTable).add_columns(*NARROW_DECISION_COLUMNS)
            self._show_decisions()
        if self.oracle is not None:
            for update in self.pilot_app.history("oracle"):
                self._apply_oracle(update)
        if self.window is not None:
            self.table.reload(reset=True)
            self.table.focus()
        self._show_status()
        self.set_interval(1.0, self._show_status)

    # -- updates ---------------------------------------------------------------------------------------------

    def on_engine_updates(self, message: EngineUpdates) -> None:
        if message.engine == "orchestrator" and self.window is not None:
            changed = bool(TRIAGE_KINDS & message.kinds)
            if message.new_events or changed or u.EventsStored in message.kinds:
                added = self.window.refresh()
                self.table.reload(added_on_top=added)
                if changed and self.query_one(EventDetail).display:
                    self.query_one(EventDetail).show(self.table.current)
        elif message.engine == "oracle":
            for update in message.updates:
                self._apply_oracle(update)
        elif message.engine == "executor":
            self._show_decisions()
        self._show_status()

    def _apply_oracle(self, update: object) -> None:
        if isinstance(update, u.SendResult):
            self.query_one("#demo-send-log", TextLog).add(send_result_text(update))

    def _show_status(self) -> None:
        if self.oracle is not None:
            self.query_one("#demo-oracle-status", StatusLine).update(oracle_status_text(
                sensor=self.oracle.config.sensor, status=self.oracle.query.send_status(now=self.clock()),
                lines_read=self.oracle.lines_read, detections=self.oracle.detections))
        if self.window is not None and self.orchestrator is not None:
            self.query_one("#demo-feed-status", StatusLine).update(status_text(
                receivers=self.orchestrator.receivers, total=self.window.total, shown=self.window.total,
                quarantined=self.orchestrator.query.quarantine_count(),
                exec_node=self.orchestrator.config.exec_node, flt=ViewFilter(), now=self.clock()))

    def _show_decisions(self) -> None:
        if self.executor is None:
            return
        table = self.query_one("#demo-decisions", DataTable)
        table.clear()
        names = self.executor.peer_names()
        for row in self.executor.query.history(DECISIONS_SHOWN):
            table.add_row(*decision_row(row, names, narrow=True))  # a narrow box at any width

    # -- keys ------------------------------------------------------------------------------------------------

    def on_feed_cursor_moved(self, message: FeedCursorMoved) -> None:
        detail = self.query_one(EventDetail)
        if detail.display:
            detail.show(message.stored)

    def on_feed_row_chosen(self, message: FeedRowChosen) -> None:
        detail = self.query_one(EventDetail)
        detail.display = not detail.display
        self.set_class(detail.display, "-detail-open")
        if detail.display:
            detail.show(message.stored)

    def action_close_detail(self) -> None:
        if self.window is not None and self.query_one(EventDetail).display:
            self.on_feed_row_chosen(FeedRowChosen(self.table.current))  # type: ignore[arg-type]  # closing: not read

    def action_toggle_pause(self) -> None:
        if self.oracle is None:
            return
        self.oracle.set_paused(not self.oracle.query.paused)
        self._show_status()

    def action_blocks(self) -> None:
        """The executor's blocks, with unblock and extend (see :mod:`.blocks`)."""
        if self.executor is None:
            return
        from .blocks import BlocksScreen

        self.app.push_screen(BlocksScreen(self.executor, view_name="demo"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys whose engine is not part of this demo."""
        if action == "blocks" and self.executor is None:
            return False
        if action in ("acknowledge", "mitigate", "false_positive") and self.window is None:
            return False
        if action == "toggle_pause" and self.oracle is None:
            return False
        return True
