"""The ``?`` screen: every key that works in the view underneath, read from the live bindings (never stale)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HelpRow = tuple[str, str, str]
"""(section, keys, description)."""


def own_bindings(active: Mapping[str, ActiveBinding]) -> Iterator[tuple[str, ActiveBinding]]:
    """The app's own bindings among the active ones (``Screen.active_bindings``), in order.

    Every binding pilot-tui defines has an ``id`` (its name in the config file's ``[keymap]``; a test checks that
    none lacks one), so the ones without are those inherited from Textual's widgets (horizontal scrolling, focus
    cycling, Input's cursor keys…) — not what ``?`` or the command palette is for.
    """
    for key, active_binding in active.items():
        binding = active_binding.binding
        if binding.id and binding.description and not binding.system:
            yield key, active_binding


def section_of(node: object) -> str:
    """The heading a binding is listed under: its owner's ``HELP_SECTION`` (or class name)."""
    return getattr(node, "HELP_SECTION", None) or type(node).__name__


def help_rows(active: Mapping[str, ActiveBinding], key_display: Callable[[Binding], str]) -> list[HelpRow]:
    """Group the app's active bindings by owner and action; keys of one action are joined.

    Sections keep the order in which they first appear; within a section, bindings keep theirs.
    """
    grouped: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for key, active_binding in own_bindings(active):
        node, binding = active_binding.node, active_binding.binding
        section = section_of(node)
        shown = key_display(binding) if callable(key_display) else key
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
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help", id="close-help")]

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
