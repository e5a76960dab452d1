"""Follow the systemd journal through ``journalctl --follow --output=json``.

Many current hosts (Debian 12+, minimal cloud images) have no ``auth.log``: sshd logs only to the journal. Rather
than bind libsystemd, we run ``journalctl`` as a background subprocess (an argv list, never a shell) and turn
each JSON entry back into a syslog-style line, so the same detection rules apply to both (fail2ban calls this its
systemd backend). The journal's own cursor is the position: a restart passes it to ``--after-cursor``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from pilot_tui.aiotime import within
from pilot_tui.backoff import Backoff
from pilot_tui.sources.lines import LineSplitter
from pilot_tui.sources.types import (
    ERROR_PREFIX,
    POSITION_VERSION,
    STATE_FOLLOWING,
    STATE_STARTING,
    STATE_STOPPED,
    JournalStats,
    LineBatch,
    RateMeter,
)
from pilot_tui.subproc import kill_and_reap, spawn

log = logging.getLogger(__name__)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_READ_CHUNK = 64 * 1024
_MAX_ENTRY_BYTES = 1024 * 1024
_MAX_MESSAGE_CHARS = 64 * 1024
_PROBE_TIMEOUT_S = 15.0

STATE_NO_FILES = "no journal files"
"""journalctl found no journal at all (journald not running, or keeping no files): it waits and reads nothing."""
STATE_NO_ACCESS = "journal unreadable"
"""journalctl may not open the journal files: it reads nothing this user may not see."""
STATE_PARTIAL = "following own messages only"
"""journalctl reads, but only this user's own entries (sshd's are not among them)."""

_PROBLEMS: tuple[tuple[str, str, str], ...] = (
    # (what journalctl says on stderr, state, why / what to do): its own words, as systemd prints them
    ("no journal files were found", STATE_NO_FILES,
     "journald keeps no files on this host (not running, or Storage=none); reading nothing until it writes some"),
    ("insufficient permissions", STATE_NO_ACCESS,
     "permission denied: run as root or as a user in group systemd-journal (or adm)"),
    ("not seeing messages from other users and the system", STATE_PARTIAL,
     "other users' and the system's entries are hidden: add this user to group systemd-journal (or adm)"),
)


def journal_key(units: Sequence[str]) -> str:
    """Persistence key of a journal source: ``"journal:"`` + sorted unit names, or ``"journal:*"`` for all."""
    return "journal:" + (",".join(sorted(set(units))) or "*")


def _text(value: Any) -> str | None:
    """A journal field as text: journalctl gives a string, a list of byte values (non-UTF-8 or binary data), or
    a list of those when the field is repeated (we take the first); ``null`` when the value is too large."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(b, int) and 0 <= b <= 255 for b in value):
            return bytes(value).decode("utf-8", "replace")
        return _text(value[0])
    return None


def syslog_timestamp(realtime_us: Any) -> str:
    """``__REALTIME_TIMESTAMP`` (microseconds since the epoch) as a classic syslog stamp in local time.

    English month names whatever the locale, day padded with a space (``"Nov  5 12:00:01"``), as rsyslog writes
    auth.log, so rules written for the file match the journal too. Falls back to now if the field is missing.
    """
    try:
        seconds = int(str(realtime_us)) / 1_000_000
    except ValueError:
        seconds = time.time()
    t = time.localtime(seconds)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def format_entry(entry: Mapping[str, Any], default_host: str) -> str | None:
    """``"<Mon dd HH:MM:SS> <hostname> <ident>[<pid>]: <message>"``, or None for an entry without a message.

    Newlines inside a message are escaped as rsyslog does (``#012``) so one entry stays one line and text after an
    embedded newline cannot pose as a line of its own.
    """
    message = _text(entry.get("MESSAGE"))
    if message is None:
        return None
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS]
    message = message.replace("\r", "#015").replace("\n", "#012")
    host = _text(entry.get("_HOSTNAME")) or default_host
    ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "journal"
    pid = _text(entry.get("SYSLOG_PID")) or _text(entry.get("_PID"))
    tag = f"{ident}[{pid}]" if pid else ident
    return f"{syslog_timestamp(entry.get('__REALTIME_TIMESTAMP'))} {host} {tag}: {message}"


