"""What the screens share: listening to engines through the app's update pump, the app's clock, intents.

:class:`EngineScreen` is a view (a mode: feed, oracle, executor, demo) — ``tab`` switches views there.
:class:`SecondaryScreen` is pushed over a view (incidents, sensors, quarantine) — ``tab`` keeps moving focus.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from ..app import PilotApp


class SecondaryScreen(Screen[Any]):
    """A screen that receives ``EngineUpdates`` of the engines named in ``ENGINES`` while it is mounted."""

    ENGINES: tuple[str, ...] = ()
    HELP_SECTION = "View"

    @property
    def pilot_app(self) -> PilotApp:
        return cast("PilotApp", self.app)  # every screen here is pushed by PilotApp

    def clock(self) -> float:
        """The app's clock (injectable, so ages are frozen in snapshot tests)."""
        clock = getattr(self.app, "clock", None)
        return clock() if callable(clock) else time.time()

    def on_mount(self) -> None:
        listen = getattr(self.app, "listen", None)
        for name in self.ENGINES:
            if listen is not None:
                listen(name, self)

    def on_unmount(self) -> None:
        unlisten = getattr(self.app, "unlisten", None)
        for name in self.ENGINES:
            if unlisten is not None:
                unlisten(name, self)

    def run_intent(self, name: str, work: Any) -> None:
        """Run a user intent (a coroutine) as an exclusive worker; the app turns its failure into a notification."""
        self.pilot_app.run_intent(name, work)


class EngineScreen(SecondaryScreen):
    """A view of one or more engines (an app mode)."""

    BINDINGS = [
        # Screen binds tab to focus cycling; on the engine views it switches views (each has one main widget).
        Binding("tab", "app.next_view(1)", "Next view", show=False, id="next-view"),
        Binding("shift+tab", "app.next_view(-1)", "Previous view", show=False, id="previous-view"),
    ]
