"""Opening SQLite state files the way every store here needs them.

WAL mode so the UI can read while an engine writes; ``synchronous=NORMAL`` because a committed transaction in WAL
survives a killed process (our guarantee is "kill -9 loses nothing"; power loss may lose the last moments);
files created 0600 because they hold attacker IPs, evidence and peer addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import os
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from pilot_tui.backoff import Backoff
from pilot_tui.paths import StateError, ensure_private_dir

__all__ = ["Migration", "Schema", "StateError", "StoreFault", "Tx", "guarded", "migrate", "open_db", "open_readonly",
           "query_readonly", "rerun_on_fault", "rewrite_header", "run_script", "sql_statements", "until_stored"]

T = TypeVar("T")


class StoreFault(StateError):
    """A state database failed while in use: the disk is full, it became read-only, an I/O error, corrupt pages, or
    another process held it locked too long.

    Every store method raises this in place of the raw ``sqlite3``/``OSError`` (see :func:`guarded`), so an engine
    catches one type where it writes, reports ``str(fault)`` as one line and keeps what it could not store for a
    later attempt, instead of dying with a traceback. A :class:`StateError`, so a fault while a command starts is
    the same one line as any other unusable state file. ``kind`` is ``full``, ``read_only``, ``corrupt``, ``io``,
    ``locked`` or ``error``; :attr:`hint` says what would clear it.
    """

    def __init__(self, message: str, kind: str = "error", reason: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason or message
        """What went wrong without the file's path (what a reply to another node may say)."""

    @property
    def hint(self) -> str:
        return FAULT_HINTS.get(self.kind, "")

    @classmethod
    def of(cls, exc: BaseException, path: object = "") -> StoreFault | None:
        """The fault ``exc`` stands for, or ``None`` when it is not a storage fault (a programming error such as
        ``sqlite3.IntegrityError`` or ``ProgrammingError`` stays what it is)."""
        if isinstance(exc, StoreFault):
            return exc
        if isinstance(exc, OSError):
            kind = FAULT_ERRNOS.get(exc.errno or 0)
            if kind is None:
                return None
            text = exc.strerror or str(exc)
        elif isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
            text = str(exc)
            kind = _sqlite_kind(exc, text)
        else:
            return None
        where = f"{path}: " if path else ""
        return cls(f"{where}{text}", kind, text)


FAULT_ERRNOS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EFBIG: "full", errno.EROFS: "read_only",
                errno.EACCES: "read_only", errno.EPERM: "read_only", errno.EIO: "io"}
"""The OS errors that mean the state file cannot be written right now (anything else is not ours to absorb)."""

FAULT_HINTS = {
    "full": "free some disk space",
    "read_only": "make the state dir writable again",
    "corrupt": "stop, move the file away and start fresh (export what is still readable first)",
    "io": "check the disk",
    "locked": "another process holds the database",
}

_SQLITE_KINDS = {"SQLITE_FULL": "full", "SQLITE_READONLY": "read_only", "SQLITE_PERM": "read_only",
                 "SQLITE_CORRUPT": "corrupt", "SQLITE_NOTADB": "corrupt", "SQLITE_IOERR": "io", "SQLITE_CANTOPEN": "io",
                 "SQLITE_BUSY": "locked", "SQLITE_LOCKED": "locked"}


