"""The executor's state: active blocks with their expiry, answers by request id, processed inbox messages, replies,
and the Pilot address each ``--obey`` hostname was pinned to (so a restart cannot be talked into obeying another node
that took the hostname over).

Everything one request changes is written in **one transaction** (:meth:`BlockStore.record`): the block row, the
cached answer, the history line, the "this inbox message is done" mark and the reply waiting to be sent. So a kill at
any point either redoes the whole request on restart (the inbox message is still unprocessed) or finds it complete
with its reply queued — never a block without its record or an answer that is never sent.

Replies are an outbox: the engine sends them in the background and retries with back-off while the orchestrator is
unreachable, because a block that happened must be reported. Tables stay bounded by :meth:`BlockStore.prune`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .db import Schema, Tx, guarded, open_db, rewrite_header

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS blocks (
    ip TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    request_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    reason TEXT,
    event_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_expiry ON blocks (expires_at);
CREATE TABLE IF NOT EXISTS answers (
    request_id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    result BLOB NOT NULL,
    decided_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    request_id TEXT,
    sender TEXT,
    message_id TEXT,
    action TEXT,
    ip TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    argv TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS history_request ON history (request_id);
CREATE TABLE IF NOT EXISTS processed (
    message_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    reply_to TEXT,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS replies_due ON replies (sent_at, next_at);
CREATE TABLE IF NOT EXISTS obey_pins (
    hostname TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    node_id INTEGER,
    pinned_at REAL NOT NULL
);
"""

SCHEMA = Schema("executor store", (SCHEMA_V1,))
"""Versions of this file (see :class:`~.db.Schema`): version 1 is the tables as they stood when versions began;
append a step to change one."""


