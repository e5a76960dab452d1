"""Each engine's read API for a user interface: typed rows and named fields, read-only.

A view reads an engine only through its ``query`` object, never through its stores, connections, sender or
outbox: the engines can then change how they keep their state (tables, columns, which object holds a counter)
without a view noticing, and a view cannot write by accident. Actions stay methods of the engine itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilot_tui.store.blocks import Block, BlockStore
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox
from pilot_tui.store.queries import FeedQuery

from .sender import Sender


class OrchestratorQuery:
    """What the feed, incidents, sensors and quarantine views read of an orchestrator's event store."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.feed = FeedQuery(store.conn, getattr(store, "path", None))
        """Feed windows, counts and aggregates (run the slow ones through a ``QueryReader``)."""

    def total(self) -> int:
        """Every stored event."""
        return self._store.total()

    def quarantine_count(self) -> int:
        """Quarantined payloads held (one counter row: cheap on the UI thread)."""
        return self._store.quarantine_count()

    def quarantine_stats(self) -> dict[str, int]:
        return self._store.quarantine_stats()

    def quarantine_by_reason(self) -> dict[str, int]:
        return self._store.quarantine_by_reason()

    def quarantine_page(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._store.quarantine_page(limit, offset)

    def open_ids_from(self, source_ip: str) -> list[str]:
        """Ids of the still-new events from ``source_ip`` (what a bulk triage of that attacker would change)."""
        return self._store.ids_from_source(source_ip)


@dataclass(frozen=True, slots=True)
class SendStatus:
    """The oracle's sending side at one instant: where it sends, how, and what waits in the outbox."""

    peer: str
    port: int
    transport: str
    peer_state: str
    paused: bool
    in_flight: int
    hedges: int
    depth: int
    """Events waiting to be delivered."""
    oldest_age: float | None
    """Seconds the oldest waiting event has waited (``None``: nothing waits)."""
    counts: Mapping[str, int]
    """Outbox rows per state."""


class OracleQuery:
    """What the oracle views read of the sender and its outbox."""

    def __init__(self, sender: Sender, outbox: Outbox) -> None:
        self._sender = sender
        self._outbox = outbox

    @property
    def paused(self) -> bool:
        return self._sender.paused

    def send_status(self, now: float | None = None) -> SendStatus:
        sender, outbox = self._sender, self._outbox
        return SendStatus(
            peer=sender.peer, port=sender.port, transport=sender.transport, peer_state=sender.peer_state,
            paused=sender.paused, in_flight=sender.in_flight, hedges=sender.hedges, depth=outbox.depth(),
            oldest_age=outbox.oldest_pending_age(now=time.time() if now is None else now), counts=outbox.counts())

    def outbox_state(self, event_id: str) -> tuple[str, str | None] | None:
        """(state, peer's ack) of a detection in the outbox, or ``None`` once pruned."""
        return self._outbox.state_of(event_id)


class ExecutorQuery:
    """What the executor views read of its block store."""

    def __init__(self, store: BlockStore) -> None:
        self._store = store

    def active_blocks(self) -> list[Block]:
        return self._store.active_blocks()

    def history(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest decisions, newest first."""
        return self._store.history(limit)
