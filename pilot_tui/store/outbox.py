"""The oracle's durable outbox: detections waiting to be delivered, and the log positions that produced them.

A detection and the log position after the line that triggered it are committed in ONE transaction
(:meth:`Outbox.record`), so a kill at any moment either keeps both or neither: the restarted tailer re-reads the
lines and re-detects (at worst a resend, which the orchestrator dedups by id) — it never skips a line whose
detection was not saved. Rows leave ``pending`` only when the peer acknowledged them.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Mapping, Sized
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from pilot_tui.model import ThreatEvent

from .db import Schema, Tx, guarded, open_db, rewrite_header

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS outbox (
    rowid        INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    seq          INTEGER NOT NULL,
    created      REAL NOT NULL,
    body         BLOB NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | rejected
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at REAL,
    ack          TEXT                               -- stored | duplicate | unconfirmed | daemon-ack | reason
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, rowid);
CREATE TABLE IF NOT EXISTS offsets (
    key      TEXT PRIMARY KEY,
    position BLOB NOT NULL,
    updated  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

SCHEMA = Schema("oracle outbox", (SCHEMA_V1,))
"""Versions of this file (see :class:`~.db.Schema`): version 1 is the tables as they stood when versions began;
append a step to change one."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One pending event as stored: ``body`` is its wire JSON (without batch framing)."""

    rowid: int
    id: str
    seq: int
    created: float
    body: bytes
    attempts: int


@guarded
class Outbox:
    """SQLite-backed outbox + offsets for one oracle (one sensor). Not thread-safe: use from the engine's loop."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.conn = open_db(path, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def check_writable(self) -> None:
        """Raise :class:`~.db.StoreFault` unless the file takes a write (changes nothing; see ``rewrite_header``)."""
        rewrite_header(self.conn)

    # -- writing ---------------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        return int(row[0]) if row else 0

    def record(self, events: Iterable[ThreatEvent], offsets: Mapping[str, Any]) -> list[ThreatEvent]:
        """Assign per-sensor ``seq`` numbers, store the events as pending and save ``offsets`` — atomically.

        Returns the events as stored (with ``seq``). ``offsets`` maps a source key to its JSON-able position.
        """
        stored: list[ThreatEvent] = []
        now = time.time()
        with Tx(self.conn) as c:
            seq = self._next_seq()
            for event in events:
                event = replace(event, seq=seq)
                c.execute(
                    "INSERT OR IGNORE INTO outbox(id, seq, created, body) VALUES (?, ?, ?, ?)",
                    (event.id, seq, now, event.to_json()),
                )
                stored.append(event)
                seq += 1
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq', ?)", (str(seq),))
            for key, position in offsets.items():
                c.execute(
                    "INSERT OR REPLACE INTO offsets(key, position, updated) VALUES (?, ?, ?)",
                    (key, orjson.dumps(position), now),
                )
        return stored

    def mark_delivered(self, ids: Iterable[str], how: str) -> int:
        """Mark acknowledged ids delivered (``how``: stored/duplicate/unconfirmed/daemon-ack). Returns rows changed."""
        now = time.time()
        with Tx(self.conn) as c:
            cur = c.executemany(
                "UPDATE outbox SET state='delivered', delivered_at=?, ack=? WHERE id=? AND state='pending'",
                [(now, how, i) for i in ids],
            )
        return cur.rowcount

    def mark_rejected(self, reasons: Mapping[str, str]) -> int:
        """The peer refused these ids for good (validation): stop resending them, keep the reason."""
        now = time.time()
        with Tx(self.conn) as c:
            cur = c.executemany(
                "UPDATE outbox SET state='rejected', delivered_at=?, ack=? WHERE id=? AND state='pending'",
                [(now, reason, i) for i, reason in reasons.items()],
            )
        return cur.rowcount

    def mark_failed(self, ids: Iterable[str], error: str) -> None:
        """Count a failed attempt and remember the error; the rows stay pending."""
        with Tx(self.conn) as c:
            c.executemany(
                "UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=? AND state='pending'",
                [(error, i) for i in ids],
            )

    def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Delete delivered/rejected rows older than ``older_than_s`` (pending rows are never pruned)."""
        with Tx(self.conn) as c:
            cur = c.execute(
                "DELETE FROM outbox WHERE state!='pending' AND delivered_at < ?", (time.time() - older_than_s,)
            )
        return cur.rowcount

    # -- reading ---------------------------------------------------------------------------------------------

    def pending(
        self, *, limit: int = 100, max_bytes: int = 256 * 1024, skip: Container[str] = frozenset()
    ) -> list[OutboxRow]:
        """Oldest pending rows, at most ``limit`` of them and about ``max_bytes`` of bodies (at least one row).

        Rows whose id is in ``skip`` (already on their way in another send) are passed over.
        """
        rows: list[OutboxRow] = []
        size = 0
        extra = len(skip) if isinstance(skip, Sized) else 0
        for r in self.conn.execute(
            "SELECT rowid, id, seq, created, body, attempts FROM outbox WHERE state='pending' ORDER BY rowid LIMIT ?",
            (limit + extra,),
        ):
            if r[1] in skip:
                continue
            if len(rows) >= limit:
                break
            body = bytes(r[4])
            if rows and size + len(body) > max_bytes:
                break
            rows.append(OutboxRow(r[0], r[1], r[2], r[3], body, r[5]))
            size += len(body) + 1
        return rows

    def depth(self) -> int:
        """How many events wait to be delivered."""
        return int(self.conn.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'").fetchone()[0])

    def oldest_pending_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest pending event was detected, or ``None`` when nothing waits."""
        row = self.conn.execute("SELECT MIN(created) FROM outbox WHERE state='pending'").fetchone()
        return None if row[0] is None else (now or time.time()) - row[0]

    def counts(self) -> dict[str, int]:
        """Rows per state, for status lines."""
        return {s: n for s, n in self.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")}

    def state_of(self, event_id: str) -> tuple[str, str | None] | None:
        row = self.conn.execute("SELECT state, ack FROM outbox WHERE id=?", (event_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def all_ids(self) -> list[str]:
        """Every id ever recorded (tests and the chaos harness compare this with what the orchestrator stored)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM outbox ORDER BY rowid")]

    def get_meta(self, key: str) -> str | None:
        """A small persisted fact (e.g. what we learned about a peer)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with Tx(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def offsets(self) -> dict[str, Any]:
        """Persisted source positions, to hand back to the tailer on restart."""
        return {k: orjson.loads(v) for k, v in self.conn.execute("SELECT key, position FROM offsets")}
