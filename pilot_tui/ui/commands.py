"""Command palette (ctrl+p) entries: the keys of the screen it was opened on, plus switching views.

The entries are read from the screen's live bindings (``Screen.active_bindings``, the same source as ``?``), so
the palette offers exactly what the keys can do where the user is, under the keys the keymap gave them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.binding import ActiveBinding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .screens.help import help_rows, own_bindings, section_of

if TYPE_CHECKING:
    from .app import PilotApp

VIEW_NAMES = {"demo": "demo layout", "feed": "threat feed", "oracle": "oracle send view",
              "executor": "executor view"}

Command = tuple[str, str, Callable[[], object]]
"""(title, help, callback)."""


def binding_commands(app: PilotApp, active: Mapping[str, ActiveBinding]) -> list[Command]:
    """One entry per action of the active bindings (keys of one action joined, as ``?`` shows them); choosing it
    runs the action on the node that binds it, as the key would."""
    keys = {(section, desc): shown for section, shown, desc in help_rows(active, app.get_key_display)}
    out: list[Command] = []
    seen: set[tuple[str, str]] = set()
    for _key, active_binding in own_bindings(active):
        node, binding = active_binding.node, active_binding.binding
        entry = (section_of(node), binding.description)
        if entry in seen:
            continue
        seen.add(entry)
        out.append((f"{entry[0]}: {entry[1]}", f"Key: {keys.get(entry, binding.key)}",
                    partial(app.run_action, binding.action, node)))
    return out


class PilotCommands(Provider):
    """The current screen's actions, plus switching between views."""

    def _commands(self) -> list[Command]:
        app = cast("PilotApp", self.app)  # only PilotApp lists this provider (its COMMANDS)
        views: list[str] = list(getattr(app, "views", []))
        out: list[Command] = [
            (f"Go to {VIEW_NAMES.get(view, view)}", f"Switch view ({i + 1})", partial(app.action_switch_view, view))
            for i, view in enumerate(views)
        ]
        return out + binding_commands(app, self.screen.active_bindings)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
