"""The footer: the keys that matter on this screen, as one line of text.

Textual's ``Footer`` re-mounts a widget per key every time the bindings change (each screen switch, each focus
change), which costs tens of milliseconds per key press on a busy screen. Mouse use is optional here, so the hints
are a single repainted ``Text`` built from the same live bindings (``show=True`` ones), in the same order.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget


def hints_text(screen: Screen[object], key_style: str = "bold reverse", sep: str = "  ") -> Text:
    """``key description`` pairs for every shown, enabled binding of ``screen``'s focus chain."""
    seen: set[str] = set()
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    app = screen.app
    for _node, binding, enabled, _tooltip in screen.active_bindings.values():
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        text.append(sep if text else " ")
        text.append(app.get_key_display(binding), style=key_style if enabled else "dim")
        text.append(f" {binding.description}", style="" if enabled else "dim")
    return text


class KeyHints(Widget):
    """One line of key hints that follows the screen's bindings (repaint only, no re-mount)."""

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

    def __init__(self) -> None:
        super().__init__()
        self._text = Text("")

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self._bindings_changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        text = hints_text(screen, key_style=self.get_component_rich_style("key-hints--key", partial=True))
        if text.plain != self._text.plain or text.spans != self._text.spans:
            self._text = text
            self.refresh()

    COMPONENT_CLASSES = {"key-hints--key"}

    def render(self) -> Text:
        return self._text
