"""Opening SQLite state files the way every store here needs them.

WAL mode so the UI can read while an engine writes; ``synchronous=NORMAL`` because a committed transaction in WAL
survives a killed process (our guarantee is "kill -9 loses nothing"; power loss may lose the last moments);
files created 0600 because they hold attacker IPs, evidence and peer addresses.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def _touch_private(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite opens it; SQLite gives its -wal/-shm files the same mode."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def open_db(path: Path | str, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) a private SQLite database in WAL mode and apply ``schema`` (idempotent DDL).

    ``path`` may be ``":memory:"`` for tests. The connection is in autocommit mode; callers group writes with
    ``with conn:`` blocks (one transaction each).
    """
    if str(path) != ":memory:":
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _touch_private(p)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(schema)
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
