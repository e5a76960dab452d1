"""The threat feed as a virtual table: a Line-API ``ScrollView`` over a :class:`~pilot_tui.ui.feedquery.FeedWindow`.

Only the rows on screen are fetched and rendered; the scrollable height is the number of matching events. A plain
``DataTable`` needs seconds to take 50,000 rows and slows down with every row added, so it is not used here.

The first line is a fixed header. The selection is an *event*, not a row number: whatever arrives, the highlighted
event (and the detail pane showing it, and what ``a``/``m`` act on) stays the one the analyst chose. Following the
live feed is an explicit mode (``F``, like ``less +F``): while following, the newest event is selected and the view
sticks to the top; otherwise nothing moves and the header counts the events that arrived above the view.

The feed's keys live here, with the table, so every screen that shows the feed answers all of them: a key whose
action the host screen lacks (the demo layout has no filter box) runs it on the threat feed view instead.
"""

from __future__ import annotations

import os
import time
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

from ..feedquery import SORTS, FeedWindow
from ..format import fmt_when, safe, severity_name, state_label, truncate
from ..messages import FeedCursorMoved, FeedRowChosen


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its key, title, width in cells and whether it is right-aligned."""

    key: str
    title: str
    width: int
    right: bool = False


COMPACT_BELOW = 100
"""Narrower tables abbreviate severities (``CRIT``), dates (``Nov 24``) and the state column."""

NO_SENSOR_BELOW = 24
"""When fewer cells than this are left for anomaly and sensor, the sensor column goes (the detail pane has it)."""

IP_MIN, IP_MAX = 15, 39
"""The source column is as wide as the longest address on screen, within these bounds (39: a full IPv6)."""

SEVERITY_ABBREV = ("INFO", "LOW", "MED", "HIGH", "CRIT")


def layout_columns(width: int, ip_width: int = IP_MIN) -> list[Column]:
    """Column widths for a table ``width`` cells wide whose longest address on screen is ``ip_width`` long.

    Addresses, severities, counts and states are never cut: their columns are sized first; anomaly and sensor share
    what is left, and the sensor column is dropped when that is too little.
    """
    compact = width < COMPACT_BELOW
    ip = max(IP_MIN, min(IP_MAX, ip_width), 0 if compact else 24)
    fixed = [Column("time", "RECEIVED", 8 if compact else 11), Column("sev", "SEV" if compact else "SEVERITY",
                                                                      4 if compact else 8),
             Column("ip", "SOURCE IP", ip)]
    tail = [Column("count", "COUNT", 6, right=True), Column("state", "STATE", 10 if compact else 12)]
    used = sum(c.width for c in fixed + tail) + len(fixed) + len(tail)  # one-cell gaps between columns
    spare = max(6, width - used)
    if spare < NO_SENSOR_BELOW:
        return [*fixed, Column("anomaly", "ANOMALY", spare), *tail]
    sensor = max(6, min(20, spare // 2))
    return [*fixed, Column("anomaly", "ANOMALY", spare - sensor - 1), Column("sensor", "SENSOR", sensor), *tail]


SEVERITY_CLASSES = tuple(f"feed-table--sev-{name}" for name in ("info", "low", "medium", "high", "critical"))
STATE_CLASSES = tuple(f"feed-table--state-{k}" for k in ("new", "handled", "mitigated", "pending", "bad"))


def feed_binding(key: str, action: str, description: str, *, show: bool = True) -> Binding:
    """A feed key that runs ``action`` on the screen showing the table (or on the threat feed view).

    Its keymap id is the action's name with dashes (``hide_handled`` → ``hide-handled``)."""
    return Binding(key, f"feed('{action}')", description, show=show, id=action.replace("_", "-"))


