"""The orchestrator's side of mitigation: asking the executor to block an address, and taking its answers.

Kept apart from :class:`~pilot_tui.engines.orchestrator.OrchestratorEngine` (which receives, stores and triages
events) because it is where the orchestrator acts on another machine, and its rules are the security-relevant
ones: only the node a request went to may answer it, only for the address asked about, and only once per step
(:data:`NEXT_STATUSES`). The engine owns one :class:`Mitigator` and forwards the analyst's ``mitigate`` to it; the
wire format of both messages lives in :mod:`.mitigation`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pilot_tui.model import Rejected
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError, Timeout
from pilot_tui.pilot.names import ADDRESS_RE
from pilot_tui.store.events import EventStore

from . import updates as u
from .fanout import OutcomeNote, Publisher
from .mitigation import MitigationError, MitigationRequest, MitigationResult, message_kind, parse_result

if TYPE_CHECKING:
    from .orchestrator import OrchestratorConfig

NEXT_STATUSES = {
    "requested": ("applied", "already_applied", "refused", "failed"),
    "sent": ("applied", "already_applied", "refused", "failed"),
    "applied": ("expired",),
    "already_applied": ("expired",),
}
"""Which executor answer may follow a mitigation's current status (anything else is not an answer we wait for)."""

SetState = Callable[..., int]
"""``set_state(ids, state, by=…)``: the engine's triage write (stored, and shared with followers)."""
Quarantine = Callable[..., None]
"""``quarantine(rejected, sender=…, transport=…)``: the engine's quarantine of one message."""


