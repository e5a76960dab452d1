"""Issue 12: one hostile payload must not become millions of quarantine rows, and one forged seq must not hide gaps.

Before: a 4 MB connect of ``x\\n`` lines made 2,097,142 quarantine rows (database + WAL 0.5 → 465 MB, every
receiver stalled ~35 s); ``quarantine_count()`` scanned the table on the UI thread; and one event with
``"seq": 2**53`` became the sensor's high-water mark, so a real hole after it was never reported.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.engines.receiver import build_ack, payload_lines, settle
from pilot_tui.model import MAX_PAYLOAD_BYTES, decode_payload, encode_batch, make_event
from pilot_tui.store.events import QUARANTINE_SAMPLES, EventStore

OLD_QUARANTINE_DDL = """
CREATE TABLE quarantine (
    rowid       INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    sender      TEXT NOT NULL DEFAULT '',
    transport   TEXT NOT NULL DEFAULT '',
    raw         BLOB NOT NULL,
    raw_len     INTEGER NOT NULL
);
"""
"""The quarantine table as databases made before per-payload quarantine have it (one row per refused line)."""


def db_bytes(path: Path) -> int:
    """The database file plus its WAL: what a flood grows on disk."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def engine_at(path: Path, **config: Any) -> OrchestratorEngine:
    return OrchestratorEngine(None, EventStore(path), OrchestratorConfig(**config))  # type: ignore[arg-type]


def genuine(n: int, sensor: str = "web-1", start: int = 0) -> list[Any]:
    return [make_event("203.0.113.7", "brute_force_ssh", "high", sensor=sensor, seq=start + i) for i in range(n)]


@pytest.mark.timeout(60)
def test_a_4mb_junk_payload_is_one_quarantine_row_and_the_next_payload_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    engine = engine_at(db)
    junk = b"x\n" * 2_097_142  # just under MAX_PAYLOAD_BYTES: the repro of issue 12
    assert len(junk) <= MAX_PAYLOAD_BYTES
    started = time.monotonic()
    result = engine.ingest_payload(junk, sender="", transport="stream")
    elapsed = time.monotonic() - started
    ack = build_ack(junk, result)
    assert engine.store.quarantine_count() == 1, "one payload, one quarantine row"
    assert db_bytes(db) < 5 * 1024 * 1024, f"database grew to {db_bytes(db):,} bytes"
    assert elapsed < 2.0, f"ingest stalled the event loop {elapsed:.1f}s"
    # refused whole: the sender is told about every line and none of them is settled as stored
    settled = settle(ack.decode(), junk, [f"l{k}" for k in range(len(payload_lines(junk)))])
    assert settled is not None and settled.stored == [] and settled.duplicate == []
    row = engine.store.quarantine_page(1)[0]
    assert row["reason"] == "oversize" and "lines exceeds" in row["detail"] and row["raw_len"] == len(junk)
    evs = genuine(3)
    after = engine.ingest_payload(encode_batch(evs), sender="", transport="stream")
    assert [e.id for e in after.stored] == [e.id for e in evs] and engine.store.total() == 3


def test_refused_lines_of_one_payload_are_one_row_with_count_reasons_and_a_full_ack(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "o.db")
    good = genuine(2)
    lines = [good[0].to_json(), *[b"junk %d" % k for k in range(3000)], b'{"source_ip": "1.2.3.4"}',
             good[1].to_json()]
    payload = b"\n".join(lines) + b"\n"
    result = engine.ingest_payload(payload, sender="0:0000.0000.0001", transport="message")
    assert len(result.stored) == 2 and len(result.rejected) == 3001
    # the ack still names every refused line (as far as the reply size allows) and settles the valid ones
    ids = [good[0].id, *[f"junk{k}" for k in range(3001)], good[1].id]
    settled = settle(build_ack(payload, result).decode(), payload, ids)
    assert settled is not None and settled.stored[:1] == [good[0].id] and settled.rejected.get("junk0") == "bad_json"
    assert engine.store.quarantine_count() == 1
    stats = engine.store.quarantine_stats()
    assert stats["rows"] == 1 and stats["lines"] == 3001
    row = engine.store.quarantine_page(5)[0]
    assert row["lines"] == 3001 and row["reason"] == "mixed"
    assert "3,001 lines refused" in row["detail"] and "bad_json 3,000" in row["detail"]
    assert "missing_field 1" in row["detail"]
    assert len(row["samples"]) == QUARANTINE_SAMPLES
    assert row["samples"][0] == {"line": 1, "reason": "bad_json", "detail": row["samples"][0]["detail"],
                                 "raw": "junk 0", "raw_len": 6}


