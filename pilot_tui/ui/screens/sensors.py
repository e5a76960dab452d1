"""Sensors and trust: who sends us events, and which new nodes ask to — letting one in is the analyst's decision.

The sensors table comes from the store (address each sensor is bound to, last seen, events, ``missing`` sequence
numbers, address mismatches). Pending handshake requests come from ``engine.pending_handshakes()`` (pilotctl) in a
worker; approve and reject go through the engine after a confirmation, also in workers.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorEngine

from ..format import fmt_age, fmt_when, safe, safe_text, truncate
from ..messages import EngineUpdates
from ..tones import BAD, BAD_SOFT, WARN, WARN_SOFT
from ..widgets.key_hints import KeyHints
from ..widgets.list_table import ListTable
from ..widgets.orchestrator_panels import receiver_lines
from ..widgets.status_line import StatusLine
from ..widgets.view_bar import ViewBar
from .base import SecondaryScreen
from .dialogs import ConfirmDialog

PENDING_EVERY_S = 15.0
"""Pending handshakes are polled this often while the screen is shown (each poll runs pilotctl)."""

SENSORS_EVERY_S = 3.0
"""Sensor rows are re-read at most this often while events arrive."""

MAX_PENDING_ROWS = 100


class SensorsScreen(SecondaryScreen):
    """Known sensors and pending trust requests."""

    CSS_PATH = "secondary.tcss"
    HELP_SECTION = "Sensors & trust"
    ENGINES = ("orchestrator",)
    BINDINGS = [
        Binding("escape", "close", "Back", id="back"),
        Binding("a", "approve", "Approve", id="approve"),
        Binding("x", "reject", "Reject", id="reject"),
        Binding("r", "refresh", "Refresh", id="refresh"),
    ]

    def __init__(self, engine: OrchestratorEngine) -> None:
        super().__init__()
        self.engine = engine
        self.pending: list[dict[str, Any]] = []
        self.pending_error: str | None = None

    def compose(self) -> ComposeResult:
        yield ViewBar("feed", "sensors & trust")
        yield Label("Receivers", classes="panel-title section")
        yield StatusLine(id="receivers")
        yield Label("Sensors", classes="panel-title section")
        yield DataTable(id="sensors", cursor_type="none", show_cursor=False, zebra_stripes=True)
        yield Label("Pending handshake requests — new nodes asking to be trusted", classes="panel-title section")
        yield Static(id="pending-status", classes="summary", markup=False)
        yield ListTable(id="pending")
        yield KeyHints()

    def on_mount(self) -> None:
        sensors = self.query_one("#sensors", DataTable)
        sensors.can_focus = False
        sensors.add_columns("SENSOR", "PILOT ADDRESS", "LAST SEEN", "EVENTS", "MAX SEQ", "MISSING", "MISMATCH")
        pending = self.query_one("#pending", DataTable)
        pending.add_columns("NODE", "ASKED", "JUSTIFICATION")
        self._sensors_dirty = True
        self._reload_sensors()
        self.show_receivers()
        self.show_pending()
        self.action_refresh()
        self.set_interval(PENDING_EVERY_S, self.action_refresh)
        self.set_interval(SENSORS_EVERY_S, self._reload_sensors)
        pending.focus()

    def on_engine_updates(self, message: EngineUpdates) -> None:
        if message.new_events or u.SensorAlert in message.kinds:
            self._sensors_dirty = True
        self.show_receivers()

    def show_receivers(self) -> None:
        """Which receivers run (SDK stream server, recv fallback, inbox), restarts and last message age."""
        self.query_one("#receivers", StatusLine).show(receiver_lines(self.engine.receivers, self.clock()))

    _sensors_dirty = False

    def _reload_sensors(self) -> None:
        """While shown, sensor rows are re-read at most every few seconds, in a worker thread."""
        if self._sensors_dirty:
            self._sensors_dirty = False
            self._load_sensors()

    @work(name="sensors", group="sensors", exclusive=True, exit_on_error=False)
    async def _load_sensors(self) -> None:
        reader = getattr(self.app, "reader", None)
        self.show_sensors(await reader.sensors() if reader is not None else self.engine.query.feed.sensors())

    def show_sensors(self, rows: list[dict[str, Any]] | None = None) -> None:
        """Fill the sensors table (from ``rows``, or read now)."""
        table = self.query_one("#sensors", DataTable)
        table.clear()
        now = self.clock()
        for s in (self.engine.query.feed.sensors() if rows is None else rows)[:500]:
            missing = int(s.get("missing") or 0)
            mism = int(s.get("mismatches") or 0)
            table.add_row(
                Text(safe(s["sensor"]), style="bold"),
                safe_text(s["address"] or "—"),
                fmt_age(now - s["last_seen"]) + " ago",
                f"{s['events']:,}",
                "—" if s["max_seq"] is None else str(s["max_seq"]),
                Text(str(missing), style=WARN if missing else "dim"),
                Text(str(mism), style=BAD if mism else "dim"),
            )

    def show_pending(self) -> None:
        """Fill the pending requests, keeping the selected node selected (``a`` must approve the node shown)."""
        table = self.query_one("#pending", DataTable)
        held = None
        if table.row_count and 0 <= table.cursor_row < table.row_count:
            held = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        for p in self.pending[:MAX_PENDING_ROWS]:
            asked = p.get("received_at")
            table.add_row(
                Text(safe(p.get("node_id")), style="bold"),
                fmt_when(float(asked), self.clock()) if isinstance(asked, (int, float)) else "—",
                Text(truncate(safe(p.get("justification") or ""), 80)),
                key=str(p.get("node_id")),
            )
        keys = [str(p.get("node_id")) for p in self.pending[:MAX_PENDING_ROWS]]
        if held in keys:
            table.move_cursor(row=keys.index(held), animate=False)
        status = self.query_one("#pending-status", Static)
        if self.pending_error:
            status.update(Text(f"could not list pending requests: {self.pending_error}", style=BAD_SOFT))
        elif not self.pending:
            status.update(Text("No node is waiting for approval.", style="dim"))
        else:
            status.update(Text(f"{len(self.pending)} waiting — a: approve (trust it), x: reject", style=WARN_SOFT))

    # -- intents -------------------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Ask the engine (pilotctl) for pending handshakes, in an exclusive worker."""
        self.run_worker(self._load_pending(), name="pending handshakes", group="pending", exclusive=True,
                        exit_on_error=False)

    async def _load_pending(self) -> None:
        try:
            self.pending = list(await self.engine.pending_handshakes())
            self.pending_error = None
        except Exception as exc:  # shown in the panel, and the app's worker handler notifies
            self.pending_error = str(exc)[:200]
            self.show_pending()
            raise
        self.show_pending()

    def _selected(self) -> dict[str, Any] | None:
        table = self.query_one("#pending", DataTable)
        if not self.pending or table.cursor_row < 0 or table.cursor_row >= len(self.pending):
            self.notify("No pending request selected.", severity="warning", timeout=3)
            return None
        return self.pending[table.cursor_row]

    def action_approve(self) -> None:
        self._decide(True)

    def action_reject(self) -> None:
        self._decide(False)

    def _decide(self, approve: bool) -> None:
        request = self._selected()
        if request is None:
            return
        try:
            node_id = int(request.get("node_id"))  # type: ignore[arg-type]  # None: TypeError, caught below
        except (TypeError, ValueError):
            self.notify("This request has no usable node id.", severity="error")
            return
        body = Text(end="")
        body.append(f"Node {node_id}", style="bold")
        body.append(" says: ")
        body.append_text(safe_text(request.get("justification") or "(no justification)", style="italic"))
        body.append("\n\n")
        # pilotctl 1.18 lists an approved node as "mutual: false" on the approving side; that is full trust
        body.append("Approving trusts it both ways: it can then send events to this orchestrator (pilotctl trust "
                    "lists it here as mutual: false — normal on the approving side)."
                    if approve else "Rejecting drops its request; it may ask again.")
        verb = "approve" if approve else "reject"

        async def work() -> None:
            await (self.engine.approve(node_id) if approve else self.engine.reject(node_id))
            await self._load_pending()

        def done(yes: bool | None) -> None:
            if yes:
                self.run_intent(f"{verb} node {node_id}", work())

        title = "Trust this node?" if approve else "Reject this node?"
        self.app.push_screen(ConfirmDialog(title, body, confirm_label=verb.capitalize()), done)

    def action_close(self) -> None:
        self.dismiss(None)
