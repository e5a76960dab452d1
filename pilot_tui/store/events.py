"""The orchestrator's event store: accepted events (deduplicated by id), quarantine, sensors, triage, mitigations.

Dedup is the database's job (``id`` is UNIQUE): a resend after an oracle crash, or the same event arriving by stream
and by inbox, is counted as a duplicate and not shown twice. Per-sensor ``seq`` numbers reveal gaps (events a
sensor produced that never arrived) and replays. Everything an analyst does (acknowledge, false positive, mitigate)
is persisted with who and when, so a restart shows the same feed.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pilot_tui.model import Rejected, ThreatEvent, decode_event

from .db import Schema, Tx, guarded, open_db, rewrite_header, run_script

QUARANTINE_RAW_CAP = 4096
"""Bytes of a rejected payload kept for the analyst to look at (the full length is recorded separately)."""

QUARANTINE_SAMPLES = 10
"""Refused lines of one payload kept individually (line number, reason, detail, first bytes); the rest are only
counted — one hostile payload must cost one row, not one row per line."""

QUARANTINE_SAMPLE_BYTES = 256
"""Bytes of each sampled refused line kept."""

QUARANTINE_MAX_ROWS = 10_000
"""Quarantined payloads kept; beyond this the oldest are dropped (and counted) so junk cannot fill the disk."""

QUARANTINE_MAX_BYTES = 32 * 1024 * 1024
"""Stored bytes (raw + detail + samples) of quarantine kept; beyond this the oldest rows are dropped too."""

MAX_SEQ_JUMP = 100_000
"""A sensor's seq more than this above its highest seen so far does not move the high-water mark: one forged
``"seq": 2**53`` would otherwise swallow every later real gap. The event is stored, flagged ``seq_jump``."""

TRIAGE_STATES = ("new", "acknowledged", "mitigating", "mitigated", "false_positive")
MAX_NOTE_CHARS = 500
"""Longest analyst note on a triage change (the note dialog stops there; shared notes longer are refused)."""

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS events (
    rowid       INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    ts          TEXT,
    source_ip   TEXT NOT NULL,
    anomaly     TEXT NOT NULL,
    severity    INTEGER NOT NULL,
    sensor      TEXT,
    seq         INTEGER,
    count       INTEGER,
    sender      TEXT NOT NULL DEFAULT '',
    transport   TEXT NOT NULL DEFAULT '',
    body        BLOB NOT NULL,
    state       TEXT NOT NULL DEFAULT 'new',
    note        TEXT,
    state_by    TEXT,
    state_at    REAL,
    mitigation  TEXT,
    flags       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_ip ON events(source_ip);
CREATE INDEX IF NOT EXISTS events_sev ON events(severity, rowid);
CREATE INDEX IF NOT EXISTS events_state ON events(state, rowid);
CREATE INDEX IF NOT EXISTS events_received ON events(received_at);
CREATE INDEX IF NOT EXISTS events_sensor_seq ON events(sensor, seq);
CREATE TABLE IF NOT EXISTS quarantine (
    rowid       INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    sender      TEXT NOT NULL DEFAULT '',
    transport   TEXT NOT NULL DEFAULT '',
    raw         BLOB NOT NULL,
    raw_len     INTEGER NOT NULL,
    lines       INTEGER NOT NULL DEFAULT 1,      -- refused lines of this payload (one row per payload)
    samples     BLOB                             -- NDJSON: the first refused lines (line, reason, detail, raw)
);
CREATE TABLE IF NOT EXISTS sensors (
    sensor     TEXT PRIMARY KEY,
    address    TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    events     INTEGER NOT NULL DEFAULT 0,
    max_seq    INTEGER,
    gaps       INTEGER NOT NULL DEFAULT 0,
    mismatches INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inbox_seen (
    message_id TEXT PRIMARY KEY,
    seen_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mitigations (
    request_id   TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    source_ip    TEXT NOT NULL,
    requested_at REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'requested',
    detail       TEXT,
    updated_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mitigation_targets (
    request_id   TEXT PRIMARY KEY,
    address      TEXT NOT NULL                      -- the exec node's Pilot address the request went to
);
"""