@dataclass(frozen=True, slots=True)
class Block:
    """An address this executor blocked, who asked (``sender``, inbox ``message_id`` to reply to) and until when."""

    ip: str
    backend: str
    request_id: str
    sender: str
    message_id: str
    created_at: float
    expires_at: float
    reason: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A result waiting to go to ``target`` with ``--reply-to reply_to`` (``id`` is 0 until stored)."""

    target: str
    reply_to: str | None
    payload: bytes
    id: int = 0
    attempts: int = 0
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Record:
    """Everything one decision changes, written together by :meth:`BlockStore.record`.

    ``answer`` (the encoded result) is cached under ``request_id`` for idempotency when set; ``put_block`` inserts or
    replaces an active block; ``drop_block`` removes one; ``processed`` marks an inbox message as done.
    """

    at: float
    kind: str
    status: str
    request_id: str | None = None
    sender: str | None = None
    message_id: str | None = None
    action: str | None = None
    ip: str | None = None
    detail: str = ""
    argv: tuple[tuple[str, ...], ...] = ()
    answer: bytes | None = None
    put_block: Block | None = None
    drop_block: str | None = None
    processed: str | None = None
    reply: Reply | None = None


def _block(row: sqlite3.Row | tuple[Any, ...]) -> Block:
    ip, backend, request_id, sender, message_id, reason, event_id, created_at, expires_at = row
    return Block(ip, backend, request_id, sender, message_id, created_at, expires_at, reason, event_id)


_BLOCK_COLS = "ip, backend, request_id, sender, message_id, reason, event_id, created_at, expires_at"


@guarded
class BlockStore:
    """The executor's SQLite file (0600, WAL). One connection, used from the engine's event loop only."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.conn = open_db(path, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def check_writable(self) -> None:
        """Raise :class:`~.db.StoreFault` unless the file takes a write (changes nothing; see ``rewrite_header``)."""
        rewrite_header(self.conn)

    # -- reads -----------------------------------------------------------------------------------------------

    def is_processed(self, message_id: str) -> bool:
        """True once an inbox message was fully handled (the inbox watcher's ``seen`` callback)."""
        return self.conn.execute("SELECT 1 FROM processed WHERE message_id = ?", (message_id,)).fetchone() is not None

    def get_block(self, ip: str) -> Block | None:
        row = self.conn.execute(f"SELECT {_BLOCK_COLS} FROM blocks WHERE ip = ?", (ip,)).fetchone()
        return _block(row) if row else None

    def active_blocks(self) -> list[Block]:
        """All blocks, soonest expiry first (what the UI lists)."""
        return [_block(r) for r in self.conn.execute(f"SELECT {_BLOCK_COLS} FROM blocks ORDER BY expires_at, ip")]

    def due_blocks(self, now: float) -> list[Block]:
        return [_block(r) for r in self.conn.execute(
            f"SELECT {_BLOCK_COLS} FROM blocks WHERE expires_at <= ? ORDER BY expires_at", (now,))]

    def next_expiry(self, exclude: Collection[str] = ()) -> float | None:
        """The soonest expiry, ignoring the blocks in ``exclude`` (those waiting for a retry)."""
        marks = ",".join("?" * len(exclude))
        row = self.conn.execute(f"SELECT MIN(expires_at) FROM blocks WHERE ip NOT IN ({marks})",
                                tuple(exclude)).fetchone()
        return row[0] if row and row[0] is not None else None

    def answer(self, request_id: str) -> tuple[str, bytes] | None:
        """The cached (sender, encoded result) of a request decided before, or ``None``."""
        row = self.conn.execute("SELECT sender, result FROM answers WHERE request_id = ?", (request_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def history(self, limit: int = 200) -> list[dict[str, Any]]:
        """Newest decisions first (requests and expiries), for the UI and ``export``."""
        cur = self.conn.execute(
            "SELECT at, kind, request_id, sender, message_id, action, ip, status, detail, argv FROM history "
            "ORDER BY id DESC LIMIT ?", (limit,))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
        for row in rows:
            row["argv"] = orjson.loads(row["argv"])
        return rows

    def obey_pins(self) -> dict[str, tuple[str, int | None]]:
        """hostname → (Pilot address, node id) as first resolved; never changed by a later resolution."""
        return {h: (a, n) for h, a, n in self.conn.execute("SELECT hostname, address, node_id FROM obey_pins")}

    # -- writes ----------------------------------------------------------------------------------------------

    def pin_obey(self, hostname: str, address: str, node_id: int | None, at: float) -> None:
        """Remember the node an ``--obey`` hostname resolved to the first time; a pin already there is kept."""
        self.conn.execute("INSERT OR IGNORE INTO obey_pins (hostname, address, node_id, pinned_at) VALUES (?,?,?,?)",
                          (hostname, address, node_id, at))

    def record(self, rec: Record) -> int | None:
        """Apply one decision atomically; returns the id of the queued reply (``None`` when there is none)."""
        reply_id: int | None = None
        with Tx(self.conn) as c:
            c.execute(
                "INSERT INTO history (at, kind, request_id, sender, message_id, action, ip, status, detail, argv) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.at, rec.kind, rec.request_id, rec.sender, rec.message_id, rec.action, rec.ip, rec.status,
                 rec.detail, orjson.dumps([list(a) for a in rec.argv]).decode()))
            if rec.answer is not None and rec.request_id is not None:
                c.execute("INSERT OR REPLACE INTO answers (request_id, sender, result, decided_at) VALUES (?,?,?,?)",
                          (rec.request_id, rec.sender or "", rec.answer, rec.at))
            if rec.drop_block is not None:
                c.execute("DELETE FROM blocks WHERE ip = ?", (rec.drop_block,))
            if rec.put_block is not None:
                b = rec.put_block
                c.execute(f"INSERT OR REPLACE INTO blocks ({_BLOCK_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                          (b.ip, b.backend, b.request_id, b.sender, b.message_id, b.reason, b.event_id,
                           b.created_at, b.expires_at))
            if rec.processed is not None:
                c.execute("INSERT OR IGNORE INTO processed (message_id, at) VALUES (?, ?)", (rec.processed, rec.at))
            if rec.reply is not None:
                cur = c.execute(
                    "INSERT INTO replies (target, reply_to, payload, created_at, next_at) VALUES (?,?,?,?,?)",
                    (rec.reply.target, rec.reply.reply_to, rec.reply.payload, rec.at, rec.at))
                reply_id = cur.lastrowid
        return reply_id

    def mark_processed(self, message_id: str, at: float) -> None:
        """Mark a message we deliberately ignore (our own, or a result) so it is not looked at again."""
        self.conn.execute("INSERT OR IGNORE INTO processed (message_id, at) VALUES (?, ?)", (message_id, at))

    # -- the reply outbox ------------------------------------------------------------------------------------

    def due_replies(self, now: float, limit: int = 50) -> list[Reply]:
        rows = self.conn.execute(
            "SELECT id, target, reply_to, payload, attempts, created_at FROM replies "
            "WHERE sent_at IS NULL AND next_at <= ? ORDER BY id LIMIT ?", (now, limit)).fetchall()
        return [Reply(t, rt, bytes(p), i, a, c) for i, t, rt, p, a, c in rows]

    def next_reply_at(self) -> float | None:
        row = self.conn.execute("SELECT MIN(next_at) FROM replies WHERE sent_at IS NULL").fetchone()
        return row[0] if row and row[0] is not None else None

    def reply_sent(self, reply_id: int, at: float) -> None:
        self.conn.execute("UPDATE replies SET sent_at = ?, attempts = attempts + 1 WHERE id = ?", (at, reply_id))

    def reply_failed(self, reply_id: int, error: str, next_at: float | None) -> None:
        """Count a failed attempt; ``next_at=None`` gives up on it (kept, marked sent at -1, for the record)."""
        if next_at is None:
            self.conn.execute("UPDATE replies SET sent_at = -1, attempts = attempts + 1, last_error = ? WHERE id = ?",
                              (error[:500], reply_id))
        else:
            self.conn.execute("UPDATE replies SET next_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                              (next_at, error[:500], reply_id))

    def pending_replies(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM replies WHERE sent_at IS NULL").fetchone()[0])

    # -- bounds ----------------------------------------------------------------------------------------------

    def prune(self, before: float, *, keep: Iterable[str] = (), keep_history: int = 10_000) -> None:
        """Forget processed marks, cached answers and finished replies older than ``before``; cap the history.

        ``keep``: ids of messages still in the inbox — their processed marks stay whatever their age, or they would
        be processed again.
        """
        keep_ids = set(keep)
        old = [r[0] for r in self.conn.execute("SELECT message_id FROM processed WHERE at < ?", (before,))]
        with Tx(self.conn) as c:
            c.executemany("DELETE FROM processed WHERE message_id = ?", [(m,) for m in old if m not in keep_ids])
            c.execute("DELETE FROM answers WHERE decided_at < ?", (before,))
            c.execute("DELETE FROM replies WHERE sent_at IS NOT NULL AND created_at < ?", (before,))
            c.execute("DELETE FROM history WHERE id <= (SELECT MAX(id) FROM history) - ?", (keep_history,))
