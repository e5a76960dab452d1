"""A full event shown over the current view (used where there is no room for a side pane: oracle, demo)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class EventDetailScreen(ModalScreen[None]):
    """Shows a prepared renderable (built from ``Text`` only, see :mod:`..widgets.event_detail`)."""

    CSS_PATH = "help.tcss"
    HELP_SECTION = "Event detail"
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="close-detail")]

    def __init__(self, title: str, body: RenderableType) -> None:
        super().__init__()
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = Text(self._title)
            box.border_subtitle = "Esc closes"
            yield Static(self._body, markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
