"""Filesystem notifications (watchdog) turned into a wake-up call on the asyncio loop.

The one watchdog adapter of the project: the file tailer (``sources/``) and the inbox watcher (``pilot/``) both use
it, which is why it lives at the top of the package with the other shared plumbing (``aiotime``, ``subproc``).

Notifications only make a poller react sooner; they never carry data and nothing depends on them arriving
(inotify is silent on NFS and on some container mounts). The watchdog Observer runs in its own thread, so every
event is handed to the loop with ``call_soon_threadsafe``, and bursts are collapsed into one wake-up.

Which events count is the caller's choice (``events``), because reading a file is an event too: inotify reports
``opened`` and ``closed_no_write`` when anyone reads a watched file, the poller included. A caller that woke on those
would wake itself for ever; the tailer wants writes (``modified``, ``closed``), the inbox only new, complete files
(:data:`NEW_FILES`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

STRUCTURAL = frozenset({"created", "deleted", "moved"})
"""Files appeared, vanished or were renamed: when glob patterns are worth rescanning."""
CHANGES = STRUCTURAL | {"modified", "closed"}
"""Anything written or renamed (``closed`` is a close after writing; a close after reading is ``closed_no_write``)."""
NEW_FILES = frozenset({"created", "closed", "moved", "events_lost"})
"""A file appeared, was written and closed, or was renamed into place (an atomic write), or inotify's queue
overflowed and some such event may be lost. ``closed`` matters because pilot-daemon 1.18 writes an inbox file in
place (inotify shows CREATE, MODIFY, CLOSE_WRITE): a listing woken by ``created`` may find it still empty and skip
it, and the close that follows wakes the watcher again (``created`` stays for files moved in from elsewhere, which
watchdog reports as created). Reading a file (``opened``, ``closed_no_write``), changing it and deleting it are not
in it."""


class _Handler(FileSystemEventHandler):
    """Runs in the observer thread: only flags and schedules, never touches the caller's state."""

    def __init__(self, bridge: DirWatcher) -> None:
        super().__init__()
        self._bridge = bridge

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in self._bridge.events:
            self._bridge.notify(event.event_type in STRUCTURAL)


class DirWatcher:
    """Watches directories (non-recursively) and calls ``wake(structural)`` on the loop when something changes.

    Only events whose type is in ``events`` count (default :data:`CHANGES`). ``structural`` is True when files
    appeared, vanished or were renamed. :meth:`watch` returns False when a directory cannot be watched (missing,
    inotify limits reached); the caller then relies on polling for it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        wake: Callable[[bool], None],
        events: Iterable[str] = CHANGES,
    ) -> None:
        self._loop = loop
        self._wake = wake
        self.events = frozenset(events)
        self._handler = _Handler(self)
        self._observer: BaseObserver | None = None
        self._stopping: BaseObserver | None = None
        self._watched: set[str] = set()
        self._lock = threading.Lock()
        self._pending = False
        self._pending_structural = False

    @property
    def watched(self) -> frozenset[str]:
        """Directories currently watched."""
        return frozenset(self._watched)

    def watch(self, directory: str) -> bool:
        """Start watching ``directory``; True if it is (or already was) watched."""
        if directory in self._watched:
            return True
        try:
            if self._observer is None:
                observer = Observer()
                observer.daemon = True
                observer.start()
                self._observer = observer
            self._observer.schedule(self._handler, directory, recursive=False)
        except (OSError, RuntimeError) as exc:
            log.debug("cannot watch %s (%s); polling it", directory, exc)
            return False
        self._watched.add(directory)
        return True

    def notify(self, structural: bool) -> None:
        """Called from the observer thread; at most one wake-up is queued on the loop at a time."""
        with self._lock:
            self._pending_structural = self._pending_structural or structural
            if self._pending:
                return
            self._pending = True
        try:
            self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:
            # The loop is closed: we are shutting down and nobody is waiting for this wake-up any more.
            with self._lock:
                self._pending = False

    def _fire(self) -> None:
        with self._lock:
            structural = self._pending_structural
            self._pending = self._pending_structural = False
        self._wake(structural)

    def stop(self, *, wait: bool = True) -> None:
        """Stop the observer thread. ``wait`` joins it (blocking: call it off the loop); without it, the thread
        ends on its own (a daemon thread) and :meth:`join` waits for it later."""
        observer, self._observer = self._observer, None
        self._watched.clear()
        if observer is not None:
            observer.stop()
            self._stopping = observer
        if wait:
            self.join()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for a thread :meth:`stop` ended (blocking: call it off the loop)."""
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            stopping.join(timeout=timeout)
