"""From engine callbacks to Textual: a bounded buffer per engine, drained by the app on a timer.

Engines call subscribers synchronously in their loop (the app's loop), possibly thousands of times a second during
a flood. The bridge therefore does almost nothing per update: it notes the update's class, counts stored events and
keeps the discrete updates a view lists (send results, notices, mitigation progress…) in a bounded deque. The app
drains every bridge at most ~10 times a second and posts one :class:`~pilot_tui.ui.messages.EngineUpdates`.
No Textual import here, so plain tests cover it.

Update kinds are the update classes themselves, never their names: renaming an update dataclass then fails at
import instead of silently leaving a view without refreshes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines import updates as u

COALESCED: frozenset[type[u.Update]] = frozenset({
    u.EventsStored, u.Detected, u.ReceiverState, u.Quarantined, u.OutboxState, u.TriageChanged,
    xu.RequestReceived, xu.ExecutorState, xu.ReplySent,
})
"""Update classes whose every instance need not be shown: the view re-reads the engine's current state instead."""

TRIAGE_KINDS: frozenset[type[u.Update]] = frozenset({u.TriageChanged, u.MitigationUpdate})
"""Updates after which a stored event's triage state (and so its row) may have changed."""

MAX_BUFFERED = 256
"""Discrete updates kept between two ticks; older ones are dropped (and counted) beyond this."""


class UpdateBridge:
    """Collects one engine's updates between UI ticks. Call it as a bus subscriber."""

    def __init__(self, engine: str, maxlen: int = MAX_BUFFERED) -> None:
        self.engine = engine
        self._updates: deque[Any] = deque(maxlen=maxlen)
        self._kinds: set[type] = set()
        self._new_events = 0
        self._dropped = 0
        self.total = 0
        """Updates seen since start (for the bench and tests)."""

    def __call__(self, update: Any) -> None:
        """Bus callback: O(1), never raises for an unknown update type."""
        self.total += 1
        kind = type(update)
        self._kinds.add(kind)
        if kind is u.EventsStored:
            self._new_events += len(update.events)
            return
        if kind in COALESCED:
            return
        if len(self._updates) == self._updates.maxlen:
            self._dropped += 1
        self._updates.append(update)

    @property
    def pending(self) -> bool:
        """True when something arrived since the last :meth:`drain`."""
        return bool(self._kinds)

    def drain(self) -> tuple[frozenset[type], tuple[Any, ...], int, int] | None:
        """``(kinds, updates, new_events, dropped)`` since the last call, or ``None`` when nothing happened."""
        if not self._kinds:
            return None
        out = (frozenset(self._kinds), tuple(self._updates), self._new_events, self._dropped)
        self._kinds.clear()
        self._updates.clear()
        self._new_events = 0
        self._dropped = 0
        return out
