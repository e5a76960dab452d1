"""The Textual app: one view per engine given, engines run as long-lived workers, updates pumped ≤10×/s.

:func:`make_app` is the factory the CLI and the tests share. The app

* subscribes a bounded :class:`~pilot_tui.ui.bridge.UpdateBridge` to each engine's bus and, on a timer, posts one
  :class:`~pilot_tui.ui.messages.EngineUpdates` per engine to the screens listening (never one message per event);
* starts each engine's ``run()`` and each ``background`` coroutine as workers (``exit_on_error=False``) and routes
  any worker failure to a notification in :meth:`PilotApp.on_worker_state_changed` — the one place that does;
* shows views as Textual *modes* (``1``/``2``/``3``/``4`` or ``tab``), each with its own screen stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from pilot_tui.engines.oracle import OracleEngine
from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.store.queries import QueryReader
from pilot_tui.subproc import reap_all

if TYPE_CHECKING:
    from pilot_tui.engines.executor import ExecutorEngine

from .bridge import UpdateBridge
from .commands import PilotCommands
from .messages import EngineUpdates
from .notices import describe_error, notices_for
from .tones import rich_theme
from .widgets.text_log import TextLog

VIEW_ORDER = ("demo", "feed", "oracle", "executor")
"""Views in the order the number keys reach them (only those with an engine exist)."""

TICK_S = 0.1
"""How often engine updates are pumped to the screens (≤10 refreshes a second however fast events arrive)."""

HISTORY = 200
"""Discrete updates kept per engine so a view opened later can replay them (e.g. the send log)."""

MAX_NOTIFY_PER_TICK = 3


class PilotApp(App[None]):
    """pilot-tui's dashboard. Build it with :func:`make_app`."""

    TITLE = "pilot-tui"
    CSS_PATH = ["app.tcss", "widgets/widgets.tcss"]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    COMMANDS = App.COMMANDS | {PilotCommands}
    HELP_SECTION = "Everywhere"
    BINDINGS = [
        Binding("tab", "next_view(1)", "Next view", id="next-view"),
        Binding("shift+tab", "next_view(-1)", "Previous view", show=False, id="previous-view"),
        Binding("1", "view(0)", "View 1", show=False, id="view-1"),
        Binding("2", "view(1)", "View 2", show=False, id="view-2"),
        Binding("3", "view(2)", "View 3", show=False, id="view-3"),
        Binding("4", "view(3)", "View 4", show=False, id="view-4"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("d", "toggle_dark", "Light/dark", show=False, id="toggle-dark"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit"),
    ]

    def __init__(
        self,
        *,
        oracle: OracleEngine | None = None,
        orchestrator: OrchestratorEngine | None = None,
        executor: ExecutorEngine | None = None,
        demo: bool = False,
        background: Sequence[Callable[[], Awaitable[None]]] = (),
        clock: Callable[[], float] = time.time,
        start_engines: bool = True,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if keymap:
            self.set_keymap(dict(keymap))  # the config file's [keymap]: binding id → keys (see ui/keymap.py)
        self.engines: dict[str, Any] = {
            name: engine for name, engine in
            (("orchestrator", orchestrator), ("oracle", oracle), ("executor", executor)) if engine is not None
        }
        self.demo = demo and bool(self.engines)
        self.background = list(background)
        self.clock = clock
        """Wall clock for ages and "last seen" columns; tests inject a fixed one."""
        self.start_engines = start_engines
        self.views: list[str] = [v for v in VIEW_ORDER if self._has_view(v)]
        """Available views (mode names), in number-key order."""
        self.view_screens: dict[str, Screen[Any]] = {}
        self._bridges = {name: UpdateBridge(name) for name in self.engines}
        self._history: dict[str, deque[Any]] = {name: deque(maxlen=HISTORY) for name in self.engines}
        self._listeners: dict[str, list[Widget]] = {name: [] for name in self.engines}
        self._unsubscribe: list[Callable[[], None]] = []
        self._engine_workers: list[Worker[Any]] = []
        self._reader: QueryReader | None = None
        self._tones_pushed = False
        for view in self.views:
            self.add_mode(view, self._screen_factory(view))

    # -- views -------------------------------------------------------------------------------------------------

    def _has_view(self, view: str) -> bool:
        if view == "demo":
            return self.demo
        return {"feed": "orchestrator", "oracle": "oracle", "executor": "executor"}[view] in self.engines

    def _screen_factory(self, view: str) -> Callable[[], Screen[Any]]:
        def make() -> Screen[Any]:
            if view == "feed":
                from .screens.feed import FeedScreen

                return FeedScreen(self.engines["orchestrator"])
            if view == "oracle":
                from .screens.oracle import OracleScreen

                return OracleScreen(self.engines["oracle"])
            if view == "executor":
                from .screens.executor import ExecutorScreen

                return ExecutorScreen(self.engines["executor"])
            from .screens.demo import DemoScreen

            return DemoScreen(self.engines)

        return make

    @property
    def current_view(self) -> str:
        return self.current_mode

    def _modal_open(self) -> bool:
        return isinstance(self.screen, ModalScreen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Number keys of views this app does not have are not keys at all (so ``?`` does not list them)."""
        if action == "view" and parameters and isinstance(parameters[0], int):
            return parameters[0] < len(self.views)
        return True

    def action_view(self, index: int) -> None:
        """Show the ``index``-th available view (number keys)."""
        if self._modal_open() or not 0 <= index < len(self.views):
            return
        self.switch_mode(self.views[index])

    def action_next_view(self, step: int) -> None:
        if self._modal_open() or not self.views:
            return
        current = self.views.index(self.current_mode) if self.current_mode in self.views else -1
        self.switch_mode(self.views[(current + step) % len(self.views)])

    def action_switch_view(self, view: str) -> None:
        if view in self.views:
            self.switch_mode(view)

    def run_view_action(self, view: str, action: str) -> None:
        """Switch to ``view`` and run ``action`` on its screen (used by the command palette)."""
        if view not in self.views:
            return
        self.switch_mode(view)

        async def later() -> None:
            screen = self.view_screens.get(view)
            if screen is not None:
                await screen.run_action(action)

        self.call_later(later)

    def action_help(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        from .screens.help import HelpScreen, help_rows

        rows = help_rows(self.screen.active_bindings, self.get_key_display)
        self.push_screen(HelpScreen(rows, extra="ctrl+p (command palette) finds these actions by name. "
                                               "Mouse is optional: every action has a key."))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Toggle light/dark theme", "Switch between the light and dark themes",
                            self.action_toggle_dark)

    # -- engines and workers -------------------------------------------------------------------------------------

    def _apply_tones(self, _theme: object = None) -> None:
        """Give the Rich styles that name theme variables (``ui/tones.py``) the current theme's colours.

        Statics and text logs keep what they rendered, so on a theme change they are given their content again
        (data tables re-render by themselves).
        """
        if self._tones_pushed:
            self.console.pop_theme()
        self.console.push_theme(rich_theme(self.theme_variables))
        if not self._tones_pushed:
            self._tones_pushed = True
            return
        screens = {*self.view_screens.values(), *self.screen_stack}
        for screen in screens:
            for static in screen.query(Static):
                static.update(static.content)
            for log in screen.query(TextLog):
                log.rewrite()

    async def on_mount(self) -> None:
        self._apply_tones()
        self.theme_changed_signal.subscribe(self, self._apply_tones)
        for name, engine in self.engines.items():
            self._unsubscribe.append(engine.bus.subscribe(self._bridges[name]))
        self.set_interval(TICK_S, self.pump)
        if self.start_engines:
            for name, engine in self.engines.items():
                self._engine_workers.append(self.run_worker(
                    engine.run(), name=f"{name} engine", group="engines", exit_on_error=False))
            for i, factory in enumerate(self.background):
                name = getattr(factory, "__name__", "")
                work = factory() if callable(factory) else factory  # a coroutine passed directly works too
                self._engine_workers.append(self.run_worker(
                    work, name=name if name and name != "<lambda>" else f"background task {i + 1}",
                    group="background", exit_on_error=False))
        if self.views:
            await self.switch_mode(self.views[0])

    def run_intent(self, name: str, work: Awaitable[Any]) -> Worker[Any]:
        """Run one user intent (mitigate, approve, a pilotctl call…) without blocking the UI.

        Intents of the same name are exclusive (a second press replaces a still-running first one); failures
        become notifications in :meth:`on_worker_state_changed`.
        """
        return self.run_worker(work, name=name, group=f"intent:{name}", exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures surface: a notification with a one-line cause, never a traceback."""
        worker = event.worker
        if event.state == WorkerState.ERROR:
            self.tell(f"{worker.name}: {describe_error(worker.error)}", severity="error", title="Error")
        elif event.state == WorkerState.SUCCESS and worker.group == "engines" and self.is_running:
            self.log.info(f"{worker.name} returned")

    async def stop_workers(self, timeout: float = 3.0) -> None:
        """Cancel the engines and background tasks and give their ``finally`` blocks a moment to clean up."""
        started = [w for w in self._engine_workers if w.state != WorkerState.PENDING]  # wait() refuses the rest
        for worker in self._engine_workers:
            worker.cancel()

        async def ended(worker: Worker[Any]) -> None:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):  # reported by on_worker_state_changed
                await worker.wait()

        if started:
            waits = [asyncio.ensure_future(ended(w)) for w in started]
            _done, late = await asyncio.wait(waits, timeout=timeout)
            for wait in late:
                wait.cancel()

    async def action_quit(self) -> None:
        await self.stop_workers()
        await reap_all(1.0)  # no pilotctl child may outlive the loop (see pilot_tui.subproc)
        self.exit()

    def on_unmount(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._reader is not None:
            self._reader.close()

    @property
    def reader(self) -> QueryReader:
        """The orchestrator's slow reads (counts, aggregates), off the event loop (see ``store.queries``)."""
        if self._reader is None:
            self._reader = QueryReader(self.engines["orchestrator"].query.feed)
        return self._reader

    # -- the update pump ---------------------------------------------------------------------------------------

    def listen(self, engine: str, widget: Widget) -> None:
        """Deliver ``engine``'s :class:`EngineUpdates` to ``widget`` (screens call this on mount)."""
        if engine in self._listeners and widget not in self._listeners[engine]:
            self._listeners[engine].append(widget)
        view = getattr(widget, "view_name", None) or getattr(type(widget), "VIEW", None)
        if isinstance(widget, Screen) and view in self.views and view not in self.view_screens:
            self.view_screens[view] = widget

    def unlisten(self, engine: str, widget: Widget) -> None:
        if widget in self._listeners.get(engine, []):
            self._listeners[engine].remove(widget)

    def history(self, engine: str) -> list[Any]:
        """The last discrete updates of ``engine`` (for a view opened after they happened)."""
        return list(self._history.get(engine, ()))

    def pump(self) -> None:
        """Drain every bridge; post one message per engine to its listeners; raise notifications (bounded)."""
        budget = MAX_NOTIFY_PER_TICK
        for name, bridge in self._bridges.items():
            drained = bridge.drain()
            if drained is None:
                continue
            kinds, updates, new_events, dropped = drained
            self._history[name].extend(updates)
            for severity, text in notices_for(updates):
                if budget <= 0:
                    break
                budget -= 1
                self.tell(text, severity=severity)
            for widget in list(self._listeners[name]):
                widget.post_message(EngineUpdates(name, kinds, updates, new_events, dropped))

    def tell(self, message: str, *, severity: SeverityLevel = "information", title: str = "", timeout: float = 6) -> None:
        """A notification whose text is never parsed as markup (it may quote engine or attacker text)."""
        self.notify(message, severity=severity, title=title, timeout=timeout, markup=False)


def make_app(
    *,
    oracle: OracleEngine | None = None,
    orchestrator: OrchestratorEngine | None = None,
    executor: ExecutorEngine | None = None,
    demo: bool = False,
    background: Sequence[Callable[[], Awaitable[None]]] = (),
    clock: Callable[[], float] = time.time,
    start_engines: bool = True,
    keymap: Mapping[str, str] | None = None,
) -> PilotApp:
    """Build the dashboard for the engines given (at least one).

    Views: the threat feed (orchestrator) first, then the oracle's send view, then the executor's; ``demo`` adds
    a combined layout in front. ``background`` coroutine factories run as workers next to the engines (the
    demo's log generator, for instance). ``clock`` and ``start_engines=False`` are for tests and screenshots.
    ``keymap`` rebinds keys by binding id (the config file's ``[keymap]`` table, checked by ``pilot_tui.config``).
    """
    if oracle is None and orchestrator is None and executor is None:
        raise ValueError("make_app needs at least one engine")
    return PilotApp(oracle=oracle, orchestrator=orchestrator, executor=executor, demo=demo,
                    background=background, clock=clock, start_engines=start_engines, keymap=keymap)
