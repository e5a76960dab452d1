"""The footer: the keys that work on this screen, as many as fit, most used first, as one line of text.

Textual's ``Footer`` re-mounts a widget per key every time the bindings change (each screen switch, each focus
change), which costs tens of milliseconds per key press on a busy screen. Mouse use is optional here, so the hints
are a single repainted ``Text`` built from the same live bindings (``show=True`` ones).

Order is priority: the focused widget's keys first (what the analyst is working on), then the screen's, then the
app's. A key that does not fit is left out whole (never cut mid-word) and ``? Help`` is always kept, because help
lists every key.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget

Hint = tuple[str, str, bool]
"""(key as shown, description, enabled)."""

PINNED_ACTIONS = ("help", "app.help")
"""Always shown: the way to every other key."""

SEP = "  "


def hints(screen: Screen[object]) -> list[Hint]:
    """The shown bindings of ``screen``'s focus chain, focused widget first, one per action."""
    seen: set[str] = set()
    out: list[Hint] = []
    app = screen.app
    for _node, binding, enabled, _tooltip in screen.active_bindings.values():
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        out.append((app.get_key_display(binding), binding.description, enabled))
    return out


def fit_hints(entries: list[Hint], width: int, pinned: list[Hint] | None = None) -> list[Hint]:
    """The entries that fit in ``width`` cells, in order, with ``pinned`` ones always kept (at the end)."""
    pinned = pinned or []

    def cost(hint: Hint) -> int:
        return len(SEP) + len(hint[0]) + 1 + len(hint[1])

    room = width - 1 - sum(cost(h) for h in pinned)
    chosen: list[Hint] = []
    for hint in entries:
        if hint in pinned:
            continue
        if cost(hint) <= room:
            chosen.append(hint)
            room -= cost(hint)
    return chosen + pinned


def hints_text(entries: list[Hint], width: int, key_style: Style | str = "bold reverse") -> Text:
    """``key description`` pairs that fit in ``width`` cells."""
    pinned = [h for h in entries if h[1] == "Help"]
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    for key, description, enabled in fit_hints(entries, width, pinned):
        text.append(SEP if text else " ")
        text.append(key, style=key_style if enabled else "dim")
        text.append(f" {description}", style="" if enabled else "dim")
    return text


class KeyHints(Widget):
    """One line of key hints that follows the screen's bindings and the width (repaint only, no re-mount)."""

    DEFAULT_CSS = """
    KeyHints {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    COMPONENT_CLASSES = {"key-hints--key"}

    def __init__(self) -> None:
        super().__init__()
        self._entries: list[Hint] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self._bindings_changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        entries = hints(screen)
        if entries != self._entries:
            self._entries = entries
            self.refresh()

    def render(self) -> Text:
        return hints_text(self._entries, self.size.width,
                          key_style=self.get_component_rich_style("key-hints--key", partial=True))
