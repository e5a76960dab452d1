"""The one-line bar on top of every view: which views exist, which one is shown, and how to switch."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

VIEW_TITLES: dict[str, str] = {
    "demo": "Demo",
    "feed": "Threat feed",
    "oracle": "Oracle",
    "executor": "Executor",
}


def view_bar_text(views: list[str], current: str, subtitle: str = "") -> Text:
    """`` pilot-tui  1 Threat feed  2 Oracle  … `` with the current view highlighted."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(" pilot-tui ", style="bold reverse")
    for i, view in enumerate(views, start=1):
        label = f" {i} {VIEW_TITLES.get(view, view)} "
        text.append(" ")
        text.append(label, style="bold reverse" if view == current else "dim")
    if subtitle:
        text.append("  ")
        text.append(subtitle, style="italic")
    return text


class ViewBar(Static):
    """Top bar; ``view`` is the mode of the screen it sits on."""

    def __init__(self, view: str, subtitle: str = "") -> None:
        super().__init__(markup=False, classes="view-bar")
        self.view = view
        self.subtitle = subtitle

    def on_mount(self) -> None:
        views = list(getattr(self.app, "views", [self.view]))
        self.update(view_bar_text(views, self.view, self.subtitle))