QUARANTINE_STATS = (
    """CREATE TABLE IF NOT EXISTS quarantine_stats (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        rows          INTEGER NOT NULL,
        lines         INTEGER NOT NULL,
        bytes         INTEGER NOT NULL,
        dropped       INTEGER NOT NULL DEFAULT 0,
        dropped_lines INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TRIGGER IF NOT EXISTS quarantine_stats_add AFTER INSERT ON quarantine BEGIN
        UPDATE quarantine_stats SET rows = rows + 1, lines = lines + NEW.lines,
            bytes = bytes + length(NEW.raw) + length(NEW.detail) + COALESCE(length(NEW.samples), 0) WHERE id = 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS quarantine_stats_del AFTER DELETE ON quarantine BEGIN
        UPDATE quarantine_stats SET rows = rows - 1, lines = lines - OLD.lines,
            bytes = bytes - length(OLD.raw) - length(OLD.detail) - COALESCE(length(OLD.samples), 0) WHERE id = 1;
    END""",
)
"""Counters kept by triggers in the writing transaction, so counts are O(1) reads (the status bar asks on the UI
thread; ``COUNT(*)`` over millions of rows took 400 ms) and stay exact whoever inserts or deletes."""


def complete_quarantine(conn: sqlite3.Connection) -> None:
    """Part of version 1: a file made before per-payload quarantine gets the ``lines``/``samples`` columns (old
    rows are one line each) and the counters, counted once from what is there. Does nothing to a file that has
    them (every unversioned file is version 0, whichever shape it has)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(quarantine)")}
    if "lines" not in have:
        conn.execute("ALTER TABLE quarantine ADD COLUMN lines INTEGER NOT NULL DEFAULT 1")
    if "samples" not in have:
        conn.execute("ALTER TABLE quarantine ADD COLUMN samples BLOB")
    for statement in QUARANTINE_STATS:
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM quarantine_stats WHERE id = 1").fetchone() is None:
        conn.execute(
            "INSERT INTO quarantine_stats(id, rows, lines, bytes) SELECT 1, COUNT(*), COALESCE(SUM(lines), 0), "
            "COALESCE(SUM(length(raw) + length(detail) + COALESCE(length(samples), 0)), 0) FROM quarantine"
        )


def _version_1(conn: sqlite3.Connection) -> None:
    """The tables as they stood when versions began, completing a file from before per-payload quarantine."""
    run_script(conn, SCHEMA_V1)
    complete_quarantine(conn)


SCHEMA = Schema("event store", (_version_1,))
"""Versions of ``orchestrator.db`` (see :class:`~.db.Schema`; append a step to change a table)."""


@dataclass(slots=True)
class IngestResult:
    """What one payload did to the store — also what the stream receiver replies to the sender."""

    stored: list[ThreatEvent] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    """The id of every valid event handed in, in payload order (stored or not): lines an acknowledgement covers."""
    rejected: list[Rejected] = field(default_factory=list)
    gaps: list[tuple[str, int, int]] = field(default_factory=list)
    """(sensor, first missing seq, last missing seq) for each hole this payload revealed."""
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)
    """(sensor, address it is bound to, address this event came from)."""
    seq_jumps: list[tuple[str, int, int]] = field(default_factory=list)
    """(sensor, highest seq so far, the implausible seq): jumps that were not taken as the new high-water mark."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event plus the orchestrator's bookkeeping about it."""

    rowid: int
    event: ThreatEvent
    received_at: float
    sender: str
    transport: str
    state: str
    note: str | None
    state_by: str | None
    state_at: float | None
    mitigation: dict[str, Any] | None
    flags: str


EVENT_COLUMNS = "rowid, body, received_at, sender, transport, state, note, state_by, state_at, mitigation, flags"


