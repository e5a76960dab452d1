"""The executor's reply sender: results queued in the state file go out with ``send-message --reply-to``.

A result is committed together with the decision it reports (:meth:`~pilot_tui.store.blocks.BlockStore.record`),
then sent from here. While the orchestrator is unreachable the reply waits and is retried with exponential
back-off (up to 5 minutes apart), for ``max_age_s`` at most: a block that happened must be reported, but not forever.
One failing target is not retried again in the same round, so a dead orchestrator costs one call per round.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import orjson

from pilot_tui.aiotime import within

from ..pilot.driver import SendAck
from ..pilot.errors import PilotError
from ..store.blocks import BlockStore
from .executor_updates import ReplySent
from .updates import UpdateBus

MAX_RETRY_GAP_S = 300.0
IDLE_CHECK_S = 30.0


class MessageSender(Protocol):
    async def send_message(self, target: str, data: bytes, *, msg_type: str = "json", reply_to: str | None = None,
                           wait: float | None = None) -> SendAck: ...


class ReplySender:
    """Sends due replies from ``store``; :meth:`wake` after queueing one, :meth:`run` as a background task."""

    def __init__(self, pilotctl: MessageSender, store: BlockStore, bus: UpdateBus, *, clock: Callable[[], float],
                 max_age_s: float = 86400.0) -> None:
        self.pilotctl = pilotctl
        self.store = store
        self.bus = bus
        self.clock = clock
        self.max_age_s = max_age_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def flush(self) -> int:
        """Send every due reply once; returns how many went. Failures are rescheduled (or given up), never raised."""
        sent = 0
        dead: set[str] = set()
        for reply in self.store.due_replies(self.clock()):
            if reply.target in dead:
                continue
            try:
                body = orjson.loads(reply.payload)
            except orjson.JSONDecodeError:  # cannot happen for what we queue; keep the record readable anyway
                body = {}
            request_id, status = str(body.get("request_id", "")), str(body.get("status", ""))
            now = self.clock()
            try:
                await self.pilotctl.send_message(reply.target, reply.payload, msg_type="json", reply_to=reply.reply_to)
            except PilotError as exc:
                dead.add(reply.target)
                give_up = exc.code == "invalid_argument" or now - reply.created_at > self.max_age_s
                retry_at = None if give_up else now + min(MAX_RETRY_GAP_S, 2.0 ** min(reply.attempts, 9))
                self.store.reply_failed(reply.id, exc.one_line(), retry_at)
                self.bus.emit(ReplySent(now, reply.target, reply.reply_to, request_id, status, False, exc.one_line()))
                continue
            self.store.reply_sent(reply.id, now)
            self.bus.emit(ReplySent(now, reply.target, reply.reply_to, request_id, status, True))
            sent += 1
        return sent

    async def run(self) -> None:
        """Flush, then sleep until the next retry is due or :meth:`wake` is called; until cancelled."""
        while True:
            await self.flush()
            nxt = self.store.next_reply_at()
            delay = IDLE_CHECK_S if nxt is None else min(max(nxt - self.clock(), 0.05), IDLE_CHECK_S)
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._wake.wait(), delay)
            self._wake.clear()
