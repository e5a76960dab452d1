"""A zero-based bar chart in text (Textual's ``Sparkline`` scales between min and max, so a steady rate looks like
nothing at all). Pure: returns ``rich.text.Text``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"


def resample(values: Sequence[float], width: int) -> list[float]:
    """``values`` stretched or squeezed to ``width`` columns (max of each bucket, so peaks survive)."""
    if width <= 0 or not values:
        return []
    n = len(values)
    out = []
    for col in range(width):
        lo = col * n // width
        hi = max(lo + 1, (col + 1) * n // width)
        out.append(max(values[lo:hi]))
    return out


def bars_text(values: Sequence[float], width: int, height: int = 1, style: str = "") -> Text:
    """``height`` lines of bars, 0 at the bottom, the largest value at the top."""
    cols = resample(values, width)
    top = max(cols, default=0) or 1
    levels = [round(v / top * height * 8) for v in cols]
    lines = []
    for row in range(height - 1, -1, -1):
        base = row * 8
        floor = 1 if row == 0 else 0  # a baseline, so "no events" reads as zero rather than as nothing drawn
        lines.append("".join(BARS[max(floor, min(8, level - base))] for level in levels))
    return Text("\n".join(lines), style=style, no_wrap=True, end="")


class Bars(Widget):
    """A zero-based bar chart that redraws to its size (repaint only, never a new layout)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.values: list[float] = []

    def show(self, values: Sequence[float]) -> None:
        values = list(values)
        if values != self.values:
            self.values = values
            self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        return bars_text(self.values, width, max(1, height))
