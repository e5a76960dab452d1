"""The oracle's sender: drains the outbox to the orchestrator in bounded batches, over one of two transports.

* ``stream`` — ``pilotctl connect <peer> <port>`` with an NDJSON batch on stdin. Our orchestrator replies with the
  ids it stored; only those (and the ones it already had) are marked delivered. A receiver that does not reply
  (a seed-style ``pilotctl recv`` loop) makes connect exit 0 with no response: that is the best signal there is, so
  the rows are marked ``unconfirmed`` — and the status says so.
* ``message`` — ``pilotctl send-message <peer> --type json --data -``: the receiving daemon acknowledges and keeps
  it in its inbox even while pilot-tui is not running there (``daemon-ack``).

Failures keep the rows pending and back off (exponential with jitter, capped); ``retry_now`` cuts the wait short.
A ``timeout`` from connect may have delivered anyway — the resend is deduplicated by id at the orchestrator.

A connect that ends without an acknowledgement (exit 0, no reply) is *not* taken as delivered at first: our
orchestrator always replies, and one that is stopped or killed while it holds the stream closes it silently — those
events were never stored. Only after :data:`SILENT_LIMIT` silent answers in a row do we conclude the peer is a
seed-style receiver that cannot reply; that conclusion is persisted per peer (and dropped as soon as it replies
again), and from then on exit 0 counts as ``unconfirmed`` delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import orjson

from pilot_tui.aiotime import within
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.outbox import Outbox, OutboxRow

from . import updates as u
from .receiver import parse_ack

SILENT_LIMIT = 3
"""Connects in a row that end without an acknowledgement before the peer is taken for a seed-style receiver."""

PEER_STATE_BY_CODE = {
    "no_ack": "reachable",
    "not_running": "daemon-down",
    "trust_required": "no-trust",
    "not_found": "unreachable",
    "connection_failed": "unreachable",
    "timeout": "unreachable",
}

BATCH_EVENTS = 100
"""Events per payload: keeps a stream reply (the stored ids) inside the single read ``connect`` makes, and one
slow link from holding many events at once (~30 ms per 100-event connect on the real network)."""

BATCH_BYTES = 128 * 1024


class NoAcknowledgement(PilotError):
    """connect exited 0 but the receiver did not say what it stored: keep the rows and resend."""

    code = "no_ack"
    retryable = True


def frame_batch(rows: list[OutboxRow]) -> bytes:
    """NDJSON payload of the rows' events, each line carrying ``batch_size`` so the receiver knows it is whole."""
    lines = []
    for row in rows:
        obj = orjson.loads(row.body)
        obj["batch_size"] = len(rows)
        lines.append(orjson.dumps(obj))
    return b"\n".join(lines) + b"\n"


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
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.paused = False
        self.peer_state = "unknown"
        self.failures = 0
        self._wake = asyncio.Event()
        self._silent = 0
        self._meta_key = f"silent-peer:{peer}"
        self.peer_silent = outbox.get_meta(self._meta_key) == "1"
        """True once the peer proved to be a receiver that never replies (a plain ``pilotctl recv``)."""

    # -- control ---------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows are waiting: send without waiting for the idle poll."""
        self._wake.set()

    def retry_now(self) -> None:
        """Cut the current backoff short."""
        self.failures = 0
        self._wake.set()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._emit_outbox()
        self._wake.set()

    # -- loop ------------------------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await within(self._wake.wait(), seconds)
        self._wake.clear()

    async def run(self) -> None:
        """Send until cancelled."""
        self._emit_outbox()
        while True:
            if self.paused:
                await self._sleep(3600)
                continue
            rows = self.outbox.pending(limit=self.batch_events, max_bytes=self.batch_bytes)
            if not rows:
                await self._sleep(1.0)
                continue
            ok = await self.send_rows(rows)
            self._emit_outbox()
            if not ok:
                await self._sleep(self.next_backoff())

    def next_backoff(self) -> float:
        """Exponential backoff with full jitter, capped: spreads retries of many oracles after an outage."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self.failures, 16))
        return random.uniform(ceiling / 2, ceiling)

    async def send_rows(self, rows: list[OutboxRow]) -> bool:
        """Send one batch and settle its rows; returns False when the attempt failed."""
        payload = frame_batch(rows)
        ids = [r.id for r in rows]
        started = time.monotonic()
        try:
            if self.transport == "stream":
                result = await self.pilotctl.connect(self.peer, self.port, payload, timeout=self.connect_timeout)
                delivered, dups, rejected, ack = self._settle_stream(ids, result.response)
            else:
                await self.pilotctl.send_message(self.peer, payload, msg_type="json")
                delivered, dups, rejected, ack = self.outbox.mark_delivered(ids, "daemon-ack"), 0, 0, "daemon-ack"
        except PilotError as exc:
            self.failures += 1
            self.outbox.mark_failed(ids, exc.one_line())
            self._set_peer(PEER_STATE_BY_CODE.get(exc.code, "unreachable"), exc.one_line())
            retry = min(self.backoff_cap, self.backoff_base * 2 ** min(self.failures, 16))
            self._emit_result(len(rows), len(payload), False, started, "none", error_code=exc.code,
                              error=exc.message, hint=exc.hint, retry_in_s=retry)
            return False
        self.failures = 0
        self._set_peer("reachable", "")
        self._emit_result(len(rows), len(payload), True, started, ack, delivered=delivered, duplicates=dups,
                          rejected=rejected)
        return True

    def _settle_stream(self, ids: list[str], response: str) -> tuple[int, int, int, str]:
        """Mark what the orchestrator's reply confirms; rows it does not mention stay pending for a resend.

        Raises :class:`NoAcknowledgement` for a silent answer until the peer has proved it never replies.
        """
        ack = parse_ack(response)
        if ack is None:
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
            return self.outbox.mark_delivered(ids, "unconfirmed"), 0, 0, "unconfirmed"
        self._silent = 0
        if self.peer_silent:
            self._set_silent(False)
        sent = set(ids)
        stored = [i for i in ack["stored"] if i in sent]
        dups = [i for i in ack["duplicate"] if i in sent]
        reasons = {
            r["id"]: str(r.get("reason") or "rejected")
            for r in ack["rejected"]
            if isinstance(r, dict) and r.get("id") in sent
        }
        n = self.outbox.mark_delivered(stored, "stored") + self.outbox.mark_delivered(dups, "duplicate")
        self.outbox.mark_rejected(reasons)
        return n, len(dups), len(reasons), "stored"

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
                                    oldest_age_s=self.outbox.oldest_pending_age(), paused=self.paused))

    def _emit_result(self, events: int, size: int, ok: bool, started: float, ack: str, **extra: object) -> None:
        self.bus.emit(u.SendResult(at=time.time(), transport=self.transport, peer=self.peer, events=events,
                                   bytes=size, ok=ok, latency_ms=(time.monotonic() - started) * 1000, ack=ack,
                                   **extra))  # type: ignore[arg-type]
