"""Small modal dialogs: a yes/no confirmation, a one-line note and a duration. They return their answer via ``dismiss``.

Texts shown here may include attacker-controlled values (an IP, an anomaly name); callers pass ``rich.text.Text``
objects, never markup strings.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from pilot_tui.store.events import MAX_NOTE_CHARS

"""Notes are stored with the event; keep them short."""


class ConfirmDialog(ModalScreen[bool]):
    """Ask before doing something with consequences (a firewall block, trusting a node)."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="yes"),
        Binding("n,escape", "answer(False)", "No", id="no"),
    ]

    def __init__(self, title: str, body: Text, *, confirm_label: str = "Yes") -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self._title), id="dialog-title")
            yield Static(self._body, id="dialog-body", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self._confirm_label} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class NoteDialog(ModalScreen[str | None]):
    """Ask for an optional note; Enter confirms (``""`` when left empty), Escape cancels (``None``)."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__()
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self._title), id="dialog-title")
            yield Static(self._body, id="dialog-body", markup=False)
            yield Input(placeholder="note (optional) — Enter to confirm, Esc to cancel", id="note",
                        max_length=MAX_NOTE_CHARS)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class DurationDialog(ModalScreen[int | None]):
    """Ask for a duration (``30m``, ``2h``, ``7d`` or seconds, read like the CLI's duration flags); Enter confirms
    with whole seconds, Escape cancels (``None``). Bad input is said inline and the dialog stays open."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, title: str, body: Text, default: str = "1h") -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self._title), id="dialog-title")
            yield Static(self._body, id="dialog-body", markup=False)
            yield Input(value=self._default, placeholder="30m, 2h, 7d — Enter to confirm, Esc to cancel",
                        id="duration", max_length=16)
            yield Static("", id="dialog-error", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        import argparse

        from pilot_tui.cli import duration

        event.stop()
        try:
            seconds = int(duration(event.value))
        except argparse.ArgumentTypeError as exc:
            self.query_one("#dialog-error", Static).update(Text(str(exc)))
            return
        if seconds < 1:
            self.query_one("#dialog-error", Static).update(Text("the duration must be at least 1s"))
            return
        self.dismiss(seconds)

    def action_cancel(self) -> None:
        self.dismiss(None)