def row_to_stored(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(
        rowid=row[0],
        event=decode_event(bytes(row[1])),
        received_at=row[2],
        sender=row[3],
        transport=row[4],
        state=row[5],
        note=row[6],
        state_by=row[7],
        state_at=row[8],
        mitigation=orjson.loads(row[9]) if row[9] else None,
        flags=row[10],
    )


@guarded
class EventStore:
    """SQLite event store of one orchestrator. Use from one thread (the engine's loop); reads are cheap."""

    def __init__(self, path: Path | str, *, quarantine_max_rows: int = QUARANTINE_MAX_ROWS,
                 quarantine_max_bytes: int = QUARANTINE_MAX_BYTES) -> None:
        self.path = path
        self.conn = open_db(path, SCHEMA)
        self.quarantine_max_rows = quarantine_max_rows
        self.quarantine_max_bytes = quarantine_max_bytes

    def close(self) -> None:
        self.conn.close()

    def check_writable(self) -> None:
        """Raise :class:`~.db.StoreFault` unless the file takes a write (changes nothing; see ``rewrite_header``)."""
        rewrite_header(self.conn)

    def ingest(
        self, events: Iterable[ThreatEvent], rejected: Iterable[Rejected] = (), *, sender: str = "",
        transport: str = "", payload: bytes | None = None,
    ) -> IngestResult:
        """Store valid events (skipping known ids), quarantine the payload's rejected lines as ONE row, update
        sensors — one transaction.

        ``payload`` (the whole payload, when the caller has it) is what the quarantine row keeps the first bytes and
        the size of; the per-line list stays in the result (the sender's acknowledgement needs it) but never in the
        database, where a payload of a million junk lines would become a million rows.
        """
        result = IngestResult(rejected=list(rejected))
        now = time.time()
        with Tx(self.conn) as c:
            for event in events:
                result.ids.append(event.id)
                flags = self._track_sensor(c, event, sender, now, result)
                cur = c.execute(
                    "INSERT OR IGNORE INTO events(id, received_at, ts, source_ip, anomaly, severity, sensor, seq, "
                    "count, sender, transport, body, flags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (event.id, now, event.ts, event.source_ip, event.anomaly, event.severity_rank, event.sensor,
                     event.seq, event.count, sender, transport, event.to_json(), flags),
                )
                if cur.rowcount:
                    result.stored.append(event)
                    if event.sensor:
                        c.execute("UPDATE sensors SET events=events+1 WHERE sensor=?", (event.sensor,))
                else:
                    result.duplicates.append(event.id)
            if result.rejected:
                self._quarantine_payload(c, result.rejected, payload, sender, transport, now)
        return result

    def _quarantine_payload(self, c: Any, rejected: list[Rejected], payload: bytes | None, sender: str,
                            transport: str, now: float) -> None:
        """One quarantine row for a payload's refused lines, then drop the oldest rows beyond the bounds."""
        counts = Counter(r.reason for r in rejected)
        first = rejected[0]
        if len(rejected) == 1:
            reason, detail = first.reason, first.detail
        else:
            reason = next(iter(counts)) if len(counts) == 1 else "mixed"
            by_reason = ", ".join(f"{r} {n:,}" for r, n in counts.most_common())
            detail = f"{len(rejected):,} lines refused ({by_reason}); line {first.index}: {first.detail}"
        whole = payload if payload is not None else first.raw
        samples = b"".join(
            orjson.dumps({"line": r.index, "reason": r.reason, "detail": r.detail[:200],
                          "raw": r.raw[:QUARANTINE_SAMPLE_BYTES].decode("utf-8", "replace"),
                          "raw_len": len(r.raw)}) + b"\n"
            for r in rejected[:QUARANTINE_SAMPLES]
        )
        newest = c.execute(
            "INSERT INTO quarantine(received_at, reason, detail, sender, transport, raw, raw_len, lines, samples) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (now, reason, detail[:500], sender, transport, whole[:QUARANTINE_RAW_CAP], len(whole), len(rejected),
             samples),
        ).lastrowid
        rows, size = c.execute("SELECT rows, bytes FROM quarantine_stats WHERE id = 1").fetchone()
        # oldest first, until both bounds hold again; the row just added stays (it is the newest)
        last, dropped, dropped_lines = 0, 0, 0
        while rows > self.quarantine_max_rows or size > self.quarantine_max_bytes:
            batch = c.execute(
                "SELECT rowid, lines, length(raw) + length(detail) + COALESCE(length(samples), 0) FROM quarantine "
                "WHERE rowid > ? AND rowid < ? ORDER BY rowid LIMIT 1000", (last, newest)
            ).fetchall()
            if not batch:
                break
            for rowid, lines, cost in batch:
                if rows <= self.quarantine_max_rows and size <= self.quarantine_max_bytes:
                    break
                last, rows, size = rowid, rows - 1, size - cost
                dropped, dropped_lines = dropped + 1, dropped_lines + lines
        if dropped:
            c.execute("DELETE FROM quarantine WHERE rowid <= ?", (last,))
            c.execute("UPDATE quarantine_stats SET dropped = dropped + ?, dropped_lines = dropped_lines + ? "
                      "WHERE id = 1", (dropped, dropped_lines))

    def _track_sensor(self, c: Any, event: ThreatEvent, sender: str, now: float, result: IngestResult) -> str:
        """Update the sensor row; record seq gaps and address mismatches. Returns flags for the event row."""
        if not event.sensor:
            return ""
        row = c.execute("SELECT address, max_seq FROM sensors WHERE sensor=?", (event.sensor,)).fetchone()
        flags = ""
        if row is None:
            c.execute(
                "INSERT INTO sensors(sensor, address, first_seen, last_seen, max_seq) VALUES (?,?,?,?,?)",
                (event.sensor, sender, now, now, event.seq),
            )
            return flags
        address, max_seq = row
        if sender and address and sender != address:
            result.mismatches.append((event.sensor, address, sender))
            c.execute("UPDATE sensors SET mismatches=mismatches+1 WHERE sensor=?", (event.sensor,))
            flags = "address_mismatch"
        new_max = max_seq
        if event.seq is not None and max_seq is not None and event.seq > max_seq + MAX_SEQ_JUMP:
            result.seq_jumps.append((event.sensor, max_seq, event.seq))
            flags = ",".join(f for f in (flags, "seq_jump") if f)
        elif event.seq is not None:
            if max_seq is not None and event.seq > max_seq + 1:
                result.gaps.append((event.sensor, max_seq + 1, event.seq - 1))
                c.execute("UPDATE sensors SET gaps=gaps+? WHERE sensor=?", (event.seq - max_seq - 1, event.sensor))
            new_max = event.seq if max_seq is None else max(max_seq, event.seq)
        c.execute(
            "UPDATE sensors SET last_seen=?, max_seq=?, address=CASE WHEN address='' THEN ? ELSE address END "
            "WHERE sensor=?",
            (now, new_max, sender, event.sensor),
        )
        return flags

    # -- triage ----------------------------------------------------------------------------------------------

    def set_state(self, ids: Iterable[str], state: str, *, note: str | None = None, by: str = "analyst") -> int:
        """Move events to a triage state (``new``, ``acknowledged``, ``mitigating``, ``mitigated``, ``false_positive``)."""
        if state not in TRIAGE_STATES:
            raise ValueError(f"unknown triage state {state!r}")
        now = time.time()
        with Tx(self.conn) as c:
            cur = c.executemany(
                "UPDATE events SET state=?, note=COALESCE(?, note), state_by=?, state_at=? WHERE id=?",
                [(state, note, by, now, i) for i in ids],
            )
        return cur.rowcount

    def ids_from_source(self, source_ip: str, states: Iterable[str] = ("new",)) -> list[str]:
        """Ids of ``source_ip``'s events in one of ``states``: what triaging a whole incident acts on."""
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            f"SELECT id FROM events WHERE source_ip=? AND state IN ({marks}) ORDER BY rowid", (source_ip, *wanted)
        )
        return [r[0] for r in rows]

    def record_mitigation(self, request_id: str, event_id: str, source_ip: str, status: str, detail: str = "") -> None:
        """Create or update a mitigation request and show its outcome on every event of that source IP."""
        now = time.time()
        outcome = orjson.dumps({"request_id": request_id, "status": status, "detail": detail, "at": now})
        with Tx(self.conn) as c:
            c.execute(
                "INSERT INTO mitigations(request_id, event_id, source_ip, requested_at, status, detail, updated_at) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT(request_id) DO UPDATE SET status=excluded.status, "
                "detail=excluded.detail, updated_at=excluded.updated_at",
                (request_id, event_id, source_ip, now, status, detail, now),
            )
            c.execute("UPDATE events SET mitigation=? WHERE source_ip=?", (outcome, source_ip))

    def record_mitigation_target(self, request_id: str, address: str) -> None:
        """Remember which node a request went to: only that node's answer may settle it."""
        with Tx(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO mitigation_targets(request_id, address) VALUES (?, ?)",
                      (request_id, address))

    def mitigation_target(self, request_id: str) -> str | None:
        row = self.conn.execute("SELECT address FROM mitigation_targets WHERE request_id=?", (request_id,)).fetchone()
        return None if row is None else str(row[0])

    def mitigation(self, request_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT request_id, event_id, source_ip, status, detail FROM mitigations WHERE request_id=?",
            (request_id,),
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("request_id", "event_id", "source_ip", "status", "detail"), row, strict=True))

    # -- inbox bookkeeping -------------------------------------------------------------------------------------

    def inbox_seen(self, message_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM inbox_seen WHERE message_id=?", (message_id,)).fetchone() is not None

    def mark_inbox_seen(self, message_id: str) -> None:
        with Tx(self.conn) as c:
            c.execute("INSERT OR IGNORE INTO inbox_seen(message_id, seen_at) VALUES (?, ?)", (message_id, time.time()))

    # -- simple reads ------------------------------------------------------------------------------------------

    def get(self, event_id: str) -> StoredEvent | None:
        row = self.conn.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE id=?", (event_id,)).fetchone()
        return None if row is None else row_to_stored(row)

    def total(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM events ORDER BY rowid")]

    def quarantine_count(self) -> int:
        """Quarantined payloads held — one counter row, not a scan (the status bar asks on the UI thread)."""
        return self.quarantine_stats()["rows"]

    def quarantine_stats(self) -> dict[str, int]:
        """``rows`` (payloads held), ``lines`` (refused lines in them), ``bytes`` stored, ``dropped`` /
        ``dropped_lines`` (oldest payloads removed to keep the bounds) — read from the trigger-kept counters."""
        keys = ("rows", "lines", "bytes", "dropped", "dropped_lines")
        row = self.conn.execute(f"SELECT {', '.join(keys)} FROM quarantine_stats WHERE id = 1").fetchone()
        return dict(zip(keys, (int(v) for v in row or (0,) * len(keys)), strict=True))

    def quarantine_by_reason(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT reason, COUNT(*) FROM quarantine GROUP BY reason").fetchall())

    def quarantine_page(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT rowid, received_at, reason, detail, sender, transport, raw, raw_len, lines, samples "
            "FROM quarantine ORDER BY rowid DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        keys = ("rowid", "received_at", "reason", "detail", "sender", "transport", "raw", "raw_len", "lines")
        return [dict(zip(keys, r[:-1], strict=True), samples=quarantine_samples(r[-1])) for r in rows]

    def missing_between(self, sensor: str, first: int, last: int) -> int:
        """How many of ``sensor``'s seq numbers ``first..last`` have not arrived (a late or reordered batch fills
        them)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT seq) FROM events WHERE sensor=? AND seq BETWEEN ? AND ?", (sensor, first, last)
        ).fetchone()
        return (last - first + 1) - int(row[0])

    def sensors(self) -> list[dict[str, Any]]:
        return sensor_rows(self.conn)


def sensor_rows(conn: Any) -> list[dict[str, Any]]:
    """Known sensors, most recently heard first (works on any connection, e.g. the UI's read-only one).

    ``missing`` is exact: seq numbers between the lowest and the highest seen that never arrived (a late resend
    fills a hole and the count drops again). Events flagged ``seq_jump`` are left out: one forged huge seq would
    otherwise report quadrillions missing.
    """
    keys = ("sensor", "address", "first_seen", "last_seen", "events", "max_seq", "gaps", "mismatches")
    rows = conn.execute(f"SELECT {', '.join(keys)} FROM sensors ORDER BY last_seen DESC").fetchall()
    spans = {
        s: (hi - lo + 1 - n) if lo is not None else 0
        for s, lo, hi, n in conn.execute(
            "SELECT sensor, MIN(seq), MAX(seq), COUNT(DISTINCT seq) FROM events WHERE sensor IS NOT NULL "
            "AND flags NOT LIKE '%seq_jump%' GROUP BY sensor"
        )
    }
    return [dict(zip(keys, r, strict=True), missing=spans.get(r[0], 0)) for r in rows]


def quarantine_samples(blob: bytes | None) -> list[dict[str, Any]]:
    """The sampled refused lines of a quarantine row (``[]`` for a row made before per-payload quarantine)."""
    if not blob:
        return []
    return [orjson.loads(line) for line in bytes(blob).splitlines() if line]
