"""Typed updates the engines publish, and the tiny bus that carries them.

The engines know nothing about Textual: they call :meth:`UpdateBus.emit` with one of these frozen dataclasses, and
any number of subscribers (the Textual app, the headless JSON logger, tests) receive it synchronously in the
engine's event loop. A subscriber must be quick (post a message, append to a list); a subscriber that raises is
logged and dropped from that one delivery, never allowed to break the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pilot_tui.model import ThreatEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Update:
    """Base class: every update carries the wall-clock time it was emitted."""

    at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with a ``type`` key (used by ``--headless`` output)."""
        d = asdict(self)
        d["type"] = type(self).__name__
        return d


# -- oracle ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detected(Update):
    """A detection was committed to the outbox (with its seq)."""

    event: ThreatEvent


@dataclass(frozen=True, slots=True)
class SendResult(Update):
    """One batch went out (or failed). ``ack`` says how sure we are it was stored:

    ``stored`` (the orchestrator replied with the ids), ``daemon-ack`` (send-message acknowledged by the receiving
    daemon), ``unconfirmed`` (connect exited 0 with no reply — a seed-style ``pilotctl recv`` receiver; the best
    signal there is), ``none`` (failed).
    """

    transport: str
    peer: str
    events: int
    bytes: int
    ok: bool
    latency_ms: float
    ack: str
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    error_code: str = ""
    error: str = ""
    hint: str = ""
    retry_in_s: float = 0.0
    hedged: bool = False
    """The batch was sent a second time because the first send was slow; the first answer counted."""


@dataclass(frozen=True, slots=True)
class PeerState(Update):
    """Reachability of the orchestrator as the sender sees it.

    ``state`` is one of ``unknown``, ``reachable``, ``stalled`` (a send has been waiting for seconds: the peer's
    daemon restarting, a path re-keying), ``unreachable``, ``no-trust``, ``daemon-down``.
    """

    peer: str
    state: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OutboxState(Update):
    """Outbox depth after a change; ``paused`` when the analyst paused sending."""

    depth: int
    oldest_age_s: float | None
    paused: bool = False
    in_flight: int = 0
    """Batches on their way right now."""
    hedges: int = 0
    """Batches sent a second time so far because the first send was slow (tail control)."""


@dataclass(frozen=True, slots=True)
class SourceError(Update):
    """A log source could not be read (missing journalctl, permission denied…)."""

    source: str
    message: str


# -- orchestrator ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventsStored(Update):
    """New events were stored (duplicates are not in ``events``)."""

    events: tuple[ThreatEvent, ...]
    sender: str
    transport: str
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Quarantined(Update):
    """Payload lines were rejected and quarantined. ``reasons`` counts them by reason."""

    count: int
    reasons: dict[str, int] = field(default_factory=dict)
    sender: str = ""
    transport: str = ""


@dataclass(frozen=True, slots=True)
class ReceiverState(Update):
    """State of one supervised receiver (``stream`` or ``inbox``).

    ``kind`` names the backend (``sdk``, ``sim``, ``recv``, ``inbox``); ``state`` is ``starting``, ``running``,
    ``degraded`` (recv fallback: cannot reply; or the event store is failing — disk full, read-only, corrupt — and
    nothing it takes is acknowledged as stored: ``detail`` says why), ``restarting`` or ``error``.
    """

    name: str
    kind: str
    state: str
    detail: str = ""
    restarts: int = 0
    last_message_at: float | None = None


@dataclass(frozen=True, slots=True)
class SensorAlert(Update):
    """Something odd about a sensor: a seq ``gap`` (events that never arrived), an address ``mismatch``, or a
    ``seq_jump`` (a seq implausibly far ahead, likely forged: not taken as the high-water mark)."""

    sensor: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class MitigationUpdate(Update):
    """A mitigation request's progress: ``requested``, ``sent``, ``applied``, ``already_applied``, ``refused``,
    ``failed``, ``expired``."""

    request_id: str
    source_ip: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TriageChanged(Update):
    """Events changed triage state (acknowledged, false positive…)."""

    ids: tuple[str, ...]
    state: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Notice(Update):
    """A human-readable status line (``level``: info, warning, error) for a notification or the log."""

    level: str
    message: str


Subscriber = Callable[[Update], None]


class UpdateBus:
    """Fan-out of updates to subscribers, in the emitting loop."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def emit(self, update: Update) -> None:
        for callback in list(self._subscribers):
            try:
                callback(update)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("update subscriber %r failed on %s", callback, type(update).__name__)
