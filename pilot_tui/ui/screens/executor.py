"""The executor's view: requests received and how each was judged, active blocks with their expiry, dry-run banner.

Everything shown comes from the engine's state (``state()``, ``firewall``) and its block store (``active_blocks()``,
``history()``), re-read when the engine reports anything (coalesced to the app's tick) and once a second for the
expiry countdown.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label

from ..messages import EngineUpdates
from ..widgets.executor_panels import (
    DECISION_COLUMNS,
    NARROW_DECISION_COLUMNS,
    banner_text,
    block_row,
    decision_detail,
    decision_row,
    executor_status_text,
)
from ..widgets.key_hints import KeyHints
from ..widgets.status_line import StatusLine
from ..widgets.view_bar import ViewBar
from .base import EngineScreen
from .detail import EventDetailScreen

HISTORY_ROWS = 200
"""Decisions listed (newest first)."""

def decision_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one decision from another in the history (it has no id of its own in the rows listed)."""
    return (row.get("at"), row.get("kind"), row.get("message_id"), row.get("request_id"), row.get("ip"))


NARROW_BELOW = 120
"""Terminal width under which the decisions drop their FROM column (the app's ``-narrow`` breakpoint)."""


class ExecutorScreen(EngineScreen):
    """View of one executor engine."""

    CSS_PATH = "executor.tcss"
    ENGINES = ("executor",)
    HELP_SECTION = "Executor"
    BINDINGS = [
        Binding("enter", "decision_detail", "Decision detail", id="detail"),
        Binding("b", "blocks", "Blocks", id="blocks"),
        Binding("r", "reload", "Refresh", id="refresh"),
    ]

    def __init__(self, engine: Any, *, view_name: str = "executor") -> None:
        super().__init__()
        self.engine = engine
        self.view_name = view_name
        self.decisions: list[dict[str, Any]] = []
        self._blocks: list[Any] = []
        self._blocks_key: list[tuple[str, ...]] | None = None
        self._status_lines = 2
        self._narrow: bool | None = None
        """Whether the decisions show their narrow column set (see ``NARROW_DECISION_COLUMNS``); ``None`` before the
        first fill."""

    def compose(self) -> ComposeResult:
        yield ViewBar(self.view_name, "executor")
        yield StatusLine(id="exec-banner", classes="status-lines")
        yield StatusLine(id="exec-status", classes="status-lines")
        with Horizontal(id="exec-main"):
            with Vertical(id="exec-blocks-box"):
                yield StatusLine(id="blocks-title", classes="panel-title")
                yield DataTable(id="blocks", cursor_type="none", show_cursor=False, zebra_stripes=True)
            with Vertical(id="exec-decisions-box"):
                yield Label("Requests and decisions (newest first) — Enter for detail", classes="panel-title")
                yield DataTable(id="decisions", cursor_type="row", zebra_stripes=True)
        yield KeyHints()

    def on_mount(self) -> None:
        self.query_one("#blocks", DataTable).add_columns("IP", "EXPIRES IN", "ASKED BY", "REASON")
        banner = self.query_one("#exec-banner", StatusLine)
        dry = bool(getattr(self.engine.firewall, "dry_run", False))
        banner.display = dry
        banner.update(banner_text(dry))
        self.action_reload()
        self.set_interval(1.0, self._show_blocks)
        self.query_one("#decisions", DataTable).focus()

    def on_engine_updates(self, message: EngineUpdates) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._show_status()
        self._show_blocks()
        self._show_decisions()

    def _show_status(self) -> None:
        """The status lines; the box grows by a line per ``--obey`` pin conflict so that warning is never cut off."""
        text = executor_status_text(self.engine.state(), self.clock())
        status = self.query_one("#exec-status", StatusLine)
        lines = max(2, text.plain.count("\n") + 1)
        if lines != self._status_lines:
            self._status_lines = lines
            status.styles.height = lines
        status.update(text)

    def _show_blocks(self) -> None:
        """Active blocks with their countdown (re-read every second; the table is rebuilt only on change)."""
        now = self.clock()
        names = self.engine.peer_names()
        self._blocks = self.engine.query.active_blocks()[:HISTORY_ROWS]
        rows = [block_row(block, now, names.get(block.sender)) for block in self._blocks]
        key = [tuple(str(cell) for cell in row) for row in rows]
        if key == self._blocks_key:
            return
        self._blocks_key = key
        table = self.query_one("#blocks", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row)
        self.query_one("#blocks-title", StatusLine).show(Text(f"Active blocks ({len(self._blocks)}) — b to unblock"
                                                              f"/extend"))
        if not self._blocks:
            table.add_row(Text("none", style="dim"), "", "", "")

    def on_resize(self) -> None:
        if (self.app.size.width < NARROW_BELOW) != self._narrow:
            self._show_decisions()

    def _show_decisions(self) -> None:
        table = self.query_one("#decisions", DataTable)
        narrow = self.app.size.width < NARROW_BELOW
        if narrow != self._narrow:  # the column set follows the width (see NARROW_DECISION_COLUMNS)
            self._narrow = narrow
            table.clear(columns=True)
            table.add_columns(*(NARROW_DECISION_COLUMNS if narrow else DECISION_COLUMNS))
        cursor = table.cursor_row
        chosen = decision_key(self.decisions[cursor]) if 0 < cursor < len(self.decisions) else None
        table.clear()
        self.decisions = self.engine.query.history(HISTORY_ROWS)
        names = self.engine.peer_names()
        for row in self.decisions:
            table.add_row(*decision_row(row, names, narrow=narrow))
        if chosen is not None:  # the cursor stays on the decision chosen, not on its row number, as new ones arrive
            keys = [decision_key(row) for row in self.decisions]
            table.move_cursor(row=keys.index(chosen) if chosen in keys else min(cursor, len(keys) - 1),
                              animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_decision_detail()

    def action_decision_detail(self) -> None:
        table = self.query_one("#decisions", DataTable)
        if not 0 <= table.cursor_row < len(self.decisions):
            self.notify("No decision selected.", severity="warning", timeout=3)
            return
        row = self.decisions[table.cursor_row]
        self.app.push_screen(EventDetailScreen("Decision", decision_detail(row, self.engine.peer_names())))

    def action_blocks(self) -> None:
        """The blocks view: every active block, with unblock and extend."""
        from .blocks import BlocksScreen

        self.app.push_screen(BlocksScreen(self.engine, view_name=self.view_name))

