"""The oracle's sender: drains the outbox to the orchestrator in bounded batches, over one of two transports.

* ``stream`` — ``pilotctl connect <peer> <port>`` with an NDJSON batch on stdin. Our orchestrator replies with what
  became of each line (a compact acknowledgement that fits the 1,152 bytes real ``connect`` passes back, see
  :mod:`.receiver`); only the lines it stored or already had are marked delivered. A receiver that does not reply
  (a seed-style ``pilotctl recv`` loop) makes connect exit 0 with no response: that is the best signal there is, so
  the rows are marked ``unconfirmed`` — and the status says so.
* ``message`` — ``pilotctl send-message <peer> --type json --data -``: the receiving daemon acknowledges and keeps
  it in its inbox even while pilot-tui is not running there (``daemon-ack``).

**Several batches in flight, only for a backlog.** While one send is on its way, another starts only when the
pending rows fill a whole batch (a burst): then up to ``inflight`` sends and :data:`INFLIGHT_BYTES` overlap, and a
burst is bytes-bound. Sparse events never get a connect of their own beside one in flight: they wait for it and
go together. Measured on real 1.18 daemons (``bench/real_bench.py``, 40 lines/s): the receiving daemon's SYN rate
limit (``pilot-daemon -syn-rate-limit``, default 100/s) is what makes ~1 connect in 2 take ~250 ms extra once a
sender opens ~40 streams/s; each extra stream (a parallel send, a duplicate) feeds it: p99 276 ms one at a time,
2.4-9.3 s with four in flight. With ``-syn-whitelist <oracle ids>`` on the orchestrator's daemon the tail is gone
(p50 11.6 ms, p99 16.7 ms).

**Hedging (opt-in, ``hedge=True`` / ``PILOT_TUI_HEDGE=1``).** A small batch unanswered after a few times the recent
median (:meth:`Sender.hedge_delay`) is sent once more on a second connect; whichever answers first settles the rows
and ids make the duplicate harmless, and sparse events get sends of their own beside one in flight. It cuts a tail
of random slow paths (pilot-sim's ``slow_rate`` fault), not a rate limiter's, so it is off by default. Hedges are counted in :class:`~.updates.OutboxState`. Batches may arrive
out of order; the orchestrator's gap check allows for that.

Failures keep the rows pending and back off (exponential with jitter, capped); ``retry_now`` cuts the wait short.
A ``timeout`` from connect may have delivered anyway — the resend is deduplicated by id at the orchestrator. A
send still waiting after :data:`STALL_S` turns the peer state to ``stalled`` at once, so an outage shows while
pilotctl is still hanging, not only when it gives up.

A connect that ends without an acknowledgement (exit 0, no reply) is *not* taken as delivered at first: our
orchestrator always replies, and one that is stopped or killed while it holds the stream closes it silently — those
events were never stored. Only after :data:`SILENT_LIMIT` silent answers in a row do we conclude the peer is a
seed-style receiver that cannot reply; that conclusion is persisted per peer (and dropped as soon as it replies
again), and from then on exit 0 counts as ``unconfirmed`` delivery. A reply that is ours but unreadable (cut,
corrupt, for other lines) is never "silent": the rows are resent and the status names the fault.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilot_tui.backoff import Backoff
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.outbox import Outbox, OutboxRow

from . import updates as u
from .receiver import BadAck, NotStored, Settlement, settle

SILENT_LIMIT = 3
"""Connects in a row that end without an acknowledgement before the peer is taken for a seed-style receiver."""

PEER_STATE_BY_CODE = {
    "no_ack": "reachable",
    "bad_ack": "reachable",
    "not_stored": "reachable",
    "not_running": "daemon-down",
    "trust_required": "no-trust",
    "not_found": "unreachable",
    "connection_failed": "unreachable",
    "timeout": "unreachable",
}

BATCH_EVENTS = 1000
"""Most events per payload. The acknowledgement's size does not grow with the batch, so the bound is the cost of
one connect: ~80-160 ms for 1,000 events (240 KB) on real 1.18 daemons. Under light load batches are small anyway:
a send takes whatever is pending when a slot is free."""

BATCH_BYTES = 256 * 1024

INFLIGHT = 4
"""Sends in flight at once (each a pilotctl process; a 2-core oracle gains nothing beyond a few)."""

INFLIGHT_BYTES = 512 * 1024
"""Payload bytes in flight at once (at least one batch always goes). Measured on real 1.18 daemons: two 208 KB
connects at a time ran for minutes; four 416 KB ones wedged the path to the peer (every connect timed out, then
``connection_failed`` for a minute). A burst is bytes-bound anyway (~2-3 MB/s through one daemon pair)."""

HEDGE_MAX_BYTES = 64 * 1024
"""Only batches up to this size are hedged: the tail that hurts is a few events stuck behind a slow connect; a
second copy of a big batch only adds load where the path is already busy."""

HEDGE_MIN_S = 0.04
HEDGE_MAX_S = 2.0
HEDGE_FACTOR = 3.0
"""A batch unanswered after HEDGE_FACTOR x the recent median send time (clamped to [HEDGE_MIN_S, HEDGE_MAX_S],
and scaled by the payload for big batches) is sent again on a second connect."""

STALL_S = 2.0
"""A send waiting this long makes the peer state ``stalled`` (a peer daemon restarting, a path re-keying)."""


class NoAcknowledgement(PilotError):
    """connect exited 0 but the receiver did not say what it stored: keep the rows and resend."""

    code = "no_ack"
    retryable = True


class NotStoredByPeer(PilotError):
    """The orchestrator answered but could not store the batch (its disk is full, its state read-only): resend later."""

    code = "not_stored"
    retryable = True


class BadAcknowledgement(PilotError):
    """The receiver's reply is ours but cannot settle this batch (cut short, corrupt, for other lines): resend."""

    code = "bad_ack"
    retryable = True