def test_quarantine_is_bounded_drops_oldest_and_counts_drops(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "o.db", quarantine_max_rows=5)
    for k in range(8):
        decoded = decode_payload(b"bad-%d\nbad-%d-b\n" % (k, k))
        store.ingest(decoded.events, decoded.rejected, transport="stream")
    assert store.quarantine_count() == 5
    assert [r["raw"][:5] for r in store.quarantine_page(10)] == [b"bad-7", b"bad-6", b"bad-5", b"bad-4", b"bad-3"]
    stats = store.quarantine_stats()
    assert (stats["dropped"], stats["dropped_lines"], stats["lines"]) == (3, 6, 10)
    # the byte bound too: big raw samples cannot fill the disk below the row bound
    small = EventStore(tmp_path / "b.db", quarantine_max_bytes=6_000)
    for k in range(6):
        decoded = decode_payload(b"%d" % k + b"z" * 5000)
        small.ingest(decoded.events, decoded.rejected, payload=b"%d" % k + b"z" * 5000)
    held = small.quarantine_stats()
    assert held["bytes"] <= 6_000 and held["rows"] == 1 and held["dropped"] == 5
    assert small.quarantine_page(1)[0]["raw"][:1] == b"5", "the newest payload is the one kept"


def test_quarantine_count_reads_a_counter_not_the_table(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "o.db", quarantine_max_rows=1_000_000)
    with store.conn:
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO quarantine(received_at, reason, detail, raw, raw_len) VALUES (0, 'bad_json', '', ?, 1)",
            ((b"x%d" % k,) for k in range(100_000)),
        )
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    started = time.perf_counter()
    count = store.quarantine_count()
    elapsed = time.perf_counter() - started
    store.conn.set_trace_callback(None)
    assert count == 100_000
    assert statements and not any("FROM quarantine " in s or s.rstrip().endswith("FROM quarantine")
                                  for s in statements), statements
    assert elapsed < 0.005, f"quarantine_count took {elapsed * 1000:.1f} ms at 100k rows"
    store.conn.execute("DELETE FROM quarantine WHERE rowid <= 10")  # whoever deletes, the counter follows
    assert store.quarantine_count() == 99_990


def test_a_database_made_before_per_payload_quarantine_opens_and_keeps_counting(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(OLD_QUARANTINE_DDL)
    conn.executemany("INSERT INTO quarantine(received_at, reason, detail, raw, raw_len) VALUES (1, ?, 'd', ?, 3)",
                     [("bad_json", b"{x}"), ("bad_ip", b"ip!")])
    conn.commit()
    conn.close()
    store = EventStore(db)
    assert store.quarantine_count() == 2 and store.quarantine_stats()["lines"] == 2
    assert [(r["reason"], r["lines"], r["samples"]) for r in store.quarantine_page()] == [
        ("bad_ip", 1, []), ("bad_json", 1, [])]
    decoded = decode_payload(b"nope\nnope\n")
    store.ingest(decoded.events, decoded.rejected)
    store.close()
    again = EventStore(db)  # reopening must not count the old rows twice
    assert again.quarantine_count() == 3 and again.quarantine_stats()["lines"] == 4
    assert again.quarantine_by_reason() == {"bad_json": 2, "bad_ip": 1}


async def test_a_forged_huge_seq_does_not_hide_a_real_gap(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "o.db", gap_grace_s=0.2)
    alerts: list[u.SensorAlert] = []
    engine.bus.subscribe(lambda x: alerts.append(x) if isinstance(x, u.SensorAlert) else None)
    for seq in (1, 2, 3):
        engine.ingest_payload(encode_batch(genuine(1, "S", seq)), sender="", transport="stream")
    forged = engine.ingest_payload(encode_batch(genuine(1, "S", 9007199254740992)), sender="", transport="stream")
    assert len(forged.stored) == 1, "the event itself is kept (flagged), only its seq is not trusted"
    engine.ingest_payload(encode_batch(genuine(1, "S", 6)), sender="", transport="stream")
    await asyncio.sleep(0.4)
    assert [(a.kind, a.detail) for a in alerts if a.kind == "gap"] == [("gap", "seq 4-5 missing")]
    assert [a.kind for a in alerts if a.kind == "seq_jump"] == ["seq_jump"]
    assert "seq_jump" in (engine.store.get(forged.stored[0].id) or pytest.fail("not stored")).flags
    sensor = next(s for s in engine.store.sensors() if s["sensor"] == "S")
    assert sensor["max_seq"] == 6 and sensor["missing"] == 2 and sensor["gaps"] == 2
