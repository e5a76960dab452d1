"""The executor's blocks: every address it blocks now, and the operator's two actions on one — lift it, extend it.

What ``cscli decisions list/delete`` or ``fail2ban-client status/unban`` give at a shell, one key away from the
executor view. The operator at the executor's own console is trusted (they could run the firewall command
themselves), so the actions go straight to the engine (:meth:`~pilot_tui.engines.executor.ExecutorEngine.lift_block`
/ ``extend_block``) after a confirmation naming the address — the same firewall and store path a request takes.

Rows are re-read from the store when the engine reports anything and once a second (countdowns); the cursor stays on
the address it was on, whatever else comes or goes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.widgets import DataTable

from pilot_tui.store.db import StoreFault

from ..messages import EngineUpdates
from ..widgets.executor_panels import BLOCK_COLUMNS, blocks_summary, blocks_view_row, peer_label
from ..widgets.key_hints import KeyHints
from ..widgets.status_line import StatusLine
from ..widgets.view_bar import ViewBar
from .base import SecondaryScreen
from .dialogs import ConfirmDialog, DurationDialog

EXTEND_DEFAULT = "1h"
"""What the extend dialog offers first."""


class BlocksScreen(SecondaryScreen):
    """Active blocks of one executor engine, with unblock (``u``) and extend (``e``)."""

    CSS_PATH = "executor.tcss"
    ENGINES = ("executor",)
    HELP_SECTION = "Blocks"
    BINDINGS = [
        Binding("u", "unblock", "Unblock", id="unblock"),
        Binding("e", "extend", "Extend", id="extend"),
        Binding("j", "move(1)", "Down", show=False, id="cursor-down"),
        Binding("k", "move(-1)", "Up", show=False, id="cursor-up"),
        Binding("r", "reload", "Refresh", show=False, id="refresh"),
        Binding("escape", "close", "Back", id="back"),
    ]

    def __init__(self, engine: Any, *, view_name: str = "executor") -> None:
        super().__init__()
        self.engine = engine
        self._bar_view = view_name  # not "view_name": that would register this pushed screen as the view itself
        self.blocks: list[Any] = []
        self._key: list[tuple[str, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield ViewBar(self._bar_view, "blocks — u unblock · e extend · esc back")
        yield StatusLine(id="blocks-summary", classes="status-lines")
        yield DataTable(id="blocks-list", cursor_type="row", zebra_stripes=True)
        yield KeyHints()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.add_columns(*BLOCK_COLUMNS)
        self.action_reload()
        self.set_interval(1.0, self.action_reload)
        table.focus()

    def on_engine_updates(self, message: EngineUpdates) -> None:
        self.action_reload()

    @property
    def selected(self) -> Any | None:
        """The block under the cursor (``None`` when there is none)."""
        row = self.query_one(DataTable).cursor_row
        return self.blocks[row] if 0 <= row < len(self.blocks) else None

    def action_reload(self) -> None:
        """Re-read the blocks; rebuild the table only when a cell changed, keeping the cursor on its address."""
        now = self.clock()
        blocks = self.engine.query.active_blocks()
        names = self.engine.peer_names()
        rows = [blocks_view_row(b, self.engine.block_state(b), names.get(b.sender), now) for b in blocks]
        self.query_one("#blocks-summary", StatusLine).show(blocks_summary(
            blocks, self.engine.firewall.name, bool(getattr(self.engine.firewall, "dry_run", False))))
        key = [tuple(str(cell) for cell in row) for row in rows]
        if key == self._key:
            return
        self._key = key
        table = self.query_one(DataTable)
        current = self.selected.ip if self.selected is not None else None
        table.clear()
        self.blocks = blocks
        for row in rows:
            table.add_row(*row)
        if not blocks:
            table.add_row(Text("no active blocks", style="dim"), *[""] * (len(BLOCK_COLUMNS) - 1))
            return
        ips = [b.ip for b in blocks]
        if current in ips:
            table.move_cursor(row=ips.index(current), animate=False)

    def action_move(self, step: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, table.cursor_row + step), animate=False)

    def action_close(self) -> None:
        self.dismiss()

    # -- the two actions ---------------------------------------------------------------------------------------

    def action_unblock(self) -> None:
        block = self.selected
        if block is None:
            self.notify("No block selected.", severity="warning", timeout=3)
            return
        asked = peer_label(block.sender, self.engine.peer_names().get(block.sender))
        body = Text.assemble(
            "Lift the block of ", (block.ip, "bold"), " now?\n\n",
            f"Asked by {asked}; backend {block.backend}. The firewall rule is removed and the node that asked "
            "is told the block ended.")
        ip = block.ip

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_intent("unblock", self._lift(ip))

        self.app.push_screen(ConfirmDialog(f"Unblock {ip}", body, confirm_label="Unblock"), answered)

    async def _lift(self, ip: str) -> None:
        try:
            result = await self.engine.lift_block(ip)
        except StoreFault as fault:
            self.notify(f"{ip}: the firewall acted, but the state file is failing ({fault}); it is recorded once the "
                        "file takes writes again", severity="error", markup=False)
        except ValueError as exc:
            self.notify(str(exc), severity="warning", markup=False)
        else:
            if result.status == "failed":
                self.notify(f"{ip}: unblock failed — {result.detail}", severity="error", markup=False)
            else:
                self.notify(f"{ip}: block lifted", markup=False)
        self.action_reload()

    def action_extend(self) -> None:
        block = self.selected
        if block is None:
            self.notify("No block selected.", severity="warning", timeout=3)
            return
        ip = block.ip
        body = Text.assemble("Keep ", (ip, "bold"), " blocked for longer. Added to its current expiry; at most "
                             f"{self.engine.max_duration_s}s from now.")

        def answered(seconds: int | None) -> None:
            if seconds:
                self.run_intent("extend", self._extend(ip, seconds))

        self.app.push_screen(DurationDialog(f"Extend the block of {ip}", body, EXTEND_DEFAULT), answered)

    async def _extend(self, ip: str, seconds: int) -> None:
        try:
            result = await self.engine.extend_block(ip, seconds)
        except StoreFault as fault:
            self.notify(f"{ip}: the firewall acted, but the state file is failing ({fault}); it is recorded once the "
                        "file takes writes again", severity="error", markup=False)
        except ValueError as exc:
            self.notify(str(exc), severity="warning", markup=False)
        else:
            severity: SeverityLevel = "error" if result.status == "failed" else "information"
            self.notify(f"{ip}: {result.detail}", severity=severity, markup=False)  # "expiry extended to …", once
        self.action_reload()
