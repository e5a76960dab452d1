"""What the executor engine tells its listeners (the UI, the ``--headless`` JSON log, tests).

Frozen dataclasses on the shared :class:`~pilot_tui.engines.updates.Update` base (so ``to_dict()`` gives the same
``type``-tagged JSON line as the other modes), carried by the shared :class:`~pilot_tui.engines.updates.UpdateBus`.
No Textual: the UI turns them into messages. :func:`subscribe` adds a bounded async-iterator view of a bus; a slow
subscriber loses its oldest updates (and is told how many) instead of growing memory or stalling the engine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..pilot.inbox import WatcherStatus
from .updates import Update, UpdateBus


@dataclass(frozen=True, slots=True)
class RequestReceived(Update):
    """A message arrived in the executor's inbox and is about to be judged (``request_id`` etc. when readable)."""

    message_id: str
    sender: str
    request_id: str | None
    action: str | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class RequestRefused(Update):
    """Validation said no (``reason``: ``not_obeyed``, ``bad_schema``, ``bad_ip``, ``loopback``, ``allowlisted`` …)."""

    message_id: str
    sender: str
    request_id: str | None
    ip: str | None
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ActionApplied(Update):
    """A block/unblock was carried out (``status`` ``applied``) or found already in place (``already_applied``).

    ``argv`` lists the commands run — or, in dry-run, the commands that *would* have run.
    """

    request_id: str
    sender: str
    action: str
    ip: str
    status: str
    backend: str
    detail: str
    expires_at: str | None
    argv: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class ActionFailed(Update):
    """The firewall command failed; nothing is recorded as blocked. ``detail`` holds its stderr's first line."""

    request_id: str
    sender: str
    action: str
    ip: str
    backend: str
    detail: str
    argv: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class DuplicateRequest(Update):
    """A request id seen before: its stored answer is sent again, nothing is executed."""

    request_id: str
    sender: str
    status: str


@dataclass(frozen=True, slots=True)
class BlockExpired(Update):
    """A block's duration ended: removed (``ok``) or the removal failed and will be retried (``detail``)."""

    ip: str
    request_id: str
    backend: str
    ok: bool
    detail: str
    argv: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class ReplySent(Update):
    """A result went to the orchestrator (``ok``), or the attempt failed (``error``; it is retried with back-off)."""

    target: str
    reply_to: str | None
    request_id: str
    status: str
    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class ExecutorState(Update):
    """Who we are and whom we obey, plus the inbox watcher's status; sent at start and whenever any of it changes."""

    address: str | None
    hostname: str
    backend: str
    obey_addresses: tuple[str, ...]
    obey_unresolved: tuple[str, ...]
    active_blocks: int
    pending_replies: int
    inbox: WatcherStatus
    obey_pins: tuple[tuple[str, str], ...] = ()
    """(hostname, Pilot address) each ``--obey`` hostname was pinned to when first resolved."""
    obey_conflicts: tuple[str, ...] = ()
    """One sentence per pinned hostname that now resolves to another node (whose requests are refused)."""


@dataclass(frozen=True, slots=True)
class ObeyPinConflict(Update):
    """An ``--obey`` hostname now resolves to another node than the one it was pinned to.

    Whoever holds a hostname is not who we agreed to obey: a restarted daemon can claim any free name. The executor
    keeps obeying ``pinned`` only and refuses ``now``; the operator must say so explicitly to change that.
    """

    hostname: str
    pinned: str
    pinned_node_id: int | None
    now: str
    now_node_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class UpdatesDropped(Update):
    """This subscriber fell behind and ``count`` older updates were dropped for it."""

    count: int


class Subscription:
    """``async for update in Subscription(bus): …`` — registered at once (nothing emitted after creation is missed),
    at most ``maxsize`` buffered, the oldest dropped beyond that and reported as :class:`UpdatesDropped`."""

    def __init__(self, bus: UpdateBus, maxsize: int = 1000) -> None:
        self._queue: asyncio.Queue[Update] = asyncio.Queue(maxsize)
        self._dropped = 0
        self._unsubscribe = bus.subscribe(self._push)

    def _push(self, update: Update) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(update)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        if self._dropped:
            count, self._dropped = self._dropped, 0
            return UpdatesDropped(at=time.time(), count=count)
        return await self._queue.get()

    def get_nowait(self) -> Update | None:
        """The next buffered update, or ``None`` (for tests and timer-driven UIs)."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        """Stop receiving updates."""
        self._unsubscribe()
