"""Opening SQLite state files the way every store here needs them.

WAL mode so the UI can read while an engine writes; ``synchronous=NORMAL`` because a committed transaction in WAL
survives a killed process (our guarantee is "kill -9 loses nothing"; power loss may lose the last moments);
files created 0600 because they hold attacker IPs, evidence and peer addresses.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path

from pilot_tui.paths import StateError, ensure_private_dir

__all__ = ["StateError", "Tx", "open_db", "query_readonly"]


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


def open_db(path: Path | str, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) a private SQLite database in WAL mode and apply ``schema`` (idempotent DDL).

    ``path`` may be ``":memory:"`` for tests. The connection is in autocommit mode; callers group writes with
    ``with conn:`` blocks (one transaction each). Every way the file can be unusable — unsafe directory, symlink,
    unwritable, not a database — raises :class:`StateError` with one line the commands print instead of a traceback.
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
        conn.executescript(schema)
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
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


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
