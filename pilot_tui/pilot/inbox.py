"""Following the local Pilot inbox: yield each new data-exchange message once, oldest first, as it arrives.

Shared by the orchestrator (events sent with ``--transport message``, mitigation results) and the executor
(mitigation requests). The inbox is read only through pilotctl: this is the pilot layer, and the on-disk format
belongs to the daemon.

What one poll costs matters, because it runs while nothing happens (measured on 1.18: a full ``inbox --full`` of
~860 messages is 5.5 MB of JSON). So there are two kinds of poll:

* **incremental** (almost every poll): ``inbox --limit 0 --since <T>``, where T is when the last successful poll
  began minus :data:`SINCE_MARGIN_S`. pilotctl filters on the daemon's ``received_at`` (``>=``, nanoseconds,
  measured), so at rest the answer is empty.
* **complete** (at the start of every :meth:`InboxWatcher.messages` run, then every ``complete_every`` seconds):
  ``inbox --limit 0`` — every message in the inbox, whatever its time stamp, so a message the incremental window
  missed (a clock step, a file stamped long before it landed, an unparseable time) is still found.

Both list one-line previews (≤ 121 characters each, whatever the body's size); full bodies are read with one more
listing, ``inbox --full --limit 0 --since <the oldest new message>``, only when there are new messages, so each body
is read about once. When a new file woke the watcher there is mail for sure, so the window is listed with ``--full``
at once: one pilotctl run per wake-up, which is most of the ``message`` transport's latency.

``--limit 0`` is pilotctl's "all" (1.18 ``inbox --help``; the default is the newest 10): no listing is ever cut, so a
flood of newer messages cannot hide an older unprocessed one, neither from the watcher nor from :meth:`prune`.

The directory pilotctl reports (``dir``) is watched with :class:`~pilot_tui.dirwatch.DirWatcher` to wake up early,
on new, complete files only (written and closed, or moved into it; see
:data:`~pilot_tui.dirwatch.NEW_FILES`): pilotctl's own reads make inotify report ``opened`` /
``closed_no_write`` on every message file, and a watcher that took those for mail listed the inbox in a loop
(measured: ~1.1 cores with 860 messages). While notifications work, the poll is a safety net every
``watched_poll_interval`` seconds; without them it runs every ``poll_interval`` seconds.

"Never twice" has two halves: ``seen`` (the caller's persisted "already processed" check, e.g. a SQLite lookup) and an
in-memory set of ids already yielded in this run. The set is trimmed to what the inbox still holds at each complete
poll, so it stays as small as the inbox — which :meth:`InboxWatcher.prune` keeps small, without ever deleting an
unprocessed message.

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
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from pilot_tui.aiotime import within
from pilot_tui.backoff import Backoff

from .driver import InboxMessage
from .errors import PilotError

if TYPE_CHECKING:
    from pilot_tui.dirwatch import DirWatcher

log = logging.getLogger(__name__)

PRUNE_MARGIN_S = 1.0
"""Extra age kept when pruning around an unprocessed message (our clock vs. pilotctl's, call latency)."""
SINCE_MARGIN_S = 5.0
"""How far an incremental poll looks back before the previous poll began: a message stamped just before that poll
but whose file landed just after it (a slow write of a big message) is still in the window."""
WOKEN_MARGIN_S = 1.0
"""The look-back of a poll a new file woke: short, because at 40 messages/s every wake-up lists its window with full
bodies (the preview polls and the complete listing keep the wider :data:`SINCE_MARGIN_S` and catch a straggler)."""
WATCHED_POLL_S = 15.0
"""The safety-net poll period while directory notifications work (they wake the watcher for each new file)."""
COMPLETE_EVERY_S = 60.0
"""How often a complete listing re-checks the whole inbox (besides the one at the start of each run)."""
ALL = ("--limit", "0")
"""pilotctl's "no limit" (its default is the newest 10)."""


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


def rfc3339(epoch: float) -> str:
    """Unix time → RFC 3339 in UTC with microseconds (what ``inbox --since`` takes besides a duration)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _file(msg: InboxMessage) -> str:
    """The inbox file a listed message lives in (``id``; unique, unlike ``message_id``)."""
    return msg.inbox_id or msg.message_id


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
    plain polling (tests; filesystems without inotify). ``poll_interval`` is the poll period without directory
    notifications; with them the poll is only a safety net, every ``watched_poll_interval`` seconds (at least
    ``poll_interval``). ``complete_every`` spaces the complete listings (see the module docstring).
    """

    def __init__(
        self,
        pilotctl: InboxSource,
        *,
        seen: Callable[[str], bool] | None = None,
        poll_interval: float = 1.0,
        watched_poll_interval: float = WATCHED_POLL_S,
        complete_every: float = COMPLETE_EVERY_S,
        use_watchdog: bool = True,
        on_status: Callable[[WatcherStatus], None] | None = None,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pilotctl = pilotctl
        self._seen = seen or (lambda _id: False)
        self.poll_interval = poll_interval
        self.watched_poll_interval = max(watched_poll_interval, poll_interval)
        self.complete_every = complete_every
        self._use_watchdog = use_watchdog
        self._on_status = on_status
        self._max_backoff = max_backoff
        self._clock = clock
        self._known: set[str] = set()
        self._since: float | None = None
        """Wall time an incremental poll lists from (``None``: the next poll is a complete one)."""
        self._complete_due = 0.0
        """``time.monotonic()`` after which the next poll is a complete one."""
        self._wake: asyncio.Event | None = None
        self._dirs: DirWatcher | None = None
        self._stopping: DirWatcher | None = None
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
        """Ids of every message the inbox held at the last complete poll, plus those found since (seen or not)."""
        return frozenset(self._known)

    @property
    def notifications(self) -> bool:
        """True while directory notifications (watchdog) are active, i.e. new messages wake us at once."""
        return self._dirs is not None and bool(self._dirs.watched)

    # -- polling ---------------------------------------------------------------------------------------------

    async def poll_once(self, woken: bool = False) -> list[InboxMessage]:
        """Poll the inbox once (complete or incremental, see the module docstring) and return the messages not yet
        seen, oldest first, with their full data (marking them as yielded).

        ``woken``: a new file woke us, so there is mail: the incremental window is listed with full bodies at once
        (one pilotctl run instead of a preview listing and a second one for the bodies — ~12 ms less per message).
        Raises :class:`~pilot_tui.pilot.errors.PilotError`; :meth:`messages` is the loop that absorbs those.
        """
        began = time.time()  # the daemon stamps received_at with the wall clock: the window is on the same clock
        if self._since is None or time.monotonic() >= self._complete_due:
            listing = await self._list()
            self._known &= {m.message_id for m in listing}
            self._complete_due = time.monotonic() + self.complete_every
        elif woken:
            listing = await self._list("--full", "--since", rfc3339(self._since - WOKEN_MARGIN_S))
            fresh = self._unknown(listing)
            self._known.update(m.message_id for m in fresh)
            self._since = began
            return fresh
        else:
            listing = await self._list("--since", rfc3339(self._since - SINCE_MARGIN_S))
        fresh = await self._bodies(self._unknown(listing))
        self._known.update(m.message_id for m in fresh)
        self._since = began
        return fresh

    async def _bodies(self, wanted: list[InboxMessage]) -> list[InboxMessage]:
        """The listed (preview) messages ``wanted`` with their full data, in the same order: one ``--full`` listing
        from the oldest of them on (every message, if one has no readable time)."""
        if not wanted:
            return []
        stamps = [parse_iso(m.received_at) for m in wanted]
        oldest = min((s for s in stamps if s is not None), default=None)
        # 1 ms under the oldest stamp: rfc3339() keeps microseconds and a float ~0.2 µs; pilotctl keeps >= since
        flags = ("--full",) if oldest is None or None in stamps else ("--full", "--since", rfc3339(oldest - 0.001))
        bodies = {_file(m): m for m in await self._list(*flags)}
        # a message gone in between (pruned, cleared by hand) has nothing left to process
        return [bodies[_file(m)] for m in wanted if _file(m) in bodies]

    async def _list(self, *flags: str) -> list[InboxMessage]:
        """``inbox FLAGS --limit 0``; notes the inbox directory pilotctl reports."""
        inbox_dir, listing = await self._pilotctl.inbox_listing(*flags, *ALL)
        if inbox_dir and inbox_dir != self.status.inbox_dir:
            self._set_status(inbox_dir=inbox_dir)
        return listing

    def _unknown(self, listing: list[InboxMessage]) -> list[InboxMessage]:
        """The messages of ``listing`` this run has not met, oldest first, minus those ``seen`` accepts (which are
        remembered as met, so ``seen`` is asked about each id once)."""
        out: list[InboxMessage] = []
        ids: set[str] = set()
        for msg in oldest_first(listing):
            mid = msg.message_id
            if not mid or mid in self._known or mid in ids:
                continue
            if self._seen(mid):
                self._known.add(mid)
            else:
                ids.add(mid)
                out.append(msg)
        return out

    async def messages(self) -> AsyncIterator[InboxMessage]:
        """Yield new messages forever (until :meth:`close`); pilotctl errors become status + back-off, never raise.

        Each run starts with a complete poll. One iteration at a time per watcher; to stop early and iterate again
        later, close the first one (``contextlib.aclosing``) so its clean-up does not run in the middle of the next.
        """
        self._wake = asyncio.Event()
        self._since = None
        first = max(self.poll_interval, 0.01)  # a zero poll interval must still wait between failing calls
        backoff = Backoff(first, max(self._max_backoff, first))
        fresh: list[InboxMessage] = []
        try:
            while not self._closed:
                woken = self._wake.is_set() and self.notifications
                self._wake.clear()
                try:
                    fresh = await self.poll_once(woken)
                except PilotError as exc:
                    self._set_status(
                        state="backoff", consecutive_errors=self.status.consecutive_errors + 1,
                        last_error=InboxError(exc.code, exc.message, exc.hint))
                    await self._sleep(backoff.next_delay())
                    continue
                backoff.reset()
                if await self._ensure_watch():
                    self._wake.set()  # a file that landed between that listing and the watch start: look again now
                self._set_status(state="watching" if self.notifications else "polling", consecutive_errors=0)
                while fresh and not self._closed:
                    msg = fresh.pop(0)
                    self._set_status(messages_seen=self.status.messages_seen + 1, last_message_at=self._clock())
                    yield msg
                await self._sleep(self.watched_poll_interval if self.notifications else self.poll_interval)
        finally:
            self._known.difference_update(m.message_id for m in fresh)  # not yielded: a later run may yield them
            self._stop_watch()
            self._set_status(state="closed")

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a new file in the inbox or :meth:`close` ends it early."""
        assert self._wake is not None
        if self._closed:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await within(self._wake.wait(), seconds)

    # -- directory notifications -----------------------------------------------------------------------------

    def _new_file(self, _structural: bool) -> None:
        """On the loop, from :class:`DirWatcher`: a file appeared in the inbox directory."""
        if self._wake is not None:
            self._wake.set()

    async def _ensure_watch(self) -> bool:
        """Start watching the inbox directory once it is known and exists; any failure just means polling.

        True when the watch has just started: a file may have landed after the last listing read the directory
        and before the watch began, so the caller polls once more at once.
        """
        if not self._use_watchdog or self._dirs is not None or not self.status.inbox_dir:
            return False
        try:
            from pilot_tui.dirwatch import NEW_FILES, DirWatcher
        except ImportError:
            self._use_watchdog = False
            return False
        dirs = DirWatcher(asyncio.get_running_loop(), self._new_file, NEW_FILES)
        if not dirs.watch(self.status.inbox_dir):  # missing, inotify limits, permissions: poll instead
            await asyncio.to_thread(dirs.stop)
            self._use_watchdog = False
            log.info("inbox notifications unavailable for %s; polling every %gs", self.status.inbox_dir,
                     self.poll_interval)
            return False
        self._dirs = dirs
        return True

    def _stop_watch(self) -> None:
        """Stop the watchdog thread without waiting for it (it is a daemon thread; :meth:`close` joins it)."""
        dirs, self._dirs = self._dirs, None
        if dirs is not None:
            dirs.stop(wait=False)
            self._stopping = dirs

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
        listing = await self._list()  # all of it: an unprocessed message past a --limit would be deleted unseen
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
