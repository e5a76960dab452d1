"""Following the local Pilot inbox: yield each new data-exchange message once, oldest first, as it arrives.

Shared by the orchestrator (events sent with ``--transport message``, mitigation results) and the executor
(mitigation requests). The inbox is read only through pilotctl (``inbox --full``): this is the pilot layer, and the
on-disk format belongs to the daemon. The directory pilotctl reports (``dir``) is watched with watchdog purely to
wake up early; a poll every ``poll_interval`` seconds is what correctness rests on, so a missed or unsupported
notification only costs latency.

"Never twice" has two halves: ``seen`` (the caller's persisted "already processed" check, e.g. a SQLite lookup) and an
in-memory set of ids already yielded in this run. The set is trimmed to what the inbox still holds, so it stays as
small as the inbox — which :meth:`InboxWatcher.prune` keeps small, without ever deleting an unprocessed message.

pilotctl failures (daemon down, timeouts) never escape :meth:`InboxWatcher.messages`: they are recorded in
:attr:`InboxWatcher.status` (and passed to ``on_status``) and the poll is retried with exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pilot_tui.aiotime import within

from .driver import InboxMessage
from .errors import PilotError

log = logging.getLogger(__name__)

PRUNE_MARGIN_S = 1.0
"""Extra age kept when pruning around an unprocessed message (our clock vs. pilotctl's, call latency)."""


def parse_iso(value: str) -> float | None:
    """RFC 3339 / ISO-8601 (``Z`` or offset, any fraction digits) → Unix time, or ``None`` if it is not one."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", value.strip())
    if not m:
        return None
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        base = datetime.fromisoformat(m.group(1).replace(" ", "T") + zone)
    except ValueError:
        return None
    return base.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


class InboxSource(Protocol):
    """The part of :class:`~pilot_tui.pilot.driver.Pilotctl` the watcher needs (tests pass a fake)."""

    async def inbox_listing(self, *flags: str) -> tuple[str, list[InboxMessage]]: ...

    async def inbox_clear(self, *, before: float | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class InboxError:
    """The last pilotctl failure: its code (``not_running``, ``timeout`` …), message and pilotctl's hint."""

    code: str
    message: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    """What the watcher is doing, for a status line.

    ``state``: ``starting`` → ``watching`` (polling + directory notifications) or ``polling`` (poll only) →
    ``backoff`` while pilotctl fails → ``closed``. ``messages_seen`` counts messages yielded in this run;
    ``last_message_at`` is the Unix time of the last one.
    """

    state: str = "starting"
    inbox_dir: str | None = None
    last_error: InboxError | None = None
    messages_seen: int = 0
    last_message_at: float | None = None
    consecutive_errors: int = 0


def oldest_first(listing: list[InboxMessage]) -> list[InboxMessage]:
    """pilotctl lists newest first; sort by ``received_at`` (ties and unparseable times: reversed listing order)."""
    ordered = list(reversed(listing))
    stamps = [parse_iso(m.received_at) for m in ordered]
    if any(s is None for s in stamps):
        return ordered
    by_index = sorted(range(len(ordered)), key=lambda i: stamps[i] or 0.0)  # stable: ties keep listing order
    return [ordered[i] for i in by_index]


class InboxWatcher:
    """``async for msg in watcher.messages(): …`` over new inbox messages (full data), oldest first, each once.

    ``seen(message_id)`` must answer True for messages the caller already processed (persisted); it is asked once per
    new id. ``on_status`` is called on every status change (from the event loop). ``use_watchdog=False`` forces
    plain polling (tests; filesystems without inotify). ``listing_limit`` is passed as ``--limit``: pilotctl shows
    only the 10 newest messages without it, which a burst would overflow; the executor's pruning keeps the inbox far
    below the limit.
    """

    def __init__(
        self,
        pilotctl: InboxSource,
        *,
        seen: Callable[[str], bool] | None = None,
        poll_interval: float = 1.0,
        use_watchdog: bool = True,
        on_status: Callable[[WatcherStatus], None] | None = None,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
        listing_limit: int = 10_000,
    ) -> None:
        self._pilotctl = pilotctl
        self._limit_flags = ("--limit", str(listing_limit))
        self._seen = seen or (lambda _id: False)
        self.poll_interval = poll_interval
        self._use_watchdog = use_watchdog
        self._on_status = on_status
        self._max_backoff = max_backoff
        self._clock = clock
        self._known: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Any = None
        self._stopping: Any = None
        self._closed = False
        self.status = WatcherStatus()

    # -- status ----------------------------------------------------------------------------------------------

    def _set_status(self, **changes: Any) -> None:
        new = replace(self.status, **changes)
        if new != self.status:
            self.status = new
            if self._on_status is not None:
                try:
                    self._on_status(new)
                except Exception:  # a broken listener must not stop the inbox; log it and go on
                    log.exception("inbox status listener failed")

    @property
    def inbox_ids(self) -> frozenset[str]:
        """Ids of every message the last successful poll listed (seen or not): what the inbox holds now."""
        return frozenset(self._known)

    @property
    def notifications(self) -> bool:
        """True while directory notifications (watchdog) are active, i.e. new messages wake us at once."""
        return self._observer is not None

    # -- polling ---------------------------------------------------------------------------------------------

    async def poll_once(self) -> list[InboxMessage]:
        """List the inbox once and return the messages not yet seen, oldest first (marking them as yielded).

        Raises :class:`~pilot_tui.pilot.errors.PilotError`; :meth:`messages` is the loop that absorbs those.
        """
        inbox_dir, listing = await self._pilotctl.inbox_listing("--full", *self._limit_flags)
        if inbox_dir and inbox_dir != self.status.inbox_dir:
            self._set_status(inbox_dir=inbox_dir)
        present = {m.message_id for m in listing}
        self._known &= present
        fresh: list[InboxMessage] = []
        for msg in oldest_first(listing):
            if not msg.message_id or msg.message_id in self._known:
                continue
            self._known.add(msg.message_id)
            if not self._seen(msg.message_id):
                fresh.append(msg)
        return fresh

    async def messages(self) -> AsyncIterator[InboxMessage]:
        """Yield new messages forever (until :meth:`close`); pilotctl errors become status + back-off, never raise.

        One iteration at a time per watcher; to stop early and iterate again later, close the first one
        (``contextlib.aclosing``) so its clean-up does not run in the middle of the next.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        backoff = self.poll_interval
        fresh: list[InboxMessage] = []
        try:
            while not self._closed:
                self._wake.clear()
                try:
                    fresh = await self.poll_once()
                except PilotError as exc:
                    self._set_status(
                        state="backoff", consecutive_errors=self.status.consecutive_errors + 1,
                        last_error=InboxError(exc.code, exc.message, exc.hint))
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self.poll_interval
                self._ensure_watch()
                self._set_status(state="watching" if self.notifications else "polling", consecutive_errors=0)
                while fresh and not self._closed:
                    msg = fresh.pop(0)
                    self._set_status(messages_seen=self.status.messages_seen + 1, last_message_at=self._clock())
                    yield msg
                await self._sleep(self.poll_interval)
        finally:
            self._known.difference_update(m.message_id for m in fresh)  # not yielded: a later run may yield them
            self._stop_watch()
            self._set_status(state="closed")

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a directory notification or :meth:`close` ends it early."""
        assert self._wake is not None
        if self._closed:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await within(self._wake.wait(), seconds)
        if self._wake.is_set() and not self._closed:
            await asyncio.sleep(0.02)  # let the daemon finish writing the file that woke us

    # -- directory notifications -----------------------------------------------------------------------------

    def _notify(self) -> None:
        """Called from the watchdog thread: wake the poll loop on the event loop's thread."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing between the check and the call
                loop.call_soon_threadsafe(wake.set)

    def _ensure_watch(self) -> None:
        """Start watching the inbox directory once it is known and exists; any failure just means polling."""
        if not self._use_watchdog or self._observer is not None or not self.status.inbox_dir:
            return
        directory = Path(self.status.inbox_dir)
        if not directory.is_dir():
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            self._use_watchdog = False
            return
        notify = self._notify

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                notify()

        observer = Observer()
        try:
            observer.schedule(_Handler(), str(directory), recursive=False)
            observer.daemon = True
            observer.start()
        except OSError as exc:  # inotify limits, permissions: poll instead
            log.info("inbox notifications unavailable (%s); polling every %gs", exc, self.poll_interval)
            self._use_watchdog = False
            return
        self._observer = observer

    def _stop_watch(self) -> None:
        """Stop the watchdog thread without waiting for it (it is a daemon thread; :meth:`close` joins it)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            self._stopping = observer

    async def close(self) -> None:
        """Stop: :meth:`messages` returns at its next step; waits (in a thread) for the watchdog thread to end."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        self._stop_watch()
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            await asyncio.to_thread(stopping.join, 2.0)

    # -- pruning ---------------------------------------------------------------------------------------------

    async def prune(self, older_than_s: float) -> int:
        """Delete inbox messages older than ``older_than_s`` seconds — but never one ``seen`` does not yet accept.

        If an unprocessed message is older than the cut, the cut moves to just before it, so only messages older
        than every unprocessed one go (an unprocessed message with an unreadable time stops pruning altogether).
        Returns how many pilotctl cleared. Raises :class:`PilotError` (a one-off call: the caller reports it).
        """
        _, listing = await self._pilotctl.inbox_listing(*self._limit_flags)
        now = self._clock()
        age = older_than_s
        for msg in listing:
            if self._seen(msg.message_id):
                continue
            stamp = parse_iso(msg.received_at)
            if stamp is None:
                return 0
            if now - stamp >= age - PRUNE_MARGIN_S:
                age = now - stamp + PRUNE_MARGIN_S
        if age <= 0:
            return 0
        return await self._pilotctl.inbox_clear(before=age)
