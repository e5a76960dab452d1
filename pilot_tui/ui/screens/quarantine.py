"""Quarantine: payloads the orchestrator refused (bad JSON, unknown severity, oversize…), newest first.

One row per payload, however many of its lines were refused (``LINES``); the sample pane lists the first refused
lines with their reasons. The store keeps a bounded number of rows and counts the oldest it dropped.

The raw bytes are attacker-controlled: they are decoded with replacement characters, passed through
:func:`~pilot_tui.model.printable` and shown as ``Text`` — never as markup, never as escape sequences.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from pilot_tui.engines.orchestrator import OrchestratorEngine

from ..format import fmt_bytes, fmt_iso, safe, safe_text, truncate
from ..tones import WARN_SOFT
from ..widgets.key_hints import KeyHints
from ..widgets.list_table import ListTable
from ..widgets.view_bar import ViewBar
from .base import SecondaryScreen

PAGE = 200
"""Quarantined payloads listed (newest first)."""

SAMPLE_CHARS = 2000
"""Characters of one raw payload shown in the sample pane."""


def raw_preview(raw: bytes | str, limit: int = SAMPLE_CHARS) -> str:
    """A stored payload as safe text: UTF-8 with replacement, control characters made visible, capped."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray, memoryview)) else str(raw)
    text = safe(text[:limit])
    return text + ("…" if len(raw) > limit else "")


class QuarantineScreen(SecondaryScreen):
    """List of quarantined payloads with a sample of the highlighted one."""

    CSS_PATH = "secondary.tcss"
    HELP_SECTION = "Quarantine"
    BINDINGS = [Binding("escape", "close", "Back", id="back"), Binding("r", "reload", "Refresh", id="refresh")]

    def __init__(self, engine: OrchestratorEngine) -> None:
        super().__init__()
        self.engine = engine
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield ViewBar("feed", "quarantine — refused payloads")
        yield Static(id="quarantine-summary", classes="summary", markup=False)
        yield ListTable(id="quarantine", zebra_stripes=True)
        with VerticalScroll(id="quarantine-sample"):
            yield Static(id="sample", markup=False)
        yield KeyHints()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("RECEIVED", "REASON", "LINES", "DETAIL", "SIZE", "FROM", "VIA")
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        reads = self.engine.query
        by_reason = reads.quarantine_by_reason()
        stats = reads.quarantine_stats()
        summary = Text(f"{stats['rows']:,} quarantined", style="bold")
        if stats["lines"] != stats["rows"]:
            summary.append(f" ({stats['lines']:,} lines)")
        if by_reason:
            summary.append(" · " + ", ".join(f"{safe(r)} {n:,}" for r, n in sorted(by_reason.items())))
        if stats["dropped"]:
            summary.append(f" · {stats['dropped']:,} oldest dropped ({stats['dropped_lines']:,} lines)",
                           style=WARN_SOFT)
        self.query_one("#quarantine-summary", Static).update(summary)
        table = self.query_one(DataTable)
        table.clear()
        self.rows = reads.quarantine_page(PAGE)
        for row in self.rows:
            table.add_row(fmt_iso(row["received_at"])[5:], safe_text(row["reason"]), f"{row['lines']:,}",
                          Text(truncate(safe(row["detail"]), 41)), fmt_bytes(row["raw_len"]),
                          safe_text(row["sender"] or "—"), safe_text(row["transport"] or "—"))
        self._show_sample(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_sample(event.cursor_row)

    def _show_sample(self, index: int) -> None:
        sample = self.query_one("#sample", Static)
        if not self.rows or not 0 <= index < len(self.rows):
            sample.update(Text("Nothing quarantined.", style="dim italic"))
            return
        row = self.rows[index]
        head = Text(f"{safe(row['reason'])}: ", style="bold")
        head.append_text(safe_text(row["detail"]))
        kept = len(row["raw"]) if row["raw"] is not None else 0
        note = Text(f"first {kept:,} of {row['raw_len']:,} bytes, shown literally:", style="dim")
        parts: list[Any] = [head]
        samples = row.get("samples") or []
        if len(samples) > 1:
            more = row["lines"] - len(samples)
            parts.append(Text(f"first {len(samples)} of {row['lines']:,} refused lines"
                              + (f" ({more:,} more not kept)" if more > 0 else "") + ":", style="dim"))
            for item in samples:
                line = Text(f"  line {item.get('line')} {safe(item.get('reason'))}: ", style="bold")
                line.append_text(Text(truncate(safe(item.get("raw", "")), 120)))
                parts.append(line)
        parts += [note, Text(raw_preview(row["raw"] or b""))]  # already escaped: a second pass doubles backslashes
        sample.update(Group(*parts))

    def action_close(self) -> None:
        self.dismiss(None)