class JournalSource:
    """Follows journal entries of some units (all if none) and yields them as syslog-style line batches.

    ``positions`` is the same key -> position mapping the file tailer takes; this source reads only its own key
    (:func:`journal_key`), whose value is ``{"v": 1, "cursor": "<journal cursor>"}``. Without one it starts at the
    current end of the journal (``from_start=False``) or at its beginning. ``journalctl`` may be a program name or
    an argv prefix (tests pass a stand-in script).

    If journalctl is missing or exits, :meth:`stats` shows an error state and it is started again with backoff
    (``restart_backoff`` = first and longest delay, jittered by :class:`~pilot_tui.backoff.Backoff`), resuming
    after the last cursor read. When journalctl says there is no journal, or none this user may read (or only the
    user's own entries), the state says so (``"no journal files: <why>"``, ``"journal unreadable: <why>"``,
    ``"following own messages only: <why>"``) instead of ``"following"``: journalctl itself waits silently then.
    """

    def __init__(
        self,
        units: Sequence[str] = (),
        positions: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        from_start: bool = False,
        journalctl: str | Sequence[str] = "journalctl",
        hostname: str | None = None,
        max_batch_lines: int = 2000,
        restart_backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.units: tuple[str, ...] = tuple(units)
        self.key = journal_key(self.units)
        self._prefix = [journalctl] if isinstance(journalctl, str) else list(journalctl)
        self._from_start = from_start
        self._host = hostname or socket.gethostname()
        self._max_batch = max_batch_lines
        self._backoff = Backoff(*restart_backoff)
        stored = (positions or {}).get(self.key)
        cursor = stored.get("cursor") if isinstance(stored, Mapping) else None
        self._cursor: str | None = cursor if isinstance(cursor, str) and cursor else None
        self._probed = False
        self._empty_at_start = False
        self._diagnosed = False
        self._problem: tuple[str, str] | None = None
        """(state, reason) when journalctl said it reads nothing or only part of the journal; shown instead of
        "following" until an entry proves otherwise (a partial view stays: its entries are the user's own)."""
        self._proc: asyncio.subprocess.Process | None = None
        self._wake: asyncio.Event | None = None
        self._state = STATE_STARTING
        self._rate = RateMeter()
        self._lines_total = 0
        self._restarts = 0
        self._skipped = 0
        self._last_stderr = ""
        self._running = False
        self._closed = False

    # ----------------------------------------------------------------------------------------------- public

    def argv(self) -> list[str]:
        """The journalctl command line for the next start (public so the UI/doctor can show it)."""
        argv = [*self._prefix, "--follow", "--output=json"]
        for unit in self.units:
            argv += ["--unit", unit]
        if self._cursor is not None:
            argv += ["--after-cursor", self._cursor]
        elif self._from_start or self._empty_at_start:
            argv.append("--no-tail")
        else:
            argv += ["--lines", "0"]
        return argv

    async def batches(self) -> AsyncIterator[LineBatch]:
        """Yield batches until :meth:`close`; may be iterated once."""
        if self._running:
            raise RuntimeError("JournalSource.batches() can only be iterated once")
        self._running = True
        if self._closed:
            return
        self._wake = asyncio.Event()
        backoff = self._backoff  # batches() runs once per source
        try:
            while not self._closed:
                if self._cursor is None and not self._from_start and not self._probed:
                    if not await self._probe():
                        self._restarts += 1
                        await self._pause(backoff.next_delay())
                        continue
                    if self._cursor is not None:
                        # Persist the starting point now, or lines logged before the first batch would be lost
                        # if we stop before any entry arrives.
                        yield self._batch([])
                if not self._diagnosed and self._cursor is None:
                    await self._diagnose()
                argv = self.argv()
                self._last_stderr = ""  # only this run's words count (e.g. for the cursor check below)
                try:
                    proc = await spawn(
                        *argv,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )
                except OSError as exc:
                    self._state = ERROR_PREFIX + self._start_error(exc)
                    self._restarts += 1
                    await self._pause(backoff.next_delay())
                    continue
                self._proc = proc
                self._state = self._following_state()
                assert proc.stdout is not None and proc.stderr is not None
                stderr_task = asyncio.create_task(self._read_stderr(proc.stderr))
                eof = False
                try:
                    async for batch in self._read(proc.stdout):
                        backoff.reset()
                        yield batch
                    eof = not self._closed
                finally:
                    # After EOF the process is exiting on its own: let it (and its last stderr words) finish
                    # rather than signal it, which could race with its exit.
                    await self._stop(proc, grace=1.0 if eof else 0.0)
                    if eof:
                        await asyncio.wait({stderr_task}, timeout=1.0)
                    stderr_task.cancel()
                    await asyncio.gather(stderr_task, return_exceptions=True)
                    self._proc = None
                if self._closed:
                    break
                self._state = (
                    ERROR_PREFIX
                    + f"journalctl exited with status {proc.returncode}"
                    + (f": {self._last_stderr}" if self._last_stderr else "")
                )
                if proc.returncode and self._cursor is not None and "cursor" in self._last_stderr.lower():
                    log.warning("journalctl rejected cursor %r; starting at the end instead", self._cursor)
                    self._cursor = None
                    self._probed = False
                self._restarts += 1
                await self._pause(backoff.next_delay())
        finally:
            await self.close()

    def stats(self) -> JournalStats:
        """Snapshot for the UI."""
        return JournalStats(
            key=self.key,
            units=self.units,
            state=self._state,
            cursor=self._cursor,
            lines_per_s=self._rate.rate(),
            lines_total=self._lines_total,
            restarts=self._restarts,
            skipped=self._skipped,
            last_stderr=self._last_stderr,
        )

    async def close(self) -> None:
        """Stop following and kill journalctl; safe to call twice and from another task."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if not self._state.startswith(ERROR_PREFIX):
            self._state = STATE_STOPPED
        proc = self._proc
        if proc is not None:
            await self._stop(proc)

    # ----------------------------------------------------------------------------------------------- internals

    def _following_state(self) -> str:
        """``"following"``, or what journalctl said is missing: ``"<state>: <reason>"``."""
        return STATE_FOLLOWING if self._problem is None else f"{self._problem[0]}: {self._problem[1]}"

    def _note_stderr(self, text: str) -> None:
        """Keep journalctl's last words and recognise the ones that mean the journal is missing or unreadable."""
        self._last_stderr = text[:300]
        lowered = text.lower()
        for words, state, reason in _PROBLEMS:
            if words in lowered:
                self._problem = (state, reason)
                if self._proc is not None:
                    self._state = self._following_state()
                return

    async def _diagnose(self) -> None:
        """Ask journalctl once, before following from no known position, whether there is a journal to read.

        ``--output=json`` keeps quiet about a host without journal files or a user who may not read them (it
        just waits), so this one short-format read of one entry is what makes journalctl say it on stderr. A
        journalctl that cannot be started, times out or says anything else changes nothing: the follow run that
        comes next reports its own failures.
        """
        self._diagnosed = True
        try:
            proc = await spawn(
                *self._prefix,
                "--lines",
                "1",
                "--output=short",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError:
            return
        try:
            _, err = await within(proc.communicate(), _PROBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            err = b""
        finally:
            if proc.returncode is None:
                await self._stop(proc)
        for line in err.decode("utf-8", "replace").splitlines():
            if line.strip():
                self._note_stderr(line.strip())

    def _start_error(self, exc: OSError) -> str:
        if isinstance(exc, FileNotFoundError):
            return f"journalctl not found: {self._prefix[0]} (is systemd installed? or give its path)"
        return f"cannot start journalctl: {exc.strerror or exc}"

    async def _probe(self) -> bool:
        """Find the cursor of the newest matching entry, so "start at the end" has a position to persist.

        False if journalctl could not be run (the caller backs off). No matching entry at all means everything
        that arrives later is new, so the follower then reads without skipping anything.
        """
        argv = [
            *self._prefix,
            "--output=json",
            "--lines",
            "1",
            *[a for u in self.units for a in ("--unit", u)],
        ]
        try:
            proc = await spawn(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            self._state = ERROR_PREFIX + self._start_error(exc)
            return False
        try:
            out, err = await within(proc.communicate(), _PROBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            await self._stop(proc)
            out, err = b"", b"timed out"
        finally:
            if proc.returncode is None:
                await self._stop(proc)
        self._probed = True
        cursor = None
        for raw in out.splitlines():
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("__CURSOR"), str):
                cursor = entry["__CURSOR"]
        if cursor is not None:
            self._cursor = cursor
        elif proc.returncode == 0:
            self._empty_at_start = True
        else:
            # Could not tell where the end is: fall back to journalctl's own "--lines 0".
            self._last_stderr = err.decode("utf-8", "replace").strip()[-300:]
        return True

    async def _read(self, stdout: asyncio.StreamReader) -> AsyncIterator[LineBatch]:
        splitter = LineSplitter(_MAX_ENTRY_BYTES)
        while not self._closed:
            chunk = await stdout.read(_READ_CHUNK)
            if not chunk:
                return
            raws = splitter.feed(chunk, len(chunk) + 1).lines
            for start in range(0, len(raws), self._max_batch):
                lines: list[str] = []
                moved = False
                for raw in raws[start : start + self._max_batch]:
                    try:
                        entry = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        self._skipped += 1
                        continue
                    if not isinstance(entry, dict):
                        self._skipped += 1
                        continue
                    cursor = entry.get("__CURSOR")
                    if isinstance(cursor, str) and cursor:
                        self._cursor = cursor
                        moved = True
                    line = format_entry(entry, self._host)
                    if line is None:
                        self._skipped += 1
                    else:
                        lines.append(line)
                if lines and self._problem is not None and self._problem[0] != STATE_PARTIAL:
                    self._problem = None  # entries arrive: the journal is there after all
                    self._state = STATE_FOLLOWING
                if lines or moved:
                    yield self._batch(lines)

    def _batch(self, lines: list[str]) -> LineBatch:
        self._lines_total += len(lines)
        self._rate.add(len(lines))
        return LineBatch(self.key, "journal", lines, {"v": POSITION_VERSION, "cursor": self._cursor})

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while True:
            line = await stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._note_stderr(text)

    async def _pause(self, delay: float) -> None:
        assert self._wake is not None
        try:
            await within(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass  # backoff elapsed: try again

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process, grace: float = 0.0) -> None:
        """Wait ``grace`` seconds for it to exit, then terminate, then kill if it lingers.

        Runs in ``finally`` blocks so that cancellation never leaks a child process.
        """
        if proc.returncode is None and grace > 0:
            try:
                await within(proc.wait(), grace)
            except asyncio.TimeoutError:
                pass  # still running: terminate it below
        if proc.returncode is not None:
            return
        try:
            proc.terminate()
        except ProcessLookupError:
            return
        try:
            await within(proc.wait(), 2.0)
        except asyncio.TimeoutError:
            await kill_and_reap(proc)
        except asyncio.CancelledError:
            _kill(proc)
            raise


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        proc.kill()
    except ProcessLookupError:
        pass  # it exited between the check and the signal: nothing left to kill
