"""Textual messages the UI posts. Each is a small dataclass; high-rate engine updates never become one each.

Engine updates reach the views only as :class:`EngineUpdates`, one per engine per UI tick (at most ~10 per second),
built by :class:`pilot_tui.ui.bridge.UpdateBridge` from a bounded buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from pilot_tui.store.events import StoredEvent


@dataclass
class EngineUpdates(Message):
    """What one engine reported since the last tick.

    ``kinds`` holds the class of every update seen (including coalesced ones, whose current state the view re-reads from
    the engine); ``updates`` holds the discrete ones worth listing (send results, notices…), oldest first, bounded;
    ``dropped`` counts discrete updates that did not fit; ``new_events`` counts stored events.
    """

    engine: str
    kinds: frozenset[type]
    updates: tuple[Any, ...]
    new_events: int = 0
    dropped: int = 0


@dataclass
class FeedCursorMoved(Message):
    """The feed table's cursor rests on another event (``None``: the feed is empty)."""

    stored: StoredEvent | None


@dataclass
class FeedRowChosen(Message):
    """The analyst pressed Enter (or clicked) on a feed row."""

    stored: StoredEvent
