"""A bounded log of ``Text`` entries that re-wraps when its width changes (RichLog wraps once, at write time)."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import events
from textual.widgets import RichLog


class TextLog(RichLog):
    """Keeps the last ``max_lines`` entries and renders them again after a resize. Never parses markup."""

    def __init__(self, *, max_lines: int = 300, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=max_lines, markup=False, highlight=False, wrap=True, min_width=20)
        self.entries: deque[Text] = deque(maxlen=max_lines)
        self._width = 0

    def add(self, text: Text) -> None:
        """Append one entry (kept for re-wrapping) and show it."""
        self.entries.append(text)
        if self._width:
            self.write(text, scroll_end=True)

    def on_resize(self, event: events.Resize) -> None:
        width = event.size.width
        if width != self._width and width > 0:
            self._width = width
            self.rewrite()

    def rewrite(self) -> None:
        """Render every kept entry again (after a resize, or a theme change: RichLog keeps rendered lines)."""
        if not self._width:
            return
        self.clear()
        for text in self.entries:
            self.write(text, width=self._width, scroll_end=True)
