"""The lists of the secondary views (incidents, sensors, quarantine, detections): a ``DataTable`` with vi keys.

``j``/``k`` move and ``g``/``G`` jump as they do in the threat feed, so a key learned there works in every list. A
move the analyst made (key or click) is announced with :class:`ListTable.UserMoved`, which tells it apart from the
cursor moves a view makes itself while it rebuilds the list (the oracle's detections stop following on the first).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable


class ListTable(DataTable[object]):
    """A row-cursor ``DataTable`` with ``j``/``k``/``g``/``G`` and a message for moves the analyst made."""

    HELP_SECTION = "Lists"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="cursor-up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="cursor-down"),
        Binding("home,g", "first", "First row", show=False, id="first-row"),
        Binding("end,G", "last", "Last row", show=False, id="last-row"),
    ]

    class UserMoved(Message):
        """The analyst moved the cursor (a key or a click), as opposed to the view rebuilding the list."""

        def __init__(self, table: ListTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> ListTable:
            return self.table

    def __init__(self, **kwargs: Any) -> None:  # DataTable's keyword arguments, passed through
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Enter is the screen's key (each names what it does there: "Show events", "Event detail"…), and a row
        cursor has no left/right: leaving those out keeps ``?`` truthful."""
        if action in ("select_cursor", "cursor_left", "cursor_right"):
            return False
        return super().check_action(action, parameters)

    def _moved(self) -> None:
        self.post_message(self.UserMoved(self))

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._moved()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._moved()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._moved()

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)
        self._moved()

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
        self._moved()

    async def _on_click(self, event: events.Click) -> None:
        await super()._on_click(event)
        self._moved()