class FeedTable(ScrollView, can_focus=True):
    """Virtual table of stored events (newest first unless sorted). Call :meth:`reload` after the store changed."""

    HELP_SECTION = "Threat feed"

    COMPONENT_CLASSES = {"feed-table--header", "feed-table--cursor", "feed-table--handled", "feed-table--marker",
                         *SEVERITY_CLASSES, *STATE_CLASSES}

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="cursor-up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="cursor-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="page-down"),
        Binding("home,g", "jump(0)", "First row", show=False, id="first-row"),
        Binding("end,G", "jump(-1)", "Last row", show=False, id="last-row"),
        Binding("enter", "choose", "Detail", id="detail"),
        feed_binding("slash", "filter", "Filter"),
        feed_binding("a", "acknowledge", "Ack"),
        feed_binding("m", "mitigate", "Mitigate"),
        Binding("F", "follow", "Follow", id="follow"),
        feed_binding("i", "incidents", "Incidents"),
        feed_binding("s", "severity", "Min severity"),
        feed_binding("h", "hide_handled", "Hide handled"),
        Binding("S", "sort", "Sort", id="sort"),
        feed_binding("t", "sensors", "Trust"),
        feed_binding("x", "quarantine", "Quarantine"),
        feed_binding("f", "false_positive", "False positive"),
        feed_binding("o", "reopen", "Reopen"),
        Binding("c", "copy('address')", "Copy IP", id="copy-address"),
        Binding("C", "copy('event')", "Copy JSON", id="copy-event"),
    ]

    def __init__(self, window: FeedWindow, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.window = window
        self.cursor = 0
        """Index of the highlighted event (0 = first row)."""
        self.following = True
        """Follow mode: the newest event stays selected and the view at the top (``F`` toggles)."""
        self.new_above = 0
        """Events that arrived above the view since it stopped following (the header's "N new ↑")."""
        self._cursor_rowid: int | None = None
        self._ip_width = IP_MIN
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        self._styles: dict[str, Style] = {}

    # -- data ------------------------------------------------------------------------------------------------

    @property
    def current(self) -> StoredEvent | None:
        """The event under the cursor."""
        return self.window.row(self.cursor)

    def _now(self) -> float:
        clock = getattr(self.app, "clock", None)
        return clock() if callable(clock) else time.time()

    def reload(self, *, added_on_top: int = 0, reset: bool = False) -> None:
        """Take the window's new state: keep the selected event selected (or go to the top when ``reset``).

        Not following, the view keeps its place on screen too: when rows land above, it scrolls by as many rows.
        Rendered lines are cached by event (rowid, triage state, cursor, width, layout), so rows that merely moved
        are not rendered again.
        """
        before = self._cursor_rowid
        self._update_virtual_size()
        if reset or self.following or before is None:
            self.cursor = 0
            self.new_above = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        else:
            found = self._find(before, added_on_top)
            if found is not None and found != self.cursor:
                delta = found - self.cursor
                self.cursor = found
                self.scroll_to(y=max(0, round(self.scroll_y) + delta), animate=False, immediate=True)
                self.new_above += max(0, delta)
        self.cursor = max(0, min(self.cursor, self.window.total - 1))
        self.new_above = min(self.new_above, round(self.scroll_y))
        self._scroll_cursor_into_view()
        self._fit_columns()
        self.refresh()
        self._announce()

    def _find(self, rowid: int, added_on_top: int) -> int | None:
        """Where the selected event is now: one row check when events only landed on top, else one count."""
        if self.window.arrival_order:
            guess = self.window.row(self.cursor + added_on_top)
            if guess is not None and guess.rowid == rowid:
                return self.cursor + added_on_top
        return self.window.position_of(rowid)

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

    def _fit_columns(self) -> None:
        """Size the source column to the longest address on screen (so no address is ever cut)."""
        top = round(self.scroll_y)
        rows = (self.window.row(i) for i in range(top, min(self.window.total, top + self.page_rows)))
        width = max((len(safe(r.event.source_ip)) for r in rows if r is not None), default=IP_MIN)
        if width != self._ip_width:
            self._ip_width = width
            self._lines.clear()
            self.refresh()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.following and round(new) > 0:
            self._set_following(False)  # only the analyst scrolls a following view away from the top
        if round(new) < self.new_above:
            self.new_above = round(new)
            self.refresh_line(0)
        self._fit_columns()

    # -- navigation ------------------------------------------------------------------------------------------

    @property
    def page_rows(self) -> int:
        """Data rows visible at once (the header takes one line)."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_to(self, index: int) -> None:
        """Put the cursor on ``index`` (clamped) and scroll it into view; the analyst chose: stop following."""
        self._set_following(False)
        old = self.cursor
        self.cursor = max(0, min(index, self.window.total - 1))
        if old != self.cursor:
            self._refresh_row(old)
            self._refresh_row(self.cursor)
        self._scroll_cursor_into_view()
        self._announce()

    def _set_following(self, on: bool) -> None:
        if on != self.following:
            self.following = on
            self.refresh_line(0)

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

    def action_follow(self) -> None:
        """Toggle follow mode; turning it on selects the newest event."""
        following = not self.following
        if following:
            self.following = True
            self.reload(reset=True)
        else:
            self._set_following(False)
        self.notify("following new events" if following else "not following: the selection stays put",
                    timeout=2)

    def action_sort(self) -> None:
        """Cycle the order (received → severity → count → source); the selected event stays selected."""
        index = next(i for i, sort in enumerate(SORTS) if sort is self.window.sort)
        sort = SORTS[(index + 1) % len(SORTS)]
        self.window.set_sort(sort.key)
        held = self._cursor_rowid
        if not self.following and held is not None:
            found = self.window.position_of(held)
            if found is not None:
                self.cursor = found
        self._lines.clear()
        self.reload(reset=self.following)
        self.notify(f"sorted by {sort.label}", timeout=2)

    def action_choose(self) -> None:
        current = self.current
        if current is not None:
            self._set_following(False)
            self.post_message(FeedRowChosen(current))

    async def action_feed(self, action: str) -> None:
        """Run a feed key: on the host screen when it has the action, else on the threat feed view."""
        screen = self.screen
        if callable(getattr(screen, f"action_{action}", None)):
            await screen.run_action(action)
            return
        run_view_action = getattr(self.app, "run_view_action", None)
        if callable(run_view_action):
            run_view_action("feed", action)

    def action_copy(self, what: str) -> None:
        """Copy the selected event's address or its JSON: to the terminal clipboard (OSC 52, where the terminal
        allows it) and to a file in the state directory, whose path is shown (for terminals that do not)."""
        current = self.current
        if current is None:
            self.notify("No event selected.", severity="warning", timeout=3)
            return
        if what == "address":
            text, name, label = current.event.source_ip, "copied-address.txt", safe(current.event.source_ip)
        else:
            text, name = current.event.to_json().decode(), "copied-event.json"
            label = f"event {safe(current.event.id)[:24]}"
        self.app.copy_to_clipboard(text)
        where = ""
        folder = self.window.query.folder()
        if folder is not None:
            path = folder / name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text + "\n")
                where = f" · also in {path}"
            except OSError as exc:
                where = f" · file not written: {exc.strerror or exc}"
        self.notify(f"copied {label} (terminal clipboard){where}", timeout=6, markup=False)

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
        self._fit_columns()

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
        key = (stored.rowid, stored.state, status, is_cursor, width, self._ip_width)
        strip = self._lines.get(key)
        if strip is None:
            strip = self._row_strip(stored, is_cursor, width)
            self._lines[key] = strip
        return strip

    def marker(self) -> str:
        """What the header says about following: ``● live``, ``12 new ↑`` or nothing."""
        if self.following:
            return "● live"
        return f"{self.new_above:,} new ↑" if self.new_above else ""

    def _header(self, width: int) -> Strip:
        style = self._style("feed-table--header")
        text = Text(style=style, no_wrap=True, end="")
        sort = self.window.sort
        sorted_col = {"severity": "sev", "count": "count", "source": "ip"}.get(sort.key)
        marker = self.marker()
        for i, col in enumerate(layout_columns(width, self._ip_width)):
            if i:
                text.append(" ")
            title = col.title
            if col.key == sorted_col:
                arrow = "▼" if sort.descending else "▲"
                title = (title if len(title) < col.width else title[: col.width - 1]) + arrow
            if col.key == "anomaly" and marker:
                shown = truncate(marker, col.width)
                room = col.width - len(shown)
                text.append((title + " " if len(title) < room else "").ljust(room))
                text.append(shown, self._style("feed-table--marker"))
                continue
            text.append(title.rjust(col.width) if col.right else title.ljust(col.width))
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
            "time": (fmt_when(stored.received_at, self._now(), narrow=compact), None),
            "sev": (sev, SEVERITY_CLASSES[event.severity_rank]),
            "ip": (safe(event.source_ip), None),
            "anomaly": (safe(event.anomaly), None),
            "sensor": (safe(event.sensor or "—"), None),
            "count": (str(event.count) if event.count is not None else "", None),
            "state": (label, f"feed-table--state-{state_kind}"),
        }
        text = Text(style=base, no_wrap=True, end="")
        for i, col in enumerate(layout_columns(width, self._ip_width)):
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
