"""The detail pane: every field of one event, its triage and mitigation, and its evidence lines — literally.

Evidence is attacker-written text. Each line becomes its own ``rich.text.Text`` after
:func:`~pilot_tui.model.printable`; nothing here is ever parsed as markup, so ``[bold]`` shows as typed and an
escape sequence shows as ``\\x1b``.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from pilot_tui.model import ThreatEvent
from pilot_tui.store.events import StoredEvent

from ..format import fmt_iso, safe, safe_text, severity_name, state_label
from ..tones import SEVERITY


def _grid() -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


def detail_renderable(stored: StoredEvent | ThreatEvent, extra: list[tuple[str, Text]] | None = None
                      ) -> RenderableType:
    """All fields of an event (with the orchestrator's bookkeeping when ``stored`` is a :class:`StoredEvent`) as
    a Rich renderable made only of ``Text`` objects — no markup anywhere. ``extra`` rows are appended."""
    event = stored.event if isinstance(stored, StoredEvent) else stored
    grid = _grid()
    sev = severity_name(event.severity_rank)
    rows: list[tuple[str, Text]] = [
        ("severity", Text(sev, style=SEVERITY[event.severity_rank])),
        ("anomaly", safe_text(event.anomaly)),
        ("source ip", safe_text(event.source_ip)),
        ("count", safe_text(event.count if event.count is not None else "—")),
        ("window", safe_text(f"{event.window_s:g}s" if event.window_s is not None else "—")),
        ("sensor", safe_text(event.sensor or "—")),
        ("seq", safe_text(event.seq if event.seq is not None else "—")),
        ("rule", safe_text(event.rule or "—")),
        ("user", safe_text(event.user or "—")),
        ("log", safe_text(event.log or "—")),
        ("event time", safe_text(event.ts or "—")),  # the sensor's clock; "received" below is ours
        ("id", safe_text(event.id)),
        ("schema", safe_text(event.schema)),
    ]
    if isinstance(stored, StoredEvent):
        rows += _bookkeeping(stored)
    rows += extra or []
    for name, value in rows:
        grid.add_row(name, value)
    parts: list[RenderableType] = [grid, Text("")]
    parts.append(Text(f"evidence ({len(event.evidence)} line{'s' if len(event.evidence) != 1 else ''})",
                      style="bold underline"))
    for line in event.evidence:
        parts.append(safe_text(line))
    if not event.evidence:
        parts.append(Text("none sent", style="dim italic"))
    return Group(*parts)


def _bookkeeping(stored: StoredEvent) -> list[tuple[str, Text]]:
    """The orchestrator's rows: when and from where it arrived, triage, mitigation, flags."""
    rows = [
        ("received", safe_text(fmt_iso(stored.received_at))),
        ("from", safe_text(f"{stored.sender or '—'} via {stored.transport or '—'}")),
    ]
    label, _kind = state_label(stored.state, stored.mitigation)
    triage = f"{stored.state} ({label})" if label != stored.state else stored.state
    if stored.state_by:
        triage += f" by {stored.state_by} at {fmt_iso(stored.state_at)}"
    rows.append(("state", safe_text(triage)))
    if stored.note:
        rows.append(("note", safe_text(stored.note)))
    if stored.mitigation:
        m = stored.mitigation
        rows.append(("mitigation", safe_text(f"{m.get('status', '?')}: {m.get('detail', '')}")))
    if stored.flags:
        rows.append(("flags", safe_text(stored.flags, style="bold")))
    return rows


class EventDetail(VerticalScroll):
    """Scrollable pane showing one event (or a hint when none is selected)."""

    def compose(self) -> ComposeResult:
        yield Static(Text("Select an event and press Enter.", style="dim italic"), id="detail-body", markup=False)

    def show(self, stored: StoredEvent | None) -> None:
        """Display ``stored`` (``None``: the empty hint)."""
        body = self.query_one("#detail-body", Static)
        if stored is None:
            body.update(Text("No event selected.", style="dim italic"))
        else:
            body.update(detail_renderable(stored))
            self.scroll_home(animate=False)
        self.border_title = Text(f"Event {safe(stored.event.id)[:24]}" if stored is not None else "Event")
