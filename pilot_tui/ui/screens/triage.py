"""Triage and mitigation intents shared by the feed and the demo layout.

The mixin asks (a note, a confirmation) and then calls the orchestrator engine in a worker; it decides nothing
itself. The host screen provides ``orchestrator`` (the engine) and ``table`` (a :class:`FeedTable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from pilot_tui.store.events import StoredEvent

from ..format import safe
from .dialogs import ConfirmDialog, NoteDialog

if TYPE_CHECKING:
    from pilot_tui.engines.orchestrator import OrchestratorEngine

    from ..widgets.feed_table import FeedTable


class TriageActions:
    """``a`` acknowledge, ``f`` false positive, ``o`` reopen, ``m`` mitigate — on the event under the cursor."""

    if TYPE_CHECKING:  # provided by the host screen
        orchestrator: OrchestratorEngine
        app: Any

        @property
        def table(self) -> FeedTable: ...

        def notify(self, message: str, **kwargs: Any) -> None: ...

        def run_intent(self, name: str, work: Any) -> None: ...

    def _target(self) -> StoredEvent | None:
        current = self.table.current
        if current is None:
            self.notify("No event selected.", severity="warning", timeout=3)
        return current

    def _describe(self, stored: StoredEvent) -> Text:
        event = stored.event
        text = Text(no_wrap=False, end="")
        text.append(safe(event.source_ip), style="bold")
        text.append(f"  {safe(event.anomaly)}  {event.severity}  from {safe(event.sensor or '—')}")
        return text

    def action_acknowledge(self) -> None:
        self._ask_note("acknowledge", "Acknowledge event")

    def action_false_positive(self) -> None:
        self._ask_note("false_positive", "Mark as false positive")

    def _ask_note(self, what: str, title: str) -> None:
        stored = self._target()
        if stored is None:
            return
        event_id = stored.event.id

        def done(note: str | None) -> None:
            if note is None:
                return
            method = self.orchestrator.acknowledge if what == "acknowledge" else self.orchestrator.false_positive

            async def work() -> None:
                method([event_id], note or None)

            self.run_intent(what.replace("_", " "), work())

        self.app.push_screen(NoteDialog(title, self._describe(stored)), done)

    def action_reopen(self) -> None:
        stored = self._target()
        if stored is None:
            return
        event_id = stored.event.id

        async def work() -> None:
            self.orchestrator.reopen([event_id])

        self.run_intent("reopen", work())

    def action_mitigate(self) -> None:
        stored = self._target()
        if stored is None:
            return
        self.ask_mitigate(stored)

    def ask_mitigate(self, stored: StoredEvent) -> None:
        """Confirm, then ask the engine to have the executor block ``stored``'s source IP (in a worker)."""
        exec_node = self.orchestrator.config.exec_node
        event_id = stored.event.id

        async def work() -> None:
            await self.orchestrator.mitigate(event_id)

        if not exec_node:
            self.run_intent("mitigate", work())  # the engine explains that no executor is configured
            return
        body = self._describe(stored)
        hours = self.orchestrator.config.mitigation_duration_s / 3600
        body.append(f"\n\nAsk {safe(exec_node)} to block this address for {hours:g} h.")

        def done(yes: bool | None) -> None:
            if yes:
                self.run_intent("mitigate", work())

        self.app.push_screen(ConfirmDialog("Block source IP?", body, confirm_label="Block"), done)

