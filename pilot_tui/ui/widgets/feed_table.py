"""The threat feed as a virtual table: a Line-API ``ScrollView`` over a :class:`~pilot_tui.ui.feedquery.FeedWindow`.

Only the rows on screen are fetched and rendered; the scrollable height is the number of matching events. A plain
``DataTable`` needs seconds to take 50,000 rows and slows down with every row added, so it is not used here.

The first line is a fixed header. The cursor stays on the same event while new ones arrive on top, unless it is on
the newest row with the view scrolled to the top — then the table follows the live feed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip

from pilot_tui.store.events import StoredEvent

from ..feedquery import FeedWindow
from ..format import safe, severity_name, state_label, truncate, ts_hms
from ..messages import FeedCursorMoved, FeedRowChosen


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its key, title, width in cells and whether it is right-aligned."""

    key: str
    title: str
    width: int
    right: bool = False


COMPACT_BELOW = 100
"""Narrower tables abbreviate severities (``CRIT``) and the state column."""

NO_COUNT_BELOW = 72
"""Narrower tables drop the count column."""

SEVERITY_ABBREV = ("INFO", "LOW", "MED", "HIGH", "CRIT")


def layout_columns(width: int) -> list[Column]:
    """Column widths for a table ``width`` cells wide: fixed columns first, anomaly and sensor share the rest."""
    compact = width < COMPACT_BELOW
    ip = 24 if width >= 120 else 15
    fixed = [Column("time", "TIME", 8), Column("sev", "SEV" if compact else "SEVERITY", 4 if compact else 8),
             Column("ip", "SOURCE IP", ip)]
    tail = [Column("count", "COUNT", 5, right=True)] if width >= NO_COUNT_BELOW else []
    tail.append(Column("state", "STATE", 10 if compact else 12))
    used = sum(c.width for c in fixed + tail) + len(fixed) + len(tail)  # one-cell gaps between columns
    spare = max(12, width - used)
    sensor = max(6, min(20, spare // 2))
    return [*fixed, Column("anomaly", "ANOMALY", spare - sensor - 1), Column("sensor", "SENSOR", sensor), *tail]


SEVERITY_CLASSES = tuple(f"feed-table--sev-{name}" for name in ("info", "low", "medium", "high", "critical"))
STATE_CLASSES = tuple(f"feed-table--state-{k}" for k in ("new", "handled", "mitigated", "pending", "bad"))


class FeedTable(ScrollView, can_focus=True):
    """Virtual, newest-first table of stored events. Call :meth:`reload` after the store changed."""

    HELP_SECTION = "Feed table"

    COMPONENT_CLASSES = {"feed-table--header", "feed-table--cursor", "feed-table--handled",
                         *SEVERITY_CLASSES, *STATE_CLASSES}

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "Newest", show=False),
        Binding("end,G", "jump(-1)", "Oldest", show=False),
        Binding("enter", "choose", "Detail"),
    ]

    def __init__(self, window: FeedWindow, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.window = window
        self.cursor = 0
        """Index of the highlighted event (0 = newest matching)."""
        self._cursor_rowid: int | None = None
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        self._styles: dict[str, Style] = {}

    # -- data ------------------------------------------------------------------------------------------------

    @property
    def current(self) -> StoredEvent | None:
        """The event under the cursor."""
        return self.window.row(self.cursor)

    def reload(self, *, added_on_top: int = 0, reset: bool = False) -> None:
        """Take the window's new state: keep the cursor's event in place (or go to the top when ``reset``).

        Rendered lines are cached by event (rowid, triage state, cursor, width), so rows that merely moved down
        are not rendered again.
        """
        before = self._cursor_rowid
        following = self.cursor == 0 and round(self.scroll_y) == 0
        if reset:
            self.cursor = 0
        elif added_on_top and not following:
            self.cursor += added_on_top
            self.scroll_to(y=self.scroll_y + added_on_top, animate=False, immediate=True)
        if not reset and before is not None and not following:
            current = self.window.row(self.cursor)
            if current is None or current.rowid != before:
                found = self.window.index_of(before, self.cursor)
                if found is not None:
                    self.cursor = found
        self.cursor = max(0, min(self.cursor, self.window.total - 1))
        self._update_virtual_size()
        if reset:
            self.scroll_to(y=0, animate=False, immediate=True)
        self._scroll_cursor_into_view()
        self.refresh()
        self._announce()

    def _update_virtual_size(self) -> None:
        """Scrollable height = matching events + the header.

        ``virtual_size`` asks the whole screen for a new layout; while the scrollbar stays as it is (the table was
        and still is taller than the view) the new height is set quietly and only the scrollbar repaints.
        """
        new = Size(0, self.window.total + 1)
        old = self.virtual_size
        if new == old:
            return
        view = self.scrollable_content_region.height
        if view and old.height > view and new.height > view and self.show_vertical_scrollbar:
            self.set_reactive(FeedTable.virtual_size, new)
            bar = self.vertical_scrollbar
            if _thumb(bar, old.height) == _thumb(bar, new.height):
                # one more row among thousands rarely moves the thumb by a visible eighth of a cell: repainting
                # the scrollbar anyway was the biggest part of a new event's UI time
                bar.set_reactive(ScrollBar.window_virtual_size, new.height)
            else:
                bar.window_virtual_size = new.height
            self.refresh()
        else:
            self.virtual_size = new

    def _announce(self) -> None:
        current = self.window.row(self.cursor)
        rowid = current.rowid if current is not None else None
        if rowid != self._cursor_rowid or current is None:
            self._cursor_rowid = rowid
            self.post_message(FeedCursorMoved(current))

    # -- navigation ------------------------------------------------------------------------------------------

    @property
    def page_rows(self) -> int:
        """Data rows visible at once (the header takes one line)."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_to(self, index: int) -> None:
        """Put the cursor on ``index`` (clamped) and scroll it into view."""
        old = self.cursor
        self.cursor = max(0, min(index, self.window.total - 1))
        if old != self.cursor:
            self._refresh_row(old)
            self._refresh_row(self.cursor)
        self._scroll_cursor_into_view()
        self._announce()

    def _refresh_row(self, index: int) -> None:
        y = index - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh_line(y)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor > top + self.page_rows - 1:
            self.scroll_to(y=self.cursor - self.page_rows + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * self.page_rows)

    def action_jump(self, where: int) -> None:
        self.move_to(0 if where == 0 else self.window.total - 1)

    def action_choose(self) -> None:
        current = self.current
        if current is not None:
            self.post_message(FeedRowChosen(current))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        if index < self.window.total:
            self.move_to(index)
            if event.chain >= 2:
                self.action_choose()

    def on_resize(self, event: events.Resize) -> None:
        self._lines.clear()
        self._update_virtual_size()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()

    # -- rendering -------------------------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.get_component_rich_style(name, partial=name != "feed-table--header")
            self._styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._header(width)
        index = round(self.scroll_y) + y - 1
        stored = self.window.row(index)
        if stored is None:
            return Strip.blank(width, self.rich_style)
        is_cursor = index == self.cursor
        status = stored.mitigation.get("status") if stored.mitigation else None
        key = (stored.rowid, stored.state, status, is_cursor, width)
        strip = self._lines.get(key)
        if strip is None:
            strip = self._row_strip(stored, is_cursor, width)
            self._lines[key] = strip
        return strip

    def _header(self, width: int) -> Strip:
        style = self._style("feed-table--header")
        text = Text(style=style, no_wrap=True, end="")
        for i, col in enumerate(layout_columns(width)):
            if i:
                text.append(" ")
            text.append(col.title.rjust(col.width) if col.right else col.title.ljust(col.width))
        return self._to_strip(text, width, style)

    def _row_strip(self, stored: StoredEvent, is_cursor: bool, width: int) -> Strip:
        event = stored.event
        label, state_kind = state_label(stored.state, stored.mitigation)
        handled = state_kind == "handled"
        base = self.rich_style
        if handled:
            base = base + self._style("feed-table--handled")
        if is_cursor:
            base = base + self._style("feed-table--cursor")
        compact = width < COMPACT_BELOW
        sev = SEVERITY_ABBREV[event.severity_rank] if compact else severity_name(event.severity_rank)
        cells = {
            "time": (ts_hms(event.ts), None),
            "sev": (sev, SEVERITY_CLASSES[event.severity_rank]),
            "ip": (safe(event.source_ip), None),
            "anomaly": (safe(event.anomaly), None),
            "sensor": (safe(event.sensor or "—"), None),
            "count": (str(event.count) if event.count is not None else "", None),
            "state": (label, f"feed-table--state-{state_kind}"),
        }
        text = Text(style=base, no_wrap=True, end="")
        for i, col in enumerate(layout_columns(width)):
            if i:
                text.append(" ")
            value, style_name = cells[col.key]
            value = truncate(value, col.width)
            value = value.rjust(col.width) if col.right else value.ljust(col.width)
            style = self._style(style_name) if style_name and not handled else None
            text.append(value, style)
        return self._to_strip(text, width, base)

    def _to_strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = list(text.render(self.app.console))
        return Strip(segments).crop_extend(0, width, style)


def _thumb(bar: ScrollBar, virtual_height: int) -> list[str]:
    """What ``bar`` would draw for ``virtual_height`` rows (glyph and colour-reversal per cell), via Textual's own
    ``ScrollBarRender.render_bar`` so the comparison follows Textual's geometry exactly."""
    drawn = ScrollBarRender.render_bar(
        size=bar.size.height, virtual_size=virtual_height, window_size=bar.window_size, position=bar.position
    )
    return [f"{seg.text}{int(bool(seg.style and seg.style.reverse))}" for seg in drawn.segments]
