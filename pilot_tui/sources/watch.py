"""Filesystem notifications (watchdog) turned into a wake-up call on the asyncio loop.

Notifications only make the tailer react sooner; they never carry data and nothing depends on them arriving
(inotify is silent on NFS and on some container mounts). The watchdog Observer runs in its own thread, so every
event is handed to the loop with ``call_soon_threadsafe``, and bursts are collapsed into one wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

_STRUCTURAL = frozenset({"created", "deleted", "moved"})
_INTERESTING = _STRUCTURAL | {"modified", "closed"}


class _Handler(FileSystemEventHandler):
    """Runs in the observer thread: only flags and schedules, never touches tailer state."""

    def __init__(self, bridge: DirWatcher) -> None:
        super().__init__()
        self._bridge = bridge

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _INTERESTING:
            self._bridge.notify(event.event_type in _STRUCTURAL)


class DirWatcher:
    """Watches directories (non-recursively) and calls ``wake(structural)`` on the loop when something changes.

    ``structural`` is True when files appeared, vanished or were renamed, which is when glob patterns are worth
    rescanning. :meth:`watch` returns False when a directory cannot be watched (missing, inotify limits reached);
    the caller then relies on polling for it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[bool], None]) -> None:
        self._loop = loop
        self._wake = wake
        self._handler = _Handler(self)
        self._observer: BaseObserver | None = None
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

    def stop(self) -> None:
        """Stop the observer thread (blocking; call it off the loop)."""
        observer, self._observer = self._observer, None
        self._watched.clear()
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
