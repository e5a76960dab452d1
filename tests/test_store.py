"""Outbox and event store: atomic offsets, ack bookkeeping, dedup, seq gaps, triage, private files."""

from __future__ import annotations

import os
import stat

from pilot_tui.model import decode_payload, make_event
from pilot_tui.store import feed
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox


def ev(ip: str = "203.0.113.7", anomaly: str = "brute_force_ssh", severity: str = "high", **kw):  # type: ignore[no-untyped-def]
    return make_event(ip, anomaly, severity, **kw)


def test_state_files_are_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(tmp_path / "o" / "oracle.db")
    box.record([ev()], {})  # the WAL file exists while the store is open
    EventStore(tmp_path / "orchestrator.db").close()
    for name in ("o/oracle.db", "o/oracle.db-wal", "orchestrator.db"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "o").st_mode) == 0o700
    box.close()


def test_outbox_records_events_with_offsets_and_seq(tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(tmp_path / "oracle.db")
    stored = box.record([ev(), ev()], {"file:/var/log/auth.log": {"offset": 120}})
    assert [e.seq for e in stored] == [0, 1]
    more = box.record([ev()], {"file:/var/log/auth.log": {"offset": 240}})
    assert more[0].seq == 2
    box.close()
    box = Outbox(tmp_path / "oracle.db")  # survives a reopen
    assert box.offsets() == {"file:/var/log/auth.log": {"offset": 240}}
    assert box.depth() == 3
    rows = box.pending(limit=2)
    assert [r.seq for r in rows] == [0, 1]
    assert box.mark_delivered([rows[0].id], "stored") == 1
    box.mark_rejected({rows[1].id: "bad_ip"})
    box.mark_failed([stored[0].id, more[0].id], "timeout: no response")
    assert box.depth() == 1
    assert box.counts() == {"delivered": 1, "rejected": 1, "pending": 1}
    assert box.state_of(rows[1].id) == ("rejected", "bad_ip")


def test_outbox_failed_transaction_keeps_neither(tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(tmp_path / "oracle.db")
    box.record([], {"k": {"offset": 1}})

    class Boom:
        def to_dict(self):  # noqa: D401 - only needs to explode inside the transaction
            raise RuntimeError("crash mid-transaction")

    try:
        box.record([ev(), Boom()], {"k": {"offset": 99}})  # type: ignore[list-item]
    except Exception:
        pass
    assert box.offsets() == {"k": {"offset": 1}}
    assert box.depth() == 0


def test_event_store_dedups_and_quarantines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(tmp_path / "orch.db")
    a, b = ev(sensor="web-1", seq=0), ev(sensor="web-1", seq=1)
    decoded = decode_payload(a.to_json() + b"\n" + b"{broken\n" + b.to_json())
    r1 = store.ingest(decoded.events, decoded.rejected, sender="0:0000.0000.0001", transport="stream")
    assert [e.id for e in r1.stored] == [a.id, b.id] and len(r1.rejected) == 1
    r2 = store.ingest([a, b], sender="0:0000.0000.0001", transport="message")
    assert r2.stored == [] and r2.duplicates == [a.id, b.id]
    assert store.total() == 2 and store.quarantine_count() == 1
    assert store.quarantine_by_reason() == {"bad_json": 1}


def test_seq_gaps_and_address_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(tmp_path / "orch.db")
    store.ingest([ev(sensor="web-1", seq=0)], sender="0:0000.0000.0001")
    r = store.ingest([ev(sensor="web-1", seq=4)], sender="0:0000.0000.0009")
    assert r.gaps == [("web-1", 1, 3)]
    assert r.mismatches == [("web-1", "0:0000.0000.0001", "0:0000.0000.0009")]
    assert store.sensors()[0]["missing"] == 3
    store.ingest([ev(sensor="web-1", seq=2)], sender="0:0000.0000.0001")  # a late resend fills one hole
    assert store.sensors()[0]["missing"] == 2


def test_triage_persists_and_feed_filters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(tmp_path / "orch.db")
    low = ev("198.51.100.1", "web_scanner", "low", sensor="web-2")
    crit = ev("203.0.113.7", "brute_force_ssh", "critical", sensor="web-1")
    crit2 = ev("203.0.113.7", "ssh_user_enumeration", "medium", sensor="web-2")
    store.ingest([low, crit, crit2])
    store.set_state([crit.id], "acknowledged", note="known pentest", by="alice")
    store.close()
    store = EventStore(tmp_path / "orch.db")
    got = store.get(crit.id)
    assert got is not None and got.state == "acknowledged" and got.note == "known pentest" and got.state_by == "alice"
    conn = store.conn
    assert feed.count(conn, feed.FeedFilter()) == 3
    assert [s.event.id for s in feed.window(conn, feed.FeedFilter(), 0, 10)] == [crit2.id, crit.id, low.id]
    assert feed.count(conn, feed.FeedFilter(min_severity=3)) == 1
    assert feed.count(conn, feed.FeedFilter(hide_handled=True)) == 2
    assert feed.count(conn, feed.FeedFilter(text="WEB-2")) == 2
    assert feed.count(conn, feed.FeedFilter(text="%")) == 0  # literal, not a LIKE wildcard
    inc = feed.incidents(conn)
    top = inc[0]
    assert top.source_ip == "203.0.113.7" and top.sensors == ("web-1", "web-2") and top.events == 2
    assert top.max_severity == 4
    assert feed.top_sources(conn, 1) == [("203.0.113.7", 2)]
    assert sum(feed.per_minute(conn, 5)) == 3


def test_outbox_prune_keeps_pending_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = Outbox(tmp_path / "oracle.db")
    done, waiting = box.record([ev(), ev()], {})
    box.mark_delivered([done.id], "stored")
    box.conn.execute("UPDATE outbox SET delivered_at = delivered_at - 8 * 86400, created = created - 8 * 86400")
    assert box.prune(7 * 86400) == 1
    assert box.all_ids() == [waiting.id] and box.depth() == 1
