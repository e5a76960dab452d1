"""The threat orchestrator: always-on receivers, validation, dedup, triage and delegated mitigation.

Two receivers run as supervised tasks that restart at once when they end for any reason:

* **stream** — Pilot port 1000 (seed compatible) through :func:`pilot_tui.pilot.stream.open_stream_listener`; each
  connection's payload is stored and answered with the stored ids so the sender knows exactly what to resend;
* **inbox** — ``send-message`` arrivals in the daemon's inbox, which we learn the sender's Pilot address from.

Two optional ones fan the feed out to other analysts (:mod:`.fanout`): **publish** sends every stored event to a
broker node's event stream, and **follow** (``pilot-tui follow``) subscribes to one instead of listening.

Everything is decoded by :mod:`pilot_tui.model`; what fails validation goes to quarantine with its reason. The
engine imports nothing from Textual: the UI and the headless logger subscribe to :attr:`bus`.

When the event store cannot be written (disk full, made read-only, corrupt pages) nothing is acknowledged that was not
stored: a stream batch is answered "not stored" with the reason (the sender keeps it and resends), an inbox message
is held and retried and never marked processed, so never pruned. The receivers show ``degraded`` with the reason and
one notice says so; the first write that succeeds again turns them back and says that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pilot_tui.aiotime import within
from pilot_tui.backoff import Backoff
from pilot_tui.model import Rejected, decode_payload
from pilot_tui.pilot.driver import InboxMessage, Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.pilot.inbox import InboxWatcher
from pilot_tui.pilot.stream import StreamConn, open_stream_listener, read_payload
from pilot_tui.store.db import StoreFault, until_stored
from pilot_tui.store.events import EventStore, IngestResult

from . import updates as u
from .fanout import DEFAULT_TOPIC, KeyPin, OutcomeNote, Publisher, Unverified, follow, parse_shared
from .fault_episode import FaultEpisode
from .mitigation import MitigationResult, message_kind
from .orchestrator_mitigation import Mitigator
from .queries import OrchestratorQuery
from .receiver import build_ack, build_unstored, payload_complete, whole_lines

log = logging.getLogger(__name__)

RECEIVER_OF = {"stream": "stream", "message": "inbox", "subscribe": "follow"}
"""Which receiver a payload's transport arrived through (its "last message" age is shown)."""

STORE_FED = ("stream", "inbox", "follow")
"""Receivers that store what they take: shown ``degraded`` while the event store is failing."""

@dataclass(slots=True)
class OrchestratorConfig:
    """Settings of one orchestrator (flags and the TOML config fill this)."""

    port: int = 1000
    """Pilot port of the stream receiver (the seed uses 1000)."""
    stream: bool = True
    """Run the port receiver."""
    inbox: bool = True
    """Ingest ``send-message`` arrivals from the daemon's inbox."""
    stream_backend: str = "auto"
    """``auto`` (sim for pilot-sim, else the SDK, else a recv loop), or force ``sdk``/``sim``/``recv``."""
    exec_node: str | None = None
    """Hostname or address of the executor that applies blocks; mitigation is off without it."""
    mitigation_duration_s: int = 3600
    """How long a block asked for from the UI lasts."""
    analyst: str = ""
    """Who triage actions are recorded as (default: the login name)."""
    inbox_poll_s: float = 1.0
    """Inbox polling interval (the directory watch usually wakes us sooner)."""
    idle_gap_s: float = 0.5
    """How long a stream payload without framing may pause before we take it as complete."""
    max_connections: int = 32
    """Stream connections handled at once. When all are taken, a new connection pushes out the oldest one that has
    sent nothing yet (an idle peer must not lock senders out); if every one is busy receiving, the new one waits up
    to ``first_byte_timeout_s`` for a slot and is then closed unanswered (its sender resends)."""
    first_byte_timeout_s: float = 2.0
    """A stream connection that sends nothing for this long after being accepted is closed: ``connect`` writes
    right after dialing, and silent connections must not hold readers for the whole read timeout."""
    inbox_keep_s: float = 86400.0
    """Inbox messages already stored are cleared from the daemon's inbox once they are this old."""
    inbox_prune_every_s: float = 600.0
    """How often (at most) the inbox is pruned."""
    publish_to: str | None = None
    """Broker node to publish every stored event to, for followers (``--publish``); off when ``None``."""
    follow: str | None = None
    """Broker node to subscribe to instead of receiving from oracles (``pilot-tui follow``)."""
    topic: str = DEFAULT_TOPIC
    """Event-stream topic of the fan-out, both ways."""
    gap_grace_s: float = 10.0
    """A seq gap is reported only if still open this long after it appeared: oracles keep several batches in
    flight, so a later batch can arrive before an earlier one."""


