"""A line (or a few) of status text that repaints without asking for a new layout.

``Static.update`` asks the screen to lay out again, which at 10 updates a second costs more than everything else
the feed does per tick. These lines have a fixed height in CSS, so a repaint is enough; identical text is skipped.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class StatusLine(Widget):
    """Shows one ``Text`` (never markup); :meth:`show` repaints only when the text changed."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text("")

    @property
    def text(self) -> Text:
        return self._text

    def show(self, text: Text) -> None:
        if text.plain == self._text.plain and text.spans == self._text.spans:
            return
        self._text = text
        self.refresh()

    def update(self, text: Text) -> None:
        """Alias of :meth:`show` (same call as ``Static.update``)."""
        self.show(text)

    def render(self) -> Text:
        return self._text