class Mitigator:
    """Asks the configured executor to block an event's source IP and applies what it answers.

    ``config`` is the engine's own (read each time: ``exec_node``, ``analyst``, ``mitigation_duration_s``);
    ``set_state`` and ``quarantine`` are the engine's, so a mitigation changes an event's state and quarantines a
    forged answer exactly as triage and the receivers do.
    """

    def __init__(self, pilotctl: Pilotctl, store: EventStore, bus: u.UpdateBus, config: OrchestratorConfig, *,
                 set_state: SetState, quarantine: Quarantine, publisher: Publisher | None = None) -> None:
        self.pilotctl = pilotctl
        self.store = store
        self.bus = bus
        self.config = config
        self.publisher = publisher
        self._set_state = set_state
        self._quarantine = quarantine
        self._exec_addr: str | None = None

    @property
    def _analyst(self) -> str:
        return self.config.analyst or "analyst"

    async def mitigate(self, event_id: str, *, duration_s: int | None = None, wait_s: float = 3.0) -> str:
        """Ask the executor to block the event's source IP. Returns the request id; the outcome arrives as a
        :class:`~pilot_tui.engines.updates.MitigationUpdate` (at once if the executor answers within ``wait_s``,
        else when its reply reaches our inbox). Raises ``ValueError`` when mitigation is impossible."""
        if not self.config.exec_node:
            raise ValueError("no executor configured: start the orchestrator with --exec-node HOST")
        stored = self.store.get(event_id)
        if stored is None:
            raise ValueError(f"unknown event {event_id}")
        ip = stored.event.source_ip
        request = MitigationRequest.new(
            "block", ip, duration_s=duration_s or self.config.mitigation_duration_s, event_id=event_id,
            reason=stored.event.anomaly, requested_by=self._analyst,
        )
        self._status(request.request_id, event_id, ip, "requested", f"asking {self.config.exec_node}")
        self._set_state([event_id], "mitigating", by=self._analyst)
        try:
            target = await self._exec_address()
        except PilotError as exc:
            self._status(request.request_id, event_id, ip, "failed",
                         f"cannot find {self.config.exec_node}: {exc.one_line()}")
            self._set_state([event_id], "new", by=self._analyst)
            return request.request_id
        self.store.record_mitigation_target(request.request_id, target)
        try:
            ack = await self.pilotctl.send_message(target, request.encode(), msg_type="json", wait=wait_s)
        except Timeout:
            self._status(request.request_id, event_id, ip, "sent", "delivered; waiting for the executor")
            return request.request_id
        except PilotError as exc:
            self._status(request.request_id, event_id, ip, "failed", exc.one_line())
            self._set_state([event_id], "new", by=self._analyst)
            return request.request_id
        if ack.reply is not None:
            data = ack.reply.get("data")
            raw = str(data).encode() if data is not None else b""
            try:
                result = parse_result(raw)
            except MitigationError:
                pass  # not a result we understand: the inbox copy of the reply gets another chance
            else:
                self.take_result(result, sender=str(ack.reply.get("from") or ""), raw=raw)
                return request.request_id
        self._status(request.request_id, event_id, ip, "sent", "delivered; waiting for the executor")
        return request.request_id

    async def _exec_address(self) -> str:
        """The exec node's Pilot address (resolved once per run when given as a hostname): requests go there, and
        only an answer from there counts."""
        exec_node = self.config.exec_node or ""
        if self._exec_addr is None:
            self._exec_addr = exec_node if ADDRESS_RE.match(exec_node) else str(
                (await self.pilotctl.find(exec_node)).get("address") or exec_node)
        return self._exec_addr

    def read_result(self, data: bytes) -> MitigationResult | None:
        """The executor's answer in an inbox message, or ``None`` when the message is not one (events, most
        likely). A message that claims to be an answer but does not parse is said once, as a warning."""
        if not data.strip() or message_kind(data) != "result":
            return None
        try:
            return parse_result(data)
        except MitigationError as exc:
            self.bus.emit(u.Notice(at=time.time(), level="warning", message=f"bad mitigation result: {exc}"))
            return None

    def take_result(self, result: MitigationResult, *, sender: str, raw: bytes = b"") -> None:
        """Take an executor's answer — only from the node the request went to, for a request we made, for its IP,
        and once per step (``requested``/``sent`` → an outcome; an applied block → ``expired``). Anything else is
        quarantined with the reason: a trusted peer that reads a request id off the feed must not be able to mark an
        event mitigated. Raises :class:`~pilot_tui.store.db.StoreFault`; safe to repeat."""
        known = self.store.mitigation(result.request_id)
        if known and known["status"] == result.status and known["detail"] == result.detail:
            return  # the same answer again: once through --wait, once more through the inbox
        target = self.store.mitigation_target(result.request_id)
        problem = ""
        if known is None or target is None:
            problem = f"answers request {result.request_id[:40]}, which this orchestrator never sent"
        elif sender.lower() != target.lower():
            problem = f"came from {sender or 'an unknown sender'}, but request {result.request_id} went to {target}"
        elif result.ip != known["source_ip"]:
            problem = f"is for {result.ip}, but request {result.request_id} was for {known['source_ip']}"
        elif result.status not in NEXT_STATUSES.get(known["status"], ()):
            problem = f"says {result.status!r} after {known['status']!r} for request {result.request_id}"
        if problem:
            self._quarantine(Rejected(0, "unexpected_result", f"mitigation result {problem}", raw or result.encode()),
                             sender=sender, transport="message")
            self.bus.emit(u.Notice(at=time.time(), level="warning", message=f"ignored a mitigation result that "
                                   f"{problem}"))
            return
        assert known is not None
        event_id = known["event_id"]
        # the event's state first: if the store fails in between, the answer is taken again in full (the status
        # written last is what makes a repeat of the same answer a no-op above)
        if event_id and result.status in ("applied", "already_applied"):
            self._set_state([event_id], "mitigated", by=f"executor:{result.executor}")
        elif event_id and result.status in ("refused", "failed"):
            self._set_state([event_id], "new", by=f"executor:{result.executor}")
        self._status(result.request_id, event_id, result.ip, result.status, result.detail)

    def take_followed(self, note: OutcomeNote) -> None:
        """An outcome the followed orchestrator published (already verified as signed by it): shown, not re-shared."""
        self.store.record_mitigation(note.request_id, note.event_id, note.source_ip, note.status, note.detail)
        self.bus.emit(u.MitigationUpdate(at=time.time(), request_id=note.request_id, source_ip=note.source_ip,
                                         status=note.status, detail=note.detail))

    def _status(self, request_id: str, event_id: str, ip: str, status: str, detail: str) -> None:
        self.store.record_mitigation(request_id, event_id, ip, status, detail)
        self.bus.emit(u.MitigationUpdate(at=time.time(), request_id=request_id, source_ip=ip, status=status,
                                         detail=detail))
        if self.publisher is not None:
            self.publisher.offer_outcome(request_id, event_id, ip, status, detail)