class OrchestratorEngine:
    """Runs the receivers and applies analyst intents. One instance per orchestrator process."""

    follow_pin: KeyPin
    """The orchestrator key a follower accepts: set by ``pilot-tui follow`` before it runs, else created on first
    use (read with ``__dict__.setdefault``, so an unset one is never an AttributeError)."""

    def __init__(self, pilotctl: Pilotctl, store: EventStore, config: OrchestratorConfig | None = None) -> None:
        self.pilotctl = pilotctl
        self.store = store
        self.config = config or OrchestratorConfig()
        if not self.config.analyst:
            with contextlib.suppress(Exception):
                self.config.analyst = getpass.getuser()
        self.bus = u.UpdateBus()
        self.receivers: dict[str, u.ReceiverState] = {}
        self._slots = asyncio.Semaphore(self.config.max_connections)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gap_checks: set[asyncio.TimerHandle] = set()
        self.store_episode = FaultEpisode(
            self._say, "event store failing: {fault}; nothing is acknowledged as stored until it works again — "
            "senders keep their events and resend", "event store writable again after {seconds:.0f} s; receivers "
            "back to normal")
        self._own: dict[str, tuple[str, str]] = {}
        """Each receiver's own (state, detail), shown again once the store works after a fault."""
        self.publisher = (
            Publisher(pilotctl, self.config.publish_to, self.config.topic, self._reporter("publish"))
            if self.config.publish_to else None
        )
        self.mitigations = Mitigator(pilotctl, store, self.bus, self.config, set_state=self._set_state,
                                     quarantine=self._quarantine, publisher=self.publisher)
        """Requests to the executor and its answers (``mitigate`` forwards to it)."""
        self.query = OrchestratorQuery(store)
        """What a view reads (read-only; views never touch the store itself)."""

    # -- running ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the configured receivers until cancelled."""
        jobs = []
        if self.config.stream:
            jobs.append(self._supervise("stream", self._stream_receiver))
        if self.config.inbox:
            jobs.append(self._supervise("inbox", self._inbox_receiver))
        if self.publisher is not None:
            jobs.append(self._supervise("publish", self.publisher.run))
        if self.config.follow:
            jobs.append(self._supervise("follow", self._follow_receiver))
        try:
            await asyncio.gather(*jobs)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for handle in self._gap_checks:
                handle.cancel()
            self._gap_checks.clear()

    def _reporter(self, name: str) -> Any:
        return lambda **changes: self._set_receiver(name, **changes)

    def _set_receiver(self, name: str, **changes: Any) -> None:
        old = self.receivers.get(name) or u.ReceiverState(at=time.time(), name=name, kind="", state="starting")
        own_state, own_detail = self._own.get(name, (old.state, old.detail))
        own = (changes.pop("state", own_state), changes.pop("detail", own_detail))
        self._own[name] = own
        fields = {k: getattr(old, k) for k in ("name", "kind", "restarts", "last_message_at")}
        fields.update(changes)
        if self.store_fault is not None and name in STORE_FED and own[0] in ("running", "degraded"):
            fields.update(state="degraded", detail=f"cannot store: {self.store_fault}")  # what it takes is not kept
        else:
            fields.update(state=own[0], detail=own[1])
        state = u.ReceiverState(at=time.time(), **fields)
        self.receivers[name] = state
        self.bus.emit(state)

    async def _supervise(self, name: str, body: Any) -> None:
        """Run ``body`` forever: restart at once when it ends, back off only while it keeps failing fast.

        A :class:`StoreFault` is the store's, not the receiver's: it shows as ``degraded`` (not a restart) and the
        receiver comes back after the same back-off."""
        backoff = Backoff(0.4, 5.0, immediate=1)
        while True:
            started = time.monotonic()
            detail: str | None
            try:
                await body()
                detail = "receiver ended"
            except asyncio.CancelledError:
                raise
            except StoreFault as fault:
                self._store_failed(fault)
                detail = None
            except PilotError as exc:
                detail = exc.one_line()
            except Exception as exc:  # never let a receiver die for good
                detail = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started >= 5:
                backoff.reset()
            delay = backoff.next_delay()
            if detail is not None:
                restarts = self.receivers[name].restarts + 1 if name in self.receivers else 1
                self._set_receiver(name, state="restarting", detail=detail, restarts=restarts)
            await asyncio.sleep(delay)

    @property
    def store_fault(self) -> str | None:
        """Why the event store is failing (one line), or ``None`` while it works."""
        return self.store_episode.fault

    def _say(self, level: str, message: str) -> None:
        self.bus.emit(u.Notice(at=time.time(), level=level, message=message))

    def _store_failed(self, fault: StoreFault) -> None:
        """The event store refused a write (or a read): show every receiver that stores as ``degraded`` with the
        reason, and say so once per episode (not once per payload: a flood would print thousands of lines)."""
        if self.store_episode.failed(fault):
            self._refresh_store_fed()

    def _store_ok(self) -> None:
        """A write succeeded: when the store was failing, turn the receivers back and say so (once)."""
        if self.store_episode.ok():
            self._refresh_store_fed()

    def _refresh_store_fed(self) -> None:
        for name in STORE_FED:
            if name in self.receivers:
                self._set_receiver(name)

    async def _follow_receiver(self) -> None:
        assert self.config.follow is not None
        # the orchestrator key this follower accepts; `pilot-tui follow` sets one kept in its state dir (and --key),
        # else the first valid signed message pins its key for this process only
        pin: KeyPin = self.__dict__.setdefault("follow_pin", KeyPin())
        if pin.on_pin is None:
            pin.on_pin = lambda fp: self.bus.emit(u.Notice(
                at=time.time(), level="warning",
                message=f"pinned orchestrator key {fp} — check it with the orchestrator's operator"))
            if pin.fingerprint:  # said once, not on every restart of this receiver
                self.bus.emit(u.Notice(at=time.time(), level="info",
                                       message=f"accepting only what orchestrator key {pin.fingerprint} signed"))
        await follow(self.pilotctl, self.config.follow, self.config.topic, self._ingest_followed,
                     self._reporter("follow"))

    def _ingest_followed(self, data: bytes) -> None:
        """A payload from the followed broker: events, or a state change or mitigation outcome on the orchestrator.

        Only what the pinned orchestrator key signed is applied: anyone who can publish on the broker could forge the
        rest. Each refused message is quarantined with its reason (unsigned, bad_signature, wrong_key). While the
        store fails the message is skipped (the broker does not resend; the followed orchestrator keeps the record)
        and the subscription stays up."""
        try:
            self._apply_followed(data)
        except StoreFault as fault:
            self._store_failed(fault)
        else:
            self._store_ok()

    def _apply_followed(self, data: bytes) -> None:
        pin: KeyPin = self.__dict__.setdefault("follow_pin", KeyPin())
        try:
            data = pin.open(data)
        except Unverified as exc:
            self._quarantine(Rejected(0, exc.reason, exc.detail, data), sender="", transport="subscribe")
            return
        try:
            note = parse_shared(data)
        except ValueError as exc:
            self._quarantine(Rejected(0, "bad_shared", str(exc), data), sender="", transport="subscribe")
            return
        if note is None:
            self.ingest_payload(data, sender="", transport="subscribe")
            return
        self._set_receiver("follow", last_message_at=time.time())
        if isinstance(note, OutcomeNote):
            self.mitigations.take_followed(note)
            return
        self.store.set_state(note.ids, note.state, note=note.note, by=f"{note.by} via {self.config.follow}")
        self.bus.emit(u.TriageChanged(at=time.time(), ids=note.ids, state=note.state, note=note.note))

    # -- stream receiver -------------------------------------------------------------------------------------

    async def _stream_receiver(self) -> None:
        previous = self.receivers.get("stream")
        last = f" (last error: {previous.detail})" if previous and previous.state == "restarting" else ""
        self._set_receiver("stream", state="starting", detail=f"binding port {self.config.port}{last}")
        # one I/O thread per connection handled at once (plus slack for evicted conns still unwinding), so reads
        # never queue behind each other
        listener = await open_stream_listener(self.pilotctl, self.config.port, backend=self.config.stream_backend,
                                              io_threads=self.config.max_connections + 8)
        silent: dict[StreamConn, None] = {}
        try:
            state = "running" if listener.can_reply else "degraded"
            self._set_receiver("stream", kind=listener.kind, state=state, detail=listener.describe())
            while True:
                conn = await listener.accept()
                # Accepting never waits on a silent peer: when every slot is taken, the oldest connection that
                # has sent nothing yet is closed to make room (its read ends at once, its task frees the slot).
                if self._slots.locked() and silent:
                    oldest = next(iter(silent))
                    del silent[oldest]
                    await oldest.close()
                try:
                    await within(self._slots.acquire(), self.config.first_byte_timeout_s)
                except TimeoutError:  # every slot is busy with a peer that is sending: refuse this one
                    await conn.close()
                    continue
                silent[conn] = None
                task = asyncio.create_task(self._handle_conn(conn, silent))
                self._tasks.add(task)
                task.add_done_callback(self._conn_done)
        finally:
            await listener.close()

    def _conn_done(self, task: asyncio.Task[Any]) -> None:
        """Free the connection's slot however it ended (done, evicted, cancelled); a connection that failed is one
        log line, never asyncio's "Task exception was never retrieved" traceback."""
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("stream connection failed: %s: %s", type(exc).__name__, exc)

    async def _handle_conn(self, conn: StreamConn, silent: dict[StreamConn, None] | None = None) -> None:
        """Read, store and acknowledge one connection; ``silent`` lists the accepted conns not yet sending
        (insertion order = oldest first), which the accept loop may close to make room."""

        def sending() -> None:
            if silent is not None:
                silent.pop(conn, None)

        try:
            payload, why = await read_payload(conn, payload_complete, idle_gap=self.config.idle_gap_s,
                                              first_byte_timeout=self.config.first_byte_timeout_s,
                                              on_first_byte=sending)
            sending()
            if why != "complete":
                payload = whole_lines(payload)
            if not payload.strip():
                return
            try:
                reply = build_ack(payload, self.ingest_payload(payload, sender="", transport="stream"))
            except StoreFault as fault:  # say so: a silent close would in the end pass for "delivered"
                reply = build_unstored(payload, f"orchestrator cannot store events: {fault.reason}")
            if conn.can_reply:
                with contextlib.suppress(Exception):
                    await conn.write(reply)
        finally:
            sending()
            await conn.close()

    # -- inbox receiver --------------------------------------------------------------------------------------

    async def _inbox_receiver(self) -> None:
        watcher = InboxWatcher(self.pilotctl, seen=self.store.inbox_seen, poll_interval=self.config.inbox_poll_s)
        self._set_receiver("inbox", kind="inbox", state="running", detail="watching the daemon inbox")
        pruner = asyncio.create_task(self._prune_inbox(watcher))
        try:
            async for msg in watcher.messages():
                if msg.needs_read:  # a binary / invalid-UTF-8 body: only `inbox read` shows it
                    with contextlib.suppress(PilotError):
                        msg = await self.pilotctl.inbox_read(msg.inbox_id or msg.message_id)
                data = msg.body()
                result = self.mitigations.read_result(data)
                # held until stored and marked processed, however long the store fails: it is never pruned unstored
                await until_stored(functools.partial(self._take_message, msg, data, result), self._store_failed)
                self._store_ok()
        finally:
            # wait for the pruner to finish cancelling: a pilotctl run it had going must be reaped now, while the
            # loop still runs, not garbage-collected after it closed
            pruner.cancel()
            await asyncio.gather(pruner, return_exceptions=True)
            await watcher.close()

    def _take_message(self, msg: InboxMessage, data: bytes, result: MitigationResult | None) -> None:
        """Store one inbox message (events, a mitigation result, or a quarantine row) and mark it processed.

        Raises :class:`StoreFault`; the caller tries again, so every write here is safe to repeat (events dedup by
        id, the same mitigation answer twice is ignored)."""
        if not data.strip() and msg.size:
            self._quarantine(Rejected(0, "unreadable", f"inbox message {msg.message_id} of {msg.size} "
                                      "bytes could not be read", b""), sender=msg.sender, transport="message")
        elif result is not None:
            self.mitigations.take_result(result, sender=msg.sender, raw=data)
        elif message_kind(data) != "result":
            self.ingest_payload(data, sender=msg.sender, transport="message")
        self.store.mark_inbox_seen(msg.message_id)

    async def _prune_inbox(self, watcher: Any) -> None:
        """Clear stored messages from the daemon's inbox once they are old (never one not yet stored)."""
        while True:
            await asyncio.sleep(self.config.inbox_prune_every_s)
            try:
                await watcher.prune(self.config.inbox_keep_s)
            except PilotError as exc:
                self.bus.emit(u.Notice(at=time.time(), level="warning", message=f"inbox prune failed: {exc.one_line()}"))
            except StoreFault as fault:  # cannot tell what was processed: prune nothing this time
                self._store_failed(fault)

    def _quarantine(self, rejected: Rejected, *, sender: str, transport: str) -> None:
        """Quarantine one message that is not a payload of events (unreadable, a broken shared note)."""
        self.store.ingest([], [rejected], sender=sender, transport=transport)
        self.bus.emit(u.Quarantined(at=time.time(), count=1, reasons={rejected.reason: 1}, sender=sender,
                                    transport=transport))

    # -- shared ingest -----------------------------------------------------------------------------------------

    def ingest_payload(self, payload: bytes, *, sender: str, transport: str) -> IngestResult:
        """Decode, validate, dedup and store one payload; publish what happened. Never raises on bad input; raises
        :class:`StoreFault` when the store cannot take it (then nothing of it was stored, and the receivers show
        it)."""
        decoded = decode_payload(payload)  # bounded: a flood of lines is refused whole (MAX_PAYLOAD_LINES)
        try:
            result = self.store.ingest(decoded.events, decoded.rejected, sender=sender, transport=transport,
                                       payload=payload)
        except StoreFault as fault:
            self._store_failed(fault)
            raise
        self._store_ok()
        now = time.time()
        self._set_receiver(RECEIVER_OF.get(transport, transport), last_message_at=now)
        if result.stored and self.publisher is not None:
            self.publisher.offer(result.stored)
        if result.stored or result.duplicates:
            self.bus.emit(
                u.EventsStored(at=now, events=tuple(result.stored), sender=sender, transport=transport,
                               duplicates=len(result.duplicates))
            )
        if result.rejected:
            reasons = Counter(r.reason for r in result.rejected)
            self.bus.emit(u.Quarantined(at=now, count=len(result.rejected), reasons=dict(reasons), sender=sender,
                                        transport=transport))
        for sensor, first, last in result.gaps:
            self._gap_seen(sensor, first, last)
        for sensor, bound, got in result.mismatches:
            self.bus.emit(u.SensorAlert(at=now, sensor=sensor, kind="mismatch",
                                        detail=f"bound to {bound}, event came from {got}"))
        for sensor, high, seq in result.seq_jumps:
            self.bus.emit(u.SensorAlert(at=now, sensor=sensor, kind="seq_jump",
                                        detail=f"seq {seq} jumps from {high}; not taken as the newest"))
        return result

    def _gap_seen(self, sensor: str, first: int, last: int) -> None:
        """Report a seq gap once :attr:`OrchestratorConfig.gap_grace_s` has passed and it is still (partly) open;
        at once when no event loop runs (a synchronous caller)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._report_gap(sensor, first, last)
            return
        handle: asyncio.TimerHandle | None = None

        def check() -> None:
            self._gap_checks.discard(handle)
            self._report_gap(sensor, first, last)

        handle = loop.call_later(self.config.gap_grace_s, check)
        self._gap_checks.add(handle)

    def _report_gap(self, sensor: str, first: int, last: int) -> None:
        try:
            missing = self.store.missing_between(sensor, first, last)
        except StoreFault as fault:  # a timer callback: an exception here would be a traceback in the log
            self._store_failed(fault)
            return
        if missing <= 0:
            return
        span = f"seq {first}" if first == last else f"seq {first}-{last}"
        detail = f"{span} missing" if missing == last - first + 1 else f"{missing} of {span} missing"
        self.bus.emit(u.SensorAlert(at=time.time(), sensor=sensor, kind="gap", detail=detail))

    # -- analyst intents ---------------------------------------------------------------------------------------

    def acknowledge(self, ids: list[str], note: str | None = None) -> int:
        return self._triage(ids, "acknowledged", note)

    def false_positive(self, ids: list[str], note: str | None = None) -> int:
        return self._triage(ids, "false_positive", note)

    def reopen(self, ids: list[str]) -> int:
        return self._triage(ids, "new", None)

    def triage_source(self, source_ip: str, state: str, note: str | None = None) -> int:
        """Acknowledge (``acknowledged``) or dismiss (``false_positive``) every *new* event of one source IP — a
        whole incident at once. Events already handled or waiting on a mitigation keep their state. Returns how
        many changed."""
        if state not in ("acknowledged", "false_positive"):
            raise ValueError(f"an incident can be acknowledged or marked false positive, not {state!r}")
        ids = self.store.ids_from_source(source_ip)
        return self._triage(ids, state, note) if ids else 0

    def _triage(self, ids: list[str], state: str, note: str | None) -> int:
        changed = self._set_state(ids, state, by=self.config.analyst or "analyst", note=note)
        self.bus.emit(u.TriageChanged(at=time.time(), ids=tuple(ids), state=state, note=note))
        return changed

    def _set_state(self, ids: list[str], state: str, *, by: str, note: str | None = None) -> int:
        """Store a state change and, with ``--publish``, share it with followers."""
        changed = self.store.set_state(ids, state, note=note, by=by)
        if self.publisher is not None and ids:
            self.publisher.offer_triage(ids, state, note, by)
        return changed

    async def mitigate(self, event_id: str, *, duration_s: int | None = None, wait_s: float = 3.0) -> str:
        """Ask the executor to block the event's source IP (see :meth:`Mitigator.mitigate`); returns the request
        id. Raises ``ValueError`` when mitigation is impossible."""
        return await self.mitigations.mitigate(event_id, duration_s=duration_s, wait_s=wait_s)

    # -- trust -------------------------------------------------------------------------------------------------

    async def pending_handshakes(self) -> list[dict[str, Any]]:
        return await self.pilotctl.pending()

    async def approve(self, node_id: int) -> None:
        await self.pilotctl.approve(node_id)
        self.bus.emit(u.Notice(at=time.time(), level="info", message=f"approved node {node_id}"))

    async def reject(self, node_id: int, reason: str = "") -> None:
        await self.pilotctl.reject(node_id, reason)
        self.bus.emit(u.Notice(at=time.time(), level="info", message=f"rejected node {node_id}"))
