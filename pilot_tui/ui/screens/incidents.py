"""Incidents: one row per source IP across sensors and anomalies (``feed.incidents``), at most 200.

Enter returns the IP to the feed, which then shows only that attacker's events; ``m`` asks to block it; ``a`` and
``f`` acknowledge or dismiss every new event of that IP at once (with one note), so a noisy attacker is one decision.
"""

from __future__ import annotations

import orjson
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.store.feed import FeedFilter, Incident

from ..bridge import TRIAGE_KINDS
from ..format import fmt_when, safe, severity_name, state_label, truncate
from ..messages import EngineUpdates
from ..tones import SEVERITY, WARN
from ..widgets.key_hints import KeyHints
from ..widgets.list_table import ListTable
from ..widgets.view_bar import ViewBar
from .base import SecondaryScreen
from .dialogs import NoteDialog

INCIDENT_LIMIT = 200

RELOAD_EVERY_S = 2.0
"""While shown, the list is rebuilt at most this often when events arrive."""



class IncidentsScreen(SecondaryScreen):
    """Attackers, most recently active first."""

    CSS_PATH = "secondary.tcss"
    HELP_SECTION = "Incidents"
    ENGINES = ("orchestrator",)
    BINDINGS = [
        Binding("escape", "close", "Back", id="back"),
        Binding("enter", "choose", "Show events", id="detail"),
        Binding("a", "triage('acknowledged')", "Ack all", id="acknowledge"),
        Binding("f", "triage('false_positive')", "False pos. all", id="false-positive"),
        Binding("m", "mitigate", "Mitigate", id="mitigate"),
        Binding("r", "reload", "Refresh", id="refresh"),
    ]

    def __init__(self, engine: OrchestratorEngine) -> None:
        super().__init__()
        self.engine = engine
        self._ips: list[str] = []

    def compose(self) -> ComposeResult:
        yield ViewBar("feed", "incidents — one row per source IP")
        yield Static(id="incidents-summary", classes="summary", markup=False)
        yield ListTable(id="incidents", zebra_stripes=True)
        yield KeyHints()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # what must never be cut first (address, severity, counts, state); received time, like the feed's
        table.add_columns("SOURCE IP", "MAX SEV", "EVENTS", "OPEN", "STATE", "LAST RECEIVED", "SENSORS", "HITS",
                          "ANOMALIES", "SEEN BY")
        self.query_one("#incidents-summary", Static).update(Text("loading…", style="dim italic"))
        self._dirty = True
        self._reload_if_changed()
        self.set_interval(RELOAD_EVERY_S, self._reload_if_changed)
        table.focus()

    def on_engine_updates(self, message: EngineUpdates) -> None:
        if message.new_events or TRIAGE_KINDS & message.kinds:
            self._dirty = True

    _dirty = False

    def _reload_if_changed(self) -> None:
        """While shown, new events re-read the incidents in a worker thread (the query groups every event)."""
        if self._dirty:
            self._dirty = False
            self._load()

    @work(name="incidents", group="incidents", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        reader = getattr(self.app, "reader", None)
        if reader is None:
            self.show(self.engine.query.feed.incidents(INCIDENT_LIMIT))
        else:
            self.show(await reader.run(lambda query: query.incidents(INCIDENT_LIMIT)))

    def action_reload(self) -> None:
        """Re-read the incidents now (``r``), in the worker thread like every other reload: grouping 50k+ events
        takes tens of milliseconds."""
        self._dirty = True
        self._reload_if_changed()

    def show(self, rows: list[Incident]) -> None:
        """Fill the table with ``rows``, keeping the selected *address* selected (incidents reorder as attackers
        become active: a row number would point ``m`` at another attacker)."""
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        held = self._current_ip()
        table.clear()
        self._ips = [inc.source_ip for inc in rows]
        for inc in rows:
            mitigation = _mitigation(inc.mitigation)
            label, _ = state_label("new" if inc.open_events else "acknowledged", mitigation)
            table.add_row(
                Text(safe(inc.source_ip), style="bold"),
                Text(severity_name(inc.max_severity), style=SEVERITY[max(0, min(4, inc.max_severity))]),
                f"{inc.events:,}",
                f"{inc.open_events:,}",
                label,
                fmt_when(inc.last_seen, self.clock()),
                Text(str(len(inc.sensors)), style=WARN if len(inc.sensors) > 1 else ""),
                f"{inc.total_count:,}",
                Text(truncate(safe(", ".join(inc.anomalies)), 40)),
                Text(truncate(safe(", ".join(inc.sensors)), 48)),
                key=inc.source_ip,
            )
        if rows:
            row = self._ips.index(held) if held in self._ips else min(cursor, len(rows) - 1)
            table.move_cursor(row=row, animate=False)
        total = sum(i.events for i in rows)
        multi = sum(1 for i in rows if len(i.sensors) > 1)
        self.query_one("#incidents-summary", Static).update(Text(
            f"{len(rows)} source IPs · {total:,} events · {multi} seen by more than one sensor"
            + (f" · first {INCIDENT_LIMIT} shown" if len(rows) >= INCIDENT_LIMIT else "")))

    def _current_ip(self) -> str | None:
        table = self.query_one(DataTable)
        if not self._ips or table.cursor_row < 0 or table.row_count == 0:
            return None
        return self._ips[min(table.cursor_row, len(self._ips) - 1)]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    def action_choose(self) -> None:
        self.dismiss(self._current_ip())

    def action_close(self) -> None:
        self.dismiss(None)

    def action_triage(self, state: str) -> None:
        """Ask for a note, then move every new event of the IP under the cursor to ``state`` (in a worker)."""
        ip = self._current_ip()
        if ip is None:
            return
        pending = len(self.engine.query.open_ids_from(ip))
        if not pending:
            self.notify(f"{safe(ip)} has no new events to triage.", severity="warning", timeout=3)
            return
        verb = "Acknowledge" if state == "acknowledged" else "Mark as false positive"
        body = Text(no_wrap=False, end="")
        body.append(safe(ip), style="bold")
        body.append(f"\n{pending:,} new event{'s' if pending != 1 else ''}; events already handled or being "
                    "mitigated keep their state.")

        def done(note: str | None) -> None:
            if note is None:
                return

            async def work() -> None:
                changed = self.engine.triage_source(ip, state, note or None)
                done_verb = "acknowledged" if state == "acknowledged" else "marked false positive"
                self.notify(f"{changed:,} events from {safe(ip)} {done_verb}.", timeout=4)

            self.run_intent(verb.lower(), work())

        self.app.push_screen(NoteDialog(f"{verb} all new events of this IP", body), done)

    def action_mitigate(self) -> None:
        ip = self._current_ip()
        if ip is None:
            return
        latest = self.engine.query.feed.window(FeedFilter(source_ip=ip), 0, 1)
        if not latest:
            return
        from .feed import FeedScreen

        feed_screen = next((s for s in self.app.screen_stack if isinstance(s, FeedScreen)), None)
        if feed_screen is not None:
            feed_screen.ask_mitigate(latest[0])


def _mitigation(raw: str | None) -> dict[str, object] | None:
    """The stored mitigation outcome (JSON) of an incident's events, or ``None``."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
