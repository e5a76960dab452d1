"""Issue 14 item 3: every state file carries a schema version and is upgraded in one transaction when opened.

The fixtures under ``tests/data/migrations`` are SQL dumps of databases that earlier versions of pilot-tui wrote
through their own store classes (``make_fixtures.py`` there rebuilds them from git): an existing install must open
with every row intact and the newer columns working.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pilot_tui.cli import main
from pilot_tui.model import Rejected, make_event
from pilot_tui.paths import StateError
from pilot_tui.store import blocks as blocks_mod
from pilot_tui.store import events as events_mod
from pilot_tui.store import outbox as outbox_mod
from pilot_tui.store.blocks import BlockStore
from pilot_tui.store.db import Schema, open_db, sql_statements
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox

FIXTURES = Path(__file__).parent / "data" / "migrations"


def _restore(tmp_path: Path, fixture: str, name: str = "x.db") -> Path:
    """The fixture's database as a file in a private state dir, at version 0 (files from before versions)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    db = state / name
    conn = sqlite3.connect(db)
    conn.executescript((FIXTURES / f"{fixture}.sql").read_text())
    conn.close()
    db.chmod(0o600)
    return db


def _version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_event_store_from_before_per_payload_quarantine(tmp_path: Path) -> None:
    """41e6827: quarantine had one row per refused line and no ``lines``/``samples`` columns nor counters."""
    db = _restore(tmp_path, "events_41e6827")
    assert _version(db) == 0
    store = EventStore(db)
    assert _version(db) == events_mod.SCHEMA.version == 1
    assert store.total() == 3
    acknowledged = [s for s in map(store.get, store.ids()) if s and s.state == "acknowledged"]
    assert [(s.note, s.state_by) for s in acknowledged] == [("seen it", "ana")]
    assert store.mitigation("req-1")["status"] == "blocked"  # type: ignore[index]
    assert store.mitigation_target("req-1") == "0:0000.0000.0009"
    assert store.inbox_seen("msg-1")
    # the old rows count as one refused line each, and the counters were filled from them
    assert [(q["reason"], q["lines"], q["samples"]) for q in store.quarantine_page()] == [
        ("bad_field", 1, []), ("bad_json", 1, [])]
    before = store.quarantine_stats()
    assert (before["rows"], before["lines"]) == (2, 2)
    # the new columns work: one payload of two refused lines is one row with its samples
    payload = b"{nope\n{still nope\n"
    store.ingest([], [Rejected(0, "bad_json", "not JSON", b"{nope"), Rejected(1, "bad_json", "not JSON",
                                                                               b"{still nope")], payload=payload)
    newest = store.quarantine_page(limit=1)[0]
    assert newest["lines"] == 2 and [s["line"] for s in newest["samples"]] == [0, 1]
    after = store.quarantine_stats()
    assert (after["rows"], after["lines"]) == (3, 4)
    # and the sensor's sequence carries on where the old file left it
    result = store.ingest([make_event("203.0.113.7", "brute_force_ssh", "high", sensor="web-1", seq=5)])
    assert result.gaps == [("web-1", 3, 4)]
    store.close()


def test_event_store_of_the_previous_release(tmp_path: Path) -> None:
    db = _restore(tmp_path, "events_45c0b6d")
    store = EventStore(db)
    assert _version(db) == 1
    assert store.total() == 4
    dismissed = [s for s in map(store.get, store.ids()) if s and s.state == "false_positive"]
    assert [(s.note, s.state_by) for s in dismissed] == [("our scanner", "bo")]
    assert store.quarantine_stats()["rows"] == 1
    assert store.quarantine_page()[0]["samples"][0]["reason"] == "bad_json"
    store.close()


def test_outbox_of_the_previous_release(tmp_path: Path) -> None:
    db = _restore(tmp_path, "outbox_45c0b6d")
    box = Outbox(db)
    assert _version(db) == outbox_mod.SCHEMA.version == 1
    assert box.counts() == {"pending": 2, "delivered": 1}
    assert box.offsets() == {"/var/log/auth.log": {"inode": 42, "offset": 1234}}
    assert [row.attempts for row in box.pending()] == [1, 0]
    stored = box.record([make_event("192.0.2.9", "port_scan", "low")], {})
    assert stored[0].seq == 3  # numbering continues: the orchestrator must not see a replay
    box.close()


def test_executor_store_of_the_previous_release(tmp_path: Path) -> None:
    db = _restore(tmp_path, "blocks_45c0b6d")
    store = BlockStore(db)
    assert _version(db) == blocks_mod.SCHEMA.version == 1
    (block,) = store.active_blocks()
    assert (block.ip, block.expires_at, block.reason) == ("203.0.113.7", 4600.0, "brute force")
    assert store.obey_pins() == {"orch.example": ("0:0000.0000.0001", 1)}
    assert store.answer("req-1") is not None and store.is_processed("m-1")
    assert [r.reply_to for r in store.due_replies(time.time())] == ["m-1"]
    store.close()


