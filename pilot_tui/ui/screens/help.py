"""The ``?`` screen: every key that works in the view underneath, read from the live bindings (never stale)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HelpRow = tuple[str, str, str]
"""(section, keys, description)."""


HIDDEN_ACTIONS = frozenset({"scroll_left", "scroll_right", "page_left", "page_right", "focus_next",
                            "focus_previous", "screen.copy_text", "copy_text", "scroll_home", "scroll_end",
                            "command_palette", "app.next_view(-1)", "next_view(-1)", "minimize", "maximize"})
"""Bindings inherited from Textual that add nothing to our help (horizontal scrolling, focus cycling…)."""


def help_rows(active: dict[str, object], key_display: object) -> list[HelpRow]:
    """Group the active bindings (``Screen.active_bindings``) by owner and action; keys of one action are joined.

    Sections keep the order in which they first appear; within a section, bindings keep theirs.
    """
    grouped: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for key, active_binding in active.items():
        node, binding = active_binding.node, active_binding.binding  # type: ignore[attr-defined]
        if not binding.description or binding.system or binding.action in HIDDEN_ACTIONS:
            continue
        section = getattr(node, "HELP_SECTION", None) or type(node).__name__
        shown = key_display(binding) if callable(key_display) else key  # type: ignore[operator]
        entry = grouped.setdefault((section, binding.description), (section, []))
        if shown not in entry[1]:
            entry[1].append(shown)
    rows = [(section, " ".join(keys), desc) for (section, desc), (_, keys) in grouped.items()]
    order = {section: i for i, (section, _k, _d) in reversed(list(enumerate(rows)))}
    return sorted(rows, key=lambda row: order[row[0]])


def help_table(rows: Iterable[HelpRow]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    last = None
    for section, keys, desc in rows:
        table.add_row(Text(section if section != last else ""), Text(f" {keys} "), Text(desc))
        last = section
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the keys of the view it was opened from, grouped by where they apply."""

    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help")]

    def __init__(self, rows: list[HelpRow], extra: str = "") -> None:
        super().__init__()
        self._rows = rows
        self._extra = extra

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "Esc closes"
            yield Static(help_table(self._rows), markup=False)
            if self._extra:
                yield Static(Text(self._extra, style="dim"), id="help-extra", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