def frame_batch(rows: list[OutboxRow]) -> bytes:
    """NDJSON payload of the rows' events, each line carrying ``batch_size`` so the receiver knows it is whole."""
    lines = []
    for row in rows:
        obj = orjson.loads(row.body)
        obj["batch_size"] = len(rows)
        lines.append(orjson.dumps(obj))
    return b"\n".join(lines) + b"\n"


@dataclass(eq=False)
class _Flight:
    """One batch on its way: the rows, the framed payload, the send(s) carrying it (a second one once hedged)."""

    rows: list[OutboxRow]
    payload: bytes
    started: float
    tasks: list[asyncio.Task[Settlement | None]] = field(default_factory=list)
    errors: list[PilotError] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rows]

    @property
    def hedged(self) -> bool:
        return len(self.tasks) > 1


class Sender:
    """Background task moving outbox rows to the peer. Emits :class:`SendResult`, :class:`PeerState`,
    :class:`OutboxState` on ``bus``."""

    def __init__(
        self,
        pilotctl: Pilotctl,
        outbox: Outbox,
        bus: u.UpdateBus,
        *,
        peer: str,
        port: int = 1000,
        transport: str = "stream",
        connect_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        batch_events: int = BATCH_EVENTS,
        batch_bytes: int = BATCH_BYTES,
        inflight: int = INFLIGHT,
        hedge: bool = False,
    ) -> None:
        if transport not in ("stream", "message"):
            raise ValueError(f"unknown transport {transport!r}")
        self.pilotctl = pilotctl
        self.outbox = outbox
        self.bus = bus
        self.peer = peer
        self.port = port
        self.transport = transport
        self.connect_timeout = connect_timeout
        self.backoff = Backoff(backoff_base, backoff_cap)
        """Waits between failed sends; its ``failures`` are the failures in a row."""
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.inflight = max(1, inflight)
        self.hedge = hedge
        self.paused = False
        self.peer_state = "unknown"
        self.hedges = 0
        """Batches sent a second time because the first send was slow (shown in the status)."""
        self._wake = asyncio.Event()
        self._silent = 0
        self._flights: list[_Flight] = []
        self._retry_at = 0.0
        self._times: deque[float] = deque(maxlen=64)
        """Recent successful send times per KB-normalised batch (seconds), for the hedge delay."""
        self._meta_key = f"silent-peer:{peer}"
        self.peer_silent = outbox.get_meta(self._meta_key) == "1"
        """True once the peer proved to be a receiver that never replies (a plain ``pilotctl recv``)."""

    # -- control ---------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows are waiting: send without waiting for the idle poll."""
        self._wake.set()

    def retry_now(self) -> str:
        """Cut the current backoff short; returns what happens now, in one line for the operator who asked (while
        paused nothing is sent, and saying "retrying" would be a lie)."""
        if self.paused:
            return "sending is paused: nothing is sent until you resume it (p)"
        self.backoff.reset()
        self._retry_at = 0.0
        self._wake.set()
        pending = self.outbox.depth()
        if not pending:
            return "nothing to send: the outbox is empty"
        if self._flights:
            return f"{len(self._flights)} send(s) already on the way; {pending:,} event(s) pending"
        return f"sending {pending:,} pending event(s) now"

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._emit_outbox()
        self._wake.set()

    def note_peer_state(self, state: str, detail: str) -> None:
        """What a check outside the send path found (the start-up check, :mod:`pilot_tui.commands.doctor`), so the
        peer is not shown ``unknown`` until the first send; ignored once a send has said anything."""
        if self.peer_state in ("unknown", "checking"):
            self._set_peer(state, detail)

    @property
    def failures(self) -> int:
        """Failed sends in a row (0 once one succeeds or the operator retries now)."""
        return self.backoff.failures

    @property
    def in_flight(self) -> int:
        """Batches currently on their way."""
        return len(self._flights)

    # -- loop ------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send until cancelled (sends still in flight are cancelled; their rows stay pending)."""
        self._emit_outbox()
        try:
            while True:
                self._launch_ready()
                await self._wait_for_something()
                self._check_stall()
                self._hedge_slow()
                self._collect_done()
        finally:
            tasks = [t for f in self._flights for t in f.tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flights.clear()

    def _launch_ready(self) -> None:
        """Fill free slots with pending rows nobody is sending (unless paused or backing off)."""
        if self.paused or time.monotonic() < self._retry_at:
            return
        while len(self._flights) < self.inflight:
            busy = {r.id for f in self._flights for r in f.rows}
            room = INFLIGHT_BYTES - sum(len(f.payload) for f in self._flights)
            if self._flights and room < 4096:
                return
            budget = min(self.batch_bytes, room) if self._flights else self.batch_bytes
            rows = self.outbox.pending(limit=self.batch_events, max_bytes=budget, skip=busy)
            if not rows or (self._flights and not self.hedge and not self._full(rows, budget)):
                return  # stragglers wait for the send in flight: one more stream would only feed the SYN limit
            flight = _Flight(rows, frame_batch(rows), time.monotonic())
            flight.tasks.append(self._start(flight))
            self._flights.append(flight)

    def _full(self, rows: list[OutboxRow], budget: int) -> bool:
        """A batch worth a stream of its own beside one in flight: as many events or (nearly) as many bytes as a
        batch may hold."""
        return len(rows) >= self.batch_events or sum(len(r.body) + 1 for r in rows) >= budget * 3 // 4

    def _start(self, flight: _Flight) -> asyncio.Task[Settlement | None]:
        return asyncio.create_task(self._send(flight.payload, flight.ids), name="sender-send")

    async def _wait_for_something(self) -> None:
        """Sleep until a send ends, rows arrive, a hedge or stall deadline passes, or the backoff ends."""
        now = time.monotonic()
        deadlines = [now + (3600 if self.paused else 1.0)]
        if self._retry_at > now and not self.paused:
            deadlines.append(self._retry_at)
        for flight in self._flights:
            if self._may_hedge(flight):
                deadlines.append(flight.started + self.hedge_delay(len(flight.payload)))
            if flight.started + STALL_S > now:
                deadlines.append(flight.started + STALL_S)
        timeout = max(0.0, min(deadlines) - now)
        # Sends that ended before this wait were all handled by _collect_done (no await since): wait on the rest.
        sends = [t for f in self._flights for t in f.tasks if not t.done()]
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([waker, *sends], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            await asyncio.gather(waker, return_exceptions=True)
        self._wake.clear()

    def hedge_delay(self, size: int) -> float:
        """How long a batch of ``size`` bytes may go unanswered before it is sent again on a second connect."""
        if not self._times:
            return HEDGE_MAX_S
        per_kb = statistics.median(self._times)
        return min(HEDGE_MAX_S, max(HEDGE_MIN_S, HEDGE_FACTOR * per_kb * max(1.0, size / 1024)))

    def _may_hedge(self, flight: _Flight) -> bool:
        return self.hedge and not flight.hedged and len(flight.payload) <= HEDGE_MAX_BYTES

    def _hedge_slow(self) -> None:
        now = time.monotonic()
        for flight in self._flights:
            if self._may_hedge(flight) and now - flight.started >= self.hedge_delay(len(flight.payload)):
                flight.tasks.append(self._start(flight))
                self.hedges += 1
                self._emit_outbox()

    def _check_stall(self) -> None:
        if not self._flights:
            return
        waited = time.monotonic() - min(f.started for f in self._flights)
        if waited >= STALL_S and self.peer_state in ("unknown", "reachable"):
            verb = "connect" if self.transport == "stream" else "send-message"
            self._set_peer("stalled", f"{verb} waiting {waited:.1f} s for {self.peer} (daemon restarting? path "
                           "re-keying?) — events stay in the outbox")

    def _collect_done(self) -> None:
        """Settle every flight one of whose sends has answered, or all of whose sends have failed."""
        changed = False
        for flight in list(self._flights):
            settled: Settlement | None = None
            answered = False
            for task in flight.tasks:
                if not task.done() or task.cancelled():
                    continue
                exc = task.exception()
                if exc is None:
                    settled, answered = task.result(), True
                    break
                if isinstance(exc, PilotError) and exc not in flight.errors:
                    flight.errors.append(exc)
                elif not isinstance(exc, PilotError):
                    raise exc
            if answered:
                self._finish(flight, settled)
            elif not all(t.done() for t in flight.tasks):
                continue
            elif flight.errors:
                self._fail(flight, flight.errors[-1])
            else:  # every send was cancelled: nothing was learned, the rows stay pending
                self._drop(flight)
            changed = True
        if changed:
            self._emit_outbox()

    def _finish(self, flight: _Flight, settlement: Settlement | None) -> None:
        self._drop(flight)
        elapsed = time.monotonic() - flight.started
        self._times.append(elapsed / max(1.0, len(flight.payload) / 1024))
        self.backoff.reset()
        self._set_peer("reachable", "")
        if settlement is None:  # message transport: the receiving daemon has it
            n, ack, dups, rejected = self.outbox.mark_delivered(flight.ids, "daemon-ack"), "daemon-ack", 0, 0
        elif settlement is _UNCONFIRMED:
            n, ack, dups, rejected = self.outbox.mark_delivered(flight.ids, "unconfirmed"), "unconfirmed", 0, 0
        else:
            n = self.outbox.mark_delivered(settlement.stored, "stored")
            n += self.outbox.mark_delivered(settlement.duplicate, "duplicate")
            self.outbox.mark_rejected(settlement.rejected)
            ack, dups, rejected = "stored", len(settlement.duplicate), len(settlement.rejected)
        self._emit_result(flight, True, ack, delivered=n, duplicates=dups, rejected=rejected)

    def _fail(self, flight: _Flight, exc: PilotError) -> None:
        self._drop(flight)
        self.outbox.mark_failed(flight.ids, exc.one_line())
        self._set_peer(PEER_STATE_BY_CODE.get(exc.code, "unreachable"), exc.one_line())
        # Another flight's failure may already hold sending off for longer: the wait only ever grows here, and
        # what is reported is the time until :meth:`_launch_ready` really sends again.
        now = time.monotonic()
        self._retry_at = max(self._retry_at, now + self.backoff.next_delay())
        self._emit_result(flight, False, "none", error_code=exc.code, error=exc.message, hint=exc.hint,
                          retry_in_s=self._retry_at - now)

    def _drop(self, flight: _Flight) -> None:
        self._flights.remove(flight)
        for task in flight.tasks:
            task.cancel()  # a hedge twin still running: its answer is no longer needed

    # -- one send --------------------------------------------------------------------------------------------

    async def _send(self, payload: bytes, ids: list[str]) -> Settlement | None:
        """Carry one payload; returns what the orchestrator settled (``None``: the receiving daemon acknowledged a
        message). Raises :class:`PilotError` when the attempt failed."""
        if self.transport == "message":
            await self.pilotctl.send_message(self.peer, payload, msg_type="json")
            return None
        result = await self.pilotctl.connect(self.peer, self.port, payload, timeout=self.connect_timeout)
        return self._settle_stream(result.response, payload, ids)

    async def send_rows(self, rows: list[OutboxRow]) -> bool:
        """Send one batch right now and settle its rows (no hedging); returns False when the attempt failed."""
        flight = _Flight(rows, frame_batch(rows), time.monotonic())
        flight.tasks.append(self._start(flight))
        self._flights.append(flight)
        await asyncio.gather(*flight.tasks, return_exceptions=True)
        self._collect_done()
        return self.failures == 0

    def _settle_stream(self, response: str, payload: bytes, ids: list[str]) -> Settlement:
        """Read the orchestrator's reply to ``payload``; rows it does not settle stay pending for a resend.

        Raises :class:`NoAcknowledgement` for a silent answer until the peer has proved it never replies, and
        :class:`BadAcknowledgement` for a reply that is ours but unreadable (never counted as silent).
        """
        try:
            settlement = settle(response, payload, ids)
        except NotStored as exc:
            self._silent = 0  # it did answer: never a step towards "this peer cannot reply"
            raise NotStoredByPeer(f"{exc}; the events stay in the outbox and are resent",
                                  hint="the orchestrator's state dir needs attention; it recovers by itself") from None
        except BadAck as exc:
            raise BadAcknowledgement(
                f"the orchestrator's reply could not be read ({exc}); resending",
                hint="replies are cut at 1,152 bytes by pilotctl connect; is the orchestrator an older pilot-tui?",
            ) from None
        if settlement is None:
            if not self.peer_silent:
                self._silent += 1
                if self._silent < SILENT_LIMIT:
                    raise NoAcknowledgement(
                        "connect ended without an acknowledgement; the events may not be stored — resending",
                        hint="a stopping orchestrator closes streams without replying; a plain `pilotctl recv` "
                        f"receiver never replies (after {SILENT_LIMIT} silent answers in a row it is treated as one)",
                    )
                self._set_silent(True)
            # A seed-style receiver: connect exiting 0 is the only signal we get.
            return _UNCONFIRMED
        self._silent = 0
        if self.peer_silent:
            self._set_silent(False)
        return settlement

    def _set_silent(self, silent: bool) -> None:
        self.peer_silent = silent
        self.outbox.set_meta(self._meta_key, "1" if silent else "0")

    # -- updates ---------------------------------------------------------------------------------------------

    def _set_peer(self, state: str, detail: str) -> None:
        if state != self.peer_state:
            self.peer_state = state
            self.bus.emit(u.PeerState(at=time.time(), peer=self.peer, state=state, detail=detail))

    def _emit_outbox(self) -> None:
        self.bus.emit(u.OutboxState(at=time.time(), depth=self.outbox.depth(),
                                    oldest_age_s=self.outbox.oldest_pending_age(), paused=self.paused,
                                    in_flight=len(self._flights), hedges=self.hedges))

    def _emit_result(self, flight: _Flight, ok: bool, ack: str, **extra: Any) -> None:  # SendResult's other fields
        self.bus.emit(u.SendResult(at=time.time(), transport=self.transport, peer=self.peer, events=len(flight.rows),
                                   bytes=len(flight.payload), ok=ok,
                                   latency_ms=(time.monotonic() - flight.started) * 1000, ack=ack,
                                   hedged=flight.hedged, **extra))


_UNCONFIRMED = Settlement()
"""Marker: a seed-style receiver took the batch without a word (connect exited 0)."""