def test_reopening_a_current_file_changes_nothing(tmp_path: Path) -> None:
    db = _restore(tmp_path, "events_45c0b6d")
    EventStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE inbox_seen")  # a step that ran again would bring it back
    conn.close()
    store = EventStore(db)
    assert store.conn.execute("SELECT name FROM sqlite_master WHERE name = 'inbox_seen'").fetchone() is None
    store.close()


# -- the mechanism, on a store of its own ----------------------------------------------------------------------

V1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"


def _add_colour(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE notes ADD COLUMN colour TEXT NOT NULL DEFAULT 'grey'")


def test_steps_run_in_order_from_the_files_version(tmp_path: Path) -> None:
    path = tmp_path / "state" / "n.db"
    conn = open_db(path, Schema("notes", (V1,)))
    conn.execute("INSERT INTO notes(text) VALUES ('kept')")
    conn.close()
    later = Schema("notes", (V1, _add_colour, "CREATE INDEX notes_colour ON notes(colour);"))
    conn = open_db(path, later)
    assert conn.execute("SELECT text, colour FROM notes").fetchall() == [("kept", "grey")]
    conn.execute("INSERT INTO notes(text, colour) VALUES ('new', 'red')")
    assert conn.execute("PRAGMA user_version").fetchone() == (3,)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'notes_colour'").fetchone()
    conn.close()


def test_processes_opening_an_old_file_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """The version is read again under the write lock: a step that cannot run twice (adding a column) runs once
    however many openers race for it."""
    path = tmp_path / "state" / "n.db"
    open_db(path, Schema("notes", (V1,))).close()
    later = Schema("notes", (V1, _add_colour))
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_db(path, later).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and _version(path) == 2


def test_a_failing_step_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "state" / "n.db"
    open_db(path, Schema("notes", (V1,))).close()
    broken = Schema("notes", (V1, _add_colour, "CREATE TABLE tags (x); INSERT INTO nowhere VALUES (1);"))
    with pytest.raises(StateError) as info:
        open_db(path, broken)
    message = str(info.value)
    assert "\n" not in message and "cannot upgrade" in message and "notes version 1 to 3" in message
    assert "no such table: nowhere" in message
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert [r[1] for r in conn.execute("PRAGMA table_info(notes)")] == ["id", "text"]  # step 2 rolled back too
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'tags'").fetchone() is None
    conn.close()


def test_an_unversioned_file_of_another_shape_is_one_line(tmp_path: Path) -> None:
    """A ``quarantine`` table that is not ours (no ``raw`` column) cannot be completed: say so, touch nothing."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "orchestrator.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE quarantine (rowid INTEGER PRIMARY KEY, received_at REAL NOT NULL, reason TEXT "
                 "NOT NULL, detail TEXT NOT NULL)")
    conn.close()
    db.chmod(0o600)
    with pytest.raises(StateError, match=r"cannot upgrade .*orchestrator\.db from event store version 0 to 1"):
        EventStore(db)
    assert _version(db) == 0


def test_statements_are_cut_where_sqlite_says() -> None:
    script = """
    CREATE TABLE a (x); -- a comment; with a semicolon
    CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); DELETE FROM a WHERE x = 2; END;
    """
    statements = sql_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("-- a comment; with a semicolon\n") and statements[1].endswith("END;")


# -- a file from a newer pilot-tui ---------------------------------------------------------------------------


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state" / "executor.db"
    BlockStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StateError) as info:
        BlockStore(db)
    assert str(info.value) == (f"{db} was written by a newer pilot-tui (executor store version 7; this one knows "
                               "up to 1): upgrade pilot-tui, or move the file away to start fresh")
    assert _version(db) == 7


def test_a_newer_orchestrator_file_ends_the_command_in_one_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    db = _restore(tmp_path, "events_45c0b6d", "orchestrator.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    rc = main(["orchestrator", "--headless", "--pilotctl", "/bin/true", "--state-dir", str(state)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 1
    assert len(lines) == 1 and "newer pilot-tui" in lines[0] and str(db) in lines[0], lines
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (4,)
    conn.close()


@pytest.mark.parametrize("follow", [False, True])
def test_export_refuses_a_newer_file_instead_of_reading_it(tmp_path: Path, follow: bool,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``export`` falls back to a read-only open when it cannot write; that fallback must not skip the version."""
    state = tmp_path / "state"
    db = _restore(tmp_path, "events_45c0b6d", "orchestrator.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    argv = ["export", "--format", "ndjson", "--state-dir", str(state)]
    if follow:
        argv += ["--follow", "--output", str(tmp_path / "out.ndjson")]
    rc = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 1 and captured.out == ""
    assert len(lines) == 1 and "newer pilot-tui" in lines[0], lines


def test_readonly_open_checks_the_version_too(tmp_path: Path) -> None:
    from pilot_tui.store.db import open_readonly
    from pilot_tui.store.events import SCHEMA

    db = _restore(tmp_path, "events_45c0b6d", "orchestrator.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    with pytest.raises(StateError, match="newer pilot-tui"):
        open_readonly(db, SCHEMA)
    open_readonly(db).close()  # without a schema it only reads