def _sqlite_kind(exc: BaseException, text: str) -> str:
    """``full``/``read_only``/… from SQLite's error name (``SQLITE_IOERR_WRITE`` → ``io``), else from its message
    (an error raised by hand, as tests do, has no name)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    base = "_".join(name.split("_")[:2])
    if base in _SQLITE_KINDS:
        return _SQLITE_KINDS[base]
    lowered = text.lower()
    for needle, kind in (("full", "full"), ("readonly", "read_only"), ("read-only", "read_only"),
                         ("malformed", "corrupt"), ("not a database", "corrupt"), ("i/o", "io"), ("locked", "locked")):
        if needle in lowered:
            return kind
    return "error"


def guarded(cls: type[T]) -> type[T]:
    """Class decorator for a store: its constructor and every public method raise :class:`StoreFault` instead of a
    raw storage error (``self.path`` names the file in the message).

    One place that turns "database or disk is full" into a fault the engines handle, whichever statement met it —
    a write, a commit, or a read that hit a corrupt page.
    """
    for name, attr in list(vars(cls).items()):
        if inspect.isfunction(attr) and (name == "__init__" or not name.startswith("_")) and name != "close":
            setattr(cls, name, _guard(attr))
    return cls


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except StoreFault:
            raise
        except (sqlite3.Error, OSError) as exc:
            fault = StoreFault.of(exc, getattr(self, "path", ""))
            if fault is None:
                raise
            raise fault from exc

    return wrapper


RETRY_FIRST_S = 0.5
"""First wait before writing again after a :class:`StoreFault` (doubling each time up to :data:`RETRY_MAX_S`,
jittered by :class:`~pilot_tui.backoff.Backoff`)."""
RETRY_MAX_S = 30.0


# Two overloads so a coroutine function's result type is its awaited value (``T | Awaitable[T]`` alone is ambiguous).
@overload
async def until_stored(write: Callable[[], Awaitable[T]], on_fault: Callable[[StoreFault], object]) -> T: ...
@overload
async def until_stored(write: Callable[[], T], on_fault: Callable[[StoreFault], object]) -> T: ...
async def until_stored(write: Callable[[], T | Awaitable[T]], on_fault: Callable[[StoreFault], object]) -> T:
    """Run ``write`` until it stops raising :class:`StoreFault`, waiting longer each time; returns its result.

    What a receiver does with something it took on and must not lose (an inbox message, a log batch and its
    position, a decision already carried out): hold on to it, say why (``on_fault``, each attempt) and try again
    until the disk has room or the directory is writable again. Cancellation ends it, the item still not stored —
    which is what makes it safe: it was never marked done.
    """
    backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
    while True:
        try:
            result = write()
            return await result if inspect.isawaitable(result) else result
        except StoreFault as fault:
            on_fault(fault)
        await asyncio.sleep(backoff.next_delay())


async def rerun_on_fault(body: Callable[[], Awaitable[None]], on_fault: Callable[[StoreFault], object],
                         probe: Callable[[], object]) -> None:
    """Run the background loop ``body`` until it returns; when a :class:`StoreFault` ends it, report it, pause
    (longer while it keeps failing fast), wait until ``probe`` — a write — goes through, and run it again.

    For loops whose unit of work stays on record until done (outbox rows, queued replies, due expiries): restarting
    them redoes what the fault interrupted, so nothing is lost, and the probe keeps a failing disk from being hammered.
    """
    backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
    while True:
        started = time.monotonic()
        try:
            await body()
            return
        except StoreFault as fault:
            on_fault(fault)
        if time.monotonic() - started > 60:  # it ran a while: a new fault, not the same one again
            backoff.reset()
        await asyncio.sleep(backoff.next_delay())
        await until_stored(probe, on_fault)


def rewrite_header(conn: sqlite3.Connection) -> None:
    """A write that changes nothing: set the header's ``user_version`` to what it is. It fails on a full disk or a
    read-only file like any write, so it tells when a store takes writes again."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _refuse_links(path: Path) -> None:
    """Refuse ``path`` or its -wal/-shm companions when they are symlinks (or not regular files).

    SQLite follows links, and we chmod the file: a planted ``orchestrator.db -> victim`` would make us change the
    victim's mode and write our pages into it; a dangling one would create our database wherever it points.
    """
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StateError(f"cannot use {candidate}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            raise StateError(f"{candidate} is a symbolic link: refusing to follow it (remove it to start fresh)")
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{candidate} is not a regular file: refusing to use it")


def _touch_private(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite opens it, never through a symlink; SQLite gives its -wal/-shm
    files the same mode."""
    _refuse_links(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link since the check
            raise StateError(f"{path} is a symbolic link: refusing to follow it") from None
        raise StateError(f"cannot open state file {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


Migration = str | Callable[[sqlite3.Connection], None]
"""One step of a :class:`Schema`: SQL statements, or a function for what SQL alone cannot say (add a column only
when it is missing). It runs inside the opening transaction: it must not COMMIT, and must not ``executescript``
(which commits first)."""


@dataclass(frozen=True, slots=True)
class Schema:
    """A store's tables as the ordered steps that build them: ``steps[i]`` takes a file from version ``i`` to
    ``i + 1``, and the version a file is at lives in its header (``PRAGMA user_version``).

    Why: ``CREATE TABLE IF NOT EXISTS`` alone cannot change a column, so the first schema change would break every
    existing install. To change a table, append a step (never edit a shipped one) and a fixture of the previous
    version to ``tests/data/migrations``. Step 1 is what every store looked like before versions existed, written
    so it also completes any older unversioned file (they all say version 0).
    """

    name: str
    """What the file is to a user (``event store``), for the error lines."""
    steps: tuple[Migration, ...]

    @property
    def version(self) -> int:
        """The version this code writes: a file above it was made by a newer pilot-tui."""
        return len(self.steps)


def sql_statements(script: str) -> list[str]:
    """``script`` cut into single statements (``execute`` runs one; ``executescript`` would commit the migration
    half-way). ``sqlite3.complete_statement`` decides, so a ``;`` in a comment or inside a trigger's body does not
    cut."""
    statements: list[str] = []
    pending = ""
    pieces = script.split(";")
    for i, piece in enumerate(pieces):
        pending += piece if i == len(pieces) - 1 else piece + ";"
        if pending.strip() and sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())  # a comment, or a statement missing its ";": SQLite judges it
    return statements


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run the statements of ``script`` in the current transaction (what ``executescript`` cannot: it commits)."""
    for statement in sql_statements(script):
        conn.execute(statement)


def _user_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _too_new(path: Path | str, schema: Schema, found: int) -> StateError:
    return StateError(f"{path} was written by a newer pilot-tui ({schema.name} version {found}; this one knows up "
                      f"to {schema.version}): upgrade pilot-tui, or move the file away to start fresh")


def migrate(conn: sqlite3.Connection, path: Path | str, schema: Schema) -> None:
    """Bring the database on ``conn`` to ``schema.version``: every missing step, then the new version number, in one
    transaction — a kill or a failing step leaves the file exactly as it was, to be upgraded on the next start.

    Raises :class:`StateError` for a file written by a newer pilot-tui (its tables may mean something this code
    does not know; writing to it could corrupt what the newer version relies on) or a step that fails.
    """
    found = _user_version(conn)
    if found > schema.version:
        raise _too_new(path, schema, found)
    if found == schema.version:
        return
    with Tx(conn):
        found = _user_version(conn)  # another process may have upgraded it while we waited for the lock
        if found > schema.version:
            raise _too_new(path, schema, found)
        try:
            for step in schema.steps[found:]:
                if callable(step):
                    step(conn)
                else:
                    run_script(conn, step)
        except sqlite3.OperationalError as exc:
            fault = StoreFault.of(exc)
            if fault is not None and fault.kind != "error":
                raise  # full disk, locked, I/O: the file may be fine, say what is wrong with the disk
            raise StateError(f"cannot upgrade {path} from {schema.name} version {found} to {schema.version}: "
                             f"{exc}; move it away to start fresh") from None
        conn.execute(f"PRAGMA user_version = {schema.version:d}")


def open_db(path: Path | str, schema: Schema) -> sqlite3.Connection:
    """Open (creating if needed) a private SQLite database in WAL mode and bring it to ``schema``'s version
    (:func:`migrate`).

    ``path`` may be ``":memory:"`` for tests. The connection is in autocommit mode; callers group writes with
    ``with conn:`` blocks (one transaction each). Every way the file can be unusable — unsafe directory, symlink,
    unwritable, not a database, written by a newer version — raises :class:`StateError` with one line the commands
    print instead of a traceback.
    """
    if str(path) != ":memory:":
        p = Path(path)
        ensure_private_dir(p.parent)
        _touch_private(p)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, path, schema)
    except StateError:
        conn.close()
        raise
    except sqlite3.OperationalError as exc:
        conn.close()
        raise StateError(f"cannot open database {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StateError(f"{path} is not a pilot-tui database or is corrupt: {exc}; move it away to start fresh") \
            from None
    return conn


class Tx:
    """``with Tx(conn):`` — one explicit transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on error).

    ``sqlite3``'s own context manager does not BEGIN in autocommit mode, so grouping writes needs this.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._rollback()
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()  # a COMMIT that failed (disk full) may leave the transaction open: end it
            raise

    def _rollback(self) -> None:
        """Roll back if a transaction is still open. SQLite may already have rolled back by itself (it does on
        SQLITE_FULL and I/O errors), and a failing ROLLBACK must not hide the error that caused it."""
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")


def open_readonly(path: Path | str, schema: Schema | None = None) -> sqlite3.Connection:
    """Open a state file only to read it — for a command that writes nothing (``export``) when the file or its
    directory is read-only (a read-only mount, a backup), where :func:`open_db` cannot. Never through a symlink.

    ``mode=ro`` first; a WAL database with no ``-shm`` beside it cannot be opened that way in a read-only directory,
    so then, and only when no ``-wal`` holds commits the main file lacks, as ``immutable``. Raises
    :class:`StateError`, also for a file a newer pilot-tui wrote when ``schema`` is given (its tables may no longer
    mean what this code reads).
    """
    p = Path(path)
    _refuse_links(p)
    uri = Path(os.path.abspath(p)).as_uri()
    queries = ["mode=ro"] if Path(f"{p}-wal").exists() else ["mode=ro", "immutable=1"]
    problem = ""
    for query in queries:
        conn = sqlite3.connect(f"{uri}?{query}", uri=True, check_same_thread=False, timeout=5.0)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            if schema is not None and (found := _user_version(conn)) > schema.version:
                conn.close()
                raise _too_new(p, schema, found)
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()
            problem = str(exc)
    raise StateError(f"cannot read {p}: {problem}")


def query_readonly(path: Path | str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run one query against another process's database, read-only (WAL: it never blocks that writer).

    Returns ``[]`` while the file or its tables do not exist yet — what a test or benchmark polling a starting
    process wants.
    """
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
