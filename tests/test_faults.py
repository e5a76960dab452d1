"""Issue 12/13, run-time half: a state file that fails while the engines run (disk full, read-only, corrupt pages).

Each engine must say so in one line (a notice; receivers ``degraded`` with the reason), lose nothing it accepted —
a stream batch it could not store is answered "not stored" and resent, an inbox message is held and never marked
processed (so never pruned), a log batch waits with its position, a decision already carried out is recorded later —
and recover by itself when the fault clears. The faults are injected where SQLite reports them (a statement or the
COMMIT raising), under the real stores; ``test_faults_chaos.py`` does it with a real full / read-only filesystem.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from task_helpers import stop_tasks, wait_for
from test_executor_support import ORCH_ADDR, FakePilot

from pilot_tui.engines import updates as u
from pilot_tui.engines.executor import ExecutorEngine
from pilot_tui.engines.mitigation import MitigationRequest, parse_result
from pilot_tui.engines.oracle import OracleConfig, OracleEngine
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.engines.receiver import BadAck, NotStored, settle
from pilot_tui.engines.sender import SILENT_LIMIT, Sender
from pilot_tui.model import ThreatEvent, encode_batch, make_event
from pilot_tui.pilot.driver import ConnectResult
from pilot_tui.store import db
from pilot_tui.store.blocks import BlockStore
from pilot_tui.store.db import StoreFault
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox

pytestmark = pytest.mark.timeout(30)

DISK_FULL = (sqlite3.OperationalError, "database or disk is full")
READ_ONLY = (sqlite3.OperationalError, "attempt to write a readonly database")
CORRUPT = (sqlite3.DatabaseError, "database disk image is malformed")
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "CREATE", "ALTER", "PRAGMA USER_VERSION =")


class Faulty:
    """A store's connection whose writes fail while :attr:`fault` is set, the way SQLite reports a full disk or a
    read-only file (``at="commit"``: the statements pass and the COMMIT fails, as with a full WAL); ``reads=True``
    fails every statement, as a corrupt page does. ROLLBACK always passes (SQLite allows it)."""

    def __init__(self, conn: Any, *, at: str = "statement", reads: bool = False) -> None:
        self._conn = conn
        self.at = at
        self.reads = reads
        self.fault: tuple[type[Exception], str] | None = None
        self.refused = 0

    def _check(self, sql: str) -> None:
        if self.fault is None:
            return
        head = " ".join(sql.split()).upper()
        if head.startswith("ROLLBACK"):
            return
        hit = head.startswith("COMMIT") if self.at == "commit" else head.startswith(WRITES)
        if hit or (self.reads and not head.startswith("BEGIN")):
            self.refused += 1
            kind, text = self.fault
            raise (kind(errno.ENOSPC, text) if kind is OSError else kind(text))

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def faulty(store: Any, **kw: Any) -> Faulty:
    store.conn = Faulty(store.conn, **kw)
    return store.conn  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry after 20-100 ms instead of 0.5-30 s, so a test sees many attempts in a fraction of a second."""
    monkeypatch.setattr(db, "RETRY_FIRST_S", 0.02)
    monkeypatch.setattr(db, "RETRY_MAX_S", 0.1)


def events(n: int, start: int = 0) -> list[ThreatEvent]:
    return [make_event(f"203.0.113.{i % 250 + 1}", "brute_force_ssh", "high", sensor="web-1", seq=i)
            for i in range(start, start + n)]


def notices(updates: list[u.Update], level: str | None = None) -> list[str]:
    return [x.message for x in updates if isinstance(x, u.Notice) and (level is None or x.level == level)]


class FakeConn:
    """One stream connection: delivers the payload, keeps the reply."""

    can_reply = True

    def __init__(self, payload: bytes) -> None:
        self.chunks = [payload]
        self.written = b""

    async def read(self, size: int, timeout: float) -> bytes:
        if not self.chunks:
            await asyncio.sleep(timeout)
            raise TimeoutError
        return self.chunks.pop(0)

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        pass


class Loopback:
    """The oracle's ``connect``, handed straight to an orchestrator engine's stream handler (no network)."""

    def __init__(self, engine: OrchestratorEngine, before: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.before = before
        self.connects = 0

    async def connect(self, target: str, port: int, payload: bytes, *, timeout: float) -> ConnectResult:
        self.connects += 1
        if self.before is not None:
            self.before()
        conn = FakeConn(payload.rstrip(b"\n"))  # connect drops the final newline
        await self.engine._handle_conn(conn)  # type: ignore[arg-type]
        return ConnectResult(target, port, conn.written.decode(), len(payload), 0.001)


def orchestrator(store: EventStore, **config: Any) -> tuple[OrchestratorEngine, list[u.Update]]:
    engine = OrchestratorEngine(None, store, OrchestratorConfig(**config))  # type: ignore[arg-type]
    seen: list[u.Update] = []
    engine.bus.subscribe(seen.append)
    return engine, seen


def told_stored(outbox: Outbox) -> set[str]:
    """Ids the sender was told the orchestrator has (anything else would be a lie a restart cannot repair)."""
    return {r[0] for r in outbox.conn.execute("SELECT id FROM outbox WHERE state='delivered'")}


# -- the orchestrator's stream receiver ------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "at"), [(DISK_FULL, "statement"), (DISK_FULL, "commit"), (READ_ONLY, "statement"),
                                           ((OSError, "No space left on device"), "statement")])
async def test_a_full_store_answers_not_stored_and_every_batch_arrives_once_it_clears(
        tmp_path: Path, fault: tuple[type[Exception], str], at: str) -> None:
    store = EventStore(tmp_path / "orchestrator.db")
    broken = faulty(store, at=at)
    engine, seen = orchestrator(store, inbox=False)
    engine._set_receiver("stream", kind="sdk", state="running", detail="SDK stream server on port 1000")
    outbox = Outbox(tmp_path / "oracle.db")
    outbox.record(events(40), {})
    bus = u.UpdateBus()
    results: list[u.Update] = []
    bus.subscribe(results.append)
    sender = Sender(Loopback(engine), outbox, bus, peer="orch", batch_events=10)  # type: ignore[arg-type]

    broken.fault = fault
    for _ in range(2 * SILENT_LIMIT):  # more than the silent answers that would make it a "cannot reply" peer
        assert not await sender.send_rows(outbox.pending(limit=10))
        assert told_stored(outbox) <= set(store.ids())
    assert store.total() == 0 and outbox.depth() == 40 and not sender.peer_silent
    failed = [r for r in results if isinstance(r, u.SendResult)]
    assert {r.error_code for r in failed} == {"not_stored"} and all(r.retry_in_s > 0 for r in failed)
    assert fault[1].split()[0] in failed[-1].error and sender.peer_state == "reachable"
    stream = engine.receivers["stream"]
    assert stream.state == "degraded" and fault[1] in stream.detail
    assert len(notices(seen, "error")) == 1 and fault[1] in notices(seen, "error")[0]
    degraded = [x for x in seen if isinstance(x, u.ReceiverState) and x.state == "degraded"]
    assert len({(x.state, x.detail) for x in degraded}) == 1  # one state change, not one per batch

    broken.fault = None
    for _ in range(10):
        if not outbox.depth():
            break
        await sender.send_rows(outbox.pending(limit=10))
        assert told_stored(outbox) <= set(store.ids())
    assert outbox.depth() == 0 and sorted(store.ids()) == sorted(outbox.all_ids())
    assert {outbox.state_of(i) for i in outbox.all_ids()} == {("delivered", "stored")}
    assert engine.receivers["stream"].state == "running"
    assert engine.receivers["stream"].detail == "SDK stream server on port 1000"
    assert len(notices(seen, "info")) == 1 and "writable again" in notices(seen, "info")[0]


async def test_the_dashboard_shows_the_fault_in_the_status_line_and_a_notification(tmp_path: Path) -> None:
    from pilot_tui.ui.notices import notices_for
    from pilot_tui.ui.widgets.orchestrator_panels import receivers_text

    store = EventStore(tmp_path / "orchestrator.db")
    broken = faulty(store)
    engine, seen = orchestrator(store)
    engine._set_receiver("stream", kind="sdk", state="running", detail="SDK stream server on port 1000")
    engine._set_receiver("inbox", kind="inbox", state="running", detail="watching the daemon inbox")
    broken.fault = DISK_FULL
    await engine._handle_conn(FakeConn(encode_batch(events(3)).rstrip(b"\n")))  # type: ignore[arg-type]
    shown = receivers_text(engine.receivers, time.time()).plain
    assert "stream sdk degraded" in shown and "inbox degraded" in shown
    told = notices_for(seen)
    assert [level for level, _ in told] == ["error"] and "database or disk is full" in told[0][1]
    broken.fault = None
    await engine._handle_conn(FakeConn(encode_batch(events(3)).rstrip(b"\n")))  # type: ignore[arg-type]
    shown = receivers_text(engine.receivers, time.time()).plain
    assert "stream sdk running" in shown and "inbox running" in shown
    assert [level for level, _ in notices_for(seen)] == ["error", "information"]


def test_the_not_stored_reply_fits_and_only_settles_its_own_batch() -> None:
    from pilot_tui.engines.receiver import REPLY_MAX, build_unstored

    mine, others = events(1000), events(1000, start=5000)
    batch = encode_batch(mine)
    reply = build_unstored(batch, "orchestrator cannot store events: " + "database or disk is full " * 100)
    assert len(reply) <= REPLY_MAX
    with pytest.raises(NotStored, match="database or disk is full"):
        settle(reply.decode(), batch, [e.id for e in mine])
    with pytest.raises(BadAck, match="digest"):  # a reply to another batch says nothing about this one
        settle(reply.decode(), encode_batch(others), [e.id for e in others])


async def test_a_corrupt_page_found_mid_run_degrades_with_one_line(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A real page-corrupted file: it opens (its schema pages are intact) and fails on the first write that
    touches the broken B-tree — answered "not stored", one notice with what to do, never a traceback."""
    path = tmp_path / "orchestrator.db"
    store = EventStore(path)
    store.ingest(events(400))
    roots = dict(store.conn.execute("SELECT name, rootpage FROM sqlite_master"))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray(path.read_bytes())
    spared = {1} | {page for name, page in roots.items() if not name.startswith(("events", "sqlite_autoindex_events"))}
    for page in range(1, len(raw) // 4096 + 1):
        if page not in spared:
            raw[(page - 1) * 4096:(page - 1) * 4096 + 16] = b"\xff" * 16
    path.write_bytes(bytes(raw))
    store = EventStore(path)  # opens: the damage is only found at run time
    engine, seen = orchestrator(store, inbox=False)
    engine._set_receiver("stream", kind="sdk", state="running", detail="")
    fresh = events(5, start=9000)
    payload = encode_batch(fresh)
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            conn = FakeConn(payload.rstrip(b"\n"))
            await engine._handle_conn(conn)  # type: ignore[arg-type]
            with pytest.raises(NotStored, match="malformed"):
                settle(conn.written.decode(), payload, [e.id for e in fresh])
    assert engine.receivers["stream"].state == "degraded" and "malformed" in engine.receivers["stream"].detail
    errors = notices(seen, "error")
    assert len(errors) == 1 and "move the file away" in errors[0] and str(path) in errors[0]
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


# -- the orchestrator's inbox receiver -------------------------------------------------------------------------


async def test_inbox_messages_wait_unprocessed_and_unpruned_while_the_store_is_full(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "orchestrator.db")
    broken = faulty(store)
    pilot = FakePilot()
    batches = [events(3, start=10 * i) for i in range(3)]
    for batch in batches:
        pilot.deliver(ORCH_ADDR, encode_batch(batch), at=time.time() - 5)
    engine, seen = orchestrator(store, stream=False, inbox_poll_s=0.05, inbox_keep_s=0.5, inbox_prune_every_s=0.05)
    engine.pilotctl = pilot  # type: ignore[assignment]
    broken.fault = DISK_FULL
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: engine.receivers.get("inbox") and engine.receivers["inbox"].state == "degraded",
                       "the inbox receiver degraded")
        refused = broken.refused
        await wait_for(lambda: broken.refused > refused + 5, "several more attempts")
        await wait_for(lambda: pilot.calls.get("inbox_clear", 0) >= 2, "pruning tried meanwhile")
        assert store.total() == 0 and len(pilot.messages) == 3, "nothing stored, nothing pruned"
        assert store.conn.execute("SELECT COUNT(*) FROM inbox_seen").fetchone() == (0,)
        assert "database or disk is full" in engine.receivers["inbox"].detail
        assert len(notices(seen, "error")) == 1

        broken.fault = None
        await wait_for(lambda: store.total() == 9, "every message stored once the disk has room")
        await wait_for(lambda: not pilot.messages, "processed messages pruned")
        assert sorted(store.ids()) == sorted(e.id for batch in batches for e in batch)
        await wait_for(lambda: engine.receivers["inbox"].state == "running", "the inbox receiver running again")
        assert len(notices(seen, "info")) == 1 and engine.receivers["inbox"].restarts == 0
    finally:
        await stop_tasks(task)


async def test_an_unreadable_store_degrades_the_inbox_instead_of_a_restart_loop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EventStore(tmp_path / "orchestrator.db")
    broken = faulty(store, reads=True)
    pilot = FakePilot()
    pilot.deliver(ORCH_ADDR, encode_batch(events(2)))
    engine, seen = orchestrator(store, stream=False, inbox_poll_s=0.05)
    engine.pilotctl = pilot  # type: ignore[assignment]
    broken.fault = CORRUPT
    task = asyncio.create_task(engine.run())
    try:
        with caplog.at_level(logging.WARNING):
            await wait_for(lambda: engine.receivers.get("inbox") and engine.receivers["inbox"].state == "degraded",
                           "the inbox receiver degraded")
            await asyncio.sleep(0.5)
        states = [x for x in seen if isinstance(x, u.ReceiverState)]
        assert {x.state for x in states[1:]} == {"degraded"}, "never shown as restarting or running meanwhile"
        assert engine.receivers["inbox"].restarts == 0 and "malformed" in engine.receivers["inbox"].detail
        assert len(notices(seen, "error")) == 1 and not [r for r in caplog.records if r.exc_info]
        broken.fault = None
        await wait_for(lambda: store.total() == 2, "stored once readable again")
        await wait_for(lambda: engine.receivers["inbox"].state == "running", "running again")
    finally:
        await stop_tasks(task)


# -- the oracle -------------------------------------------------------------------------------------------------


class Feed:
    """A log source the test pushes batches into (what the tailer yields: key, source, lines, position)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def push(self, lines: list[str], position: int) -> None:
        self.queue.put_nowait(SimpleNamespace(key="auth", source="/var/log/auth.log", lines=lines,
                                              position={"offset": position}))

    async def batches(self) -> AsyncIterator[Any]:
        while True:
            yield await self.queue.get()

    def stats(self) -> list[Any]:
        return []

    async def close(self) -> None:
        pass


class OneEventPerLine:
    """A detector with one detection per line; it counts what it was fed (its windows must see each line once)."""

    def __init__(self) -> None:
        self.fed: list[str] = []

    def feed(self, line: str, log: str, now: float | None = None) -> list[ThreatEvent]:
        self.fed.append(line)
        return [make_event(f"198.51.100.{len(self.fed)}", "brute_force_ssh", "high", sensor="web-1")]


def oracle(tmp_path: Path, orch: OrchestratorEngine, before: Callable[[], None] | None = None
           ) -> tuple[OracleEngine, Feed, OneEventPerLine, list[u.Update]]:
    feed, detector = Feed(), OneEventPerLine()
    engine = OracleEngine(Loopback(orch, before), Outbox(tmp_path / "oracle.db"), [feed], detector,  # type: ignore[arg-type]
                          OracleConfig(peer="orch"))
    seen: list[u.Update] = []
    engine.bus.subscribe(seen.append)
    return engine, feed, detector, seen


async def test_an_oracle_whose_outbox_is_full_waits_at_its_position_and_loses_nothing(tmp_path: Path) -> None:
    orch, _ = orchestrator(EventStore(tmp_path / "orchestrator.db"), inbox=False)
    engine, feed, detector, seen = oracle(tmp_path, orch)
    broken = faulty(engine.outbox)
    broken.fault = DISK_FULL
    task = asyncio.create_task(engine.run())
    try:
        feed.push([f"line {i}" for i in range(5)], 100)
        await wait_for(lambda: notices(seen, "error"), "the outbox fault reported")
        feed.push([f"line {i}" for i in range(5, 8)], 200)
        refused = broken.refused
        await wait_for(lambda: broken.refused > refused + 3, "several more attempts")
        assert engine.outbox.offsets() == {} and engine.outbox.all_ids() == []
        assert len(detector.fed) == 5, "the next batch waits: tailing pauses at the last saved position"
        assert "database or disk is full" in notices(seen, "error")[0] and not task.done()

        broken.fault = None
        await wait_for(lambda: orch.store.total() == 8, "every detection delivered once the disk has room")
        assert engine.outbox.offsets() == {"auth": {"offset": 200}}
        assert detector.fed == [f"line {i}" for i in range(8)], "each line detected exactly once"
        await wait_for(lambda: engine.outbox.depth() == 0, "the outbox drained")
        assert len(notices(seen, "error")) == 1 and len(notices(seen, "info")) == 1
    finally:
        await stop_tasks(task)


async def test_an_oracle_that_cannot_mark_rows_delivered_resends_them_later(tmp_path: Path) -> None:
    orch, _ = orchestrator(EventStore(tmp_path / "orchestrator.db"), inbox=False)
    holder: dict[str, Faulty] = {}

    def fill_disk() -> None:  # the disk fills while the batch is on its way: the ack cannot be written down
        holder["conn"].fault = DISK_FULL

    engine, feed, _, seen = oracle(tmp_path, orch, before=fill_disk)
    holder["conn"] = faulty(engine.outbox)
    task = asyncio.create_task(engine.run())
    try:
        feed.push([f"line {i}" for i in range(4)], 100)
        await wait_for(lambda: notices(seen, "error"), "the outbox fault reported")
        assert orch.store.total() == 4 and engine.outbox.depth() == 4  # stored there, still pending here
        assert not task.done(), "the oracle keeps running"
        engine.sender.pilotctl.before = None  # type: ignore[attr-defined]
        holder["conn"].fault = None
        await wait_for(lambda: engine.outbox.depth() == 0, "the rows resent and marked once the disk has room")
        assert {engine.outbox.state_of(i)[1] for i in engine.outbox.all_ids()} == {"duplicate"}  # type: ignore[index]
        assert orch.store.total() == 4 and len(notices(seen, "info")) == 1
    finally:
        await stop_tasks(task)


# -- the executor -----------------------------------------------------------------------------------------------


def blocked(engine: ExecutorEngine) -> int:
    """How many times the (dry-run) firewall was told to block 203.0.113.77."""
    return sum(1 for argv in engine.firewall.recorded if "element" in argv and "203.0.113.77" in " ".join(argv))


async def test_an_executor_records_a_block_it_carried_out_once_the_disk_has_room(tmp_path: Path) -> None:
    pilot = FakePilot()
    engine = ExecutorEngine(pilot, tmp_path / "executor.db", obey=[ORCH_ADDR], use_watchdog=False,
                            poll_interval=0.02, discover_own_ips=False)
    seen: list[u.Update] = []
    engine.add_listener(seen.append)
    broken = faulty(engine.store)
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: pilot.calls.get("inbox_listing"), "the executor watching its inbox")
        broken.fault = DISK_FULL
        req = MitigationRequest.new("block", "203.0.113.77")
        mid = pilot.deliver(ORCH_ADDR, req.encode())
        await wait_for(lambda: notices(seen, "error"), "the state file fault reported")
        refused = broken.refused
        await wait_for(lambda: broken.refused > refused + 3, "several more attempts")
        assert blocked(engine) == 1, "carried out once, not once per attempt"
        assert pilot.sent == [] and not engine.store.is_processed(mid), "not answered before it is on record"

        broken.fault = None
        await wait_for(lambda: pilot.sent, "the answer sent once the decision is on record")
        answer = parse_result(pilot.sent[0]["data"].encode() if isinstance(pilot.sent[0]["data"], str)
                              else pilot.sent[0]["data"])
        assert answer.status == "applied" and answer.request_id == req.request_id
        assert engine.store.is_processed(mid) and [b.ip for b in engine.store.active_blocks()] == ["203.0.113.77"]
        assert blocked(engine) == 1 and len(pilot.sent) == 1
        history = [h for h in engine.store.history() if h["request_id"] == req.request_id]
        assert len(history) == 1 and history[0]["status"] == "applied"
        assert len(notices(seen, "error")) == 1 and len(notices(seen, "info")) == 1
    finally:
        await stop_tasks(task)
        await engine.close()


# -- what a fault is ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "kind"), [
    (sqlite3.OperationalError("database or disk is full"), "full"),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "read_only"),
    (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
    (sqlite3.OperationalError("disk I/O error"), "io"),
])
def test_store_errors_become_one_line_faults(tmp_path: Path, exc: Exception, kind: str) -> None:
    store = EventStore(tmp_path / "orchestrator.db")
    broken = faulty(store, reads=True)
    broken.fault = (type(exc), str(exc) if not isinstance(exc, OSError) else exc.strerror)  # type: ignore[assignment]
    with pytest.raises(StoreFault) as info:
        store.ingest(events(1))
    assert info.value.kind == kind and "\n" not in str(info.value) and str(store.path) in str(info.value)
    broken.fault = None
    assert store.total() == 0 and not store.conn.in_transaction, "rolled back, nothing half-written"
    store.ingest(events(1))
    assert store.total() == 1


def test_a_programming_error_is_not_taken_for_a_fault(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "orchestrator.db")
    with pytest.raises(ValueError, match="unknown triage state"):
        store.set_state(["x"], "nonsense")
    assert StoreFault.of(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert StoreFault.of(sqlite3.ProgrammingError("closed")) is None


# -- a read-only state dir at start ------------------------------------------------------------------------------


class StateDir:
    """A state dir that can be made read-only: ``chmod 500`` (and its files 0400) for a normal user; root ignores
    modes, so as root it is a small tmpfs remounted read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounted = False
        path.mkdir(mode=0o700)
        if os.geteuid() == 0:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(path)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"root, but cannot mount a tmpfs to make a read-only dir: {done.stderr.strip()}")
            self.mounted = True

    def freeze(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True, capture_output=True)
            return
        for child in self.path.iterdir():
            child.chmod(0o400)
        self.path.chmod(0o500)

    def cleanup(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
        else:
            self.path.chmod(0o700)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[StateDir]:
    state = StateDir(tmp_path / "state")
    try:
        yield state
    finally:
        state.cleanup()


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pilot_tui", *argv], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("mode", ["orchestrator", "executor", "oracle"])
def test_a_read_only_state_dir_is_one_line_at_start(state_dir: StateDir, tmp_path: Path, mode: str) -> None:
    db_file = state_dir.path / f"{mode}.db"
    {"orchestrator": EventStore, "executor": BlockStore, "oracle": Outbox}[mode](db_file).close()  # type: ignore[operator]
    state_dir.freeze()
    log = tmp_path / "auth.log"
    log.write_text("")
    argv = {"orchestrator": ["orchestrator", "--headless", "--pilotctl", "/bin/true"],
            "executor": ["executor", "--headless", "--pilotctl", "/bin/true", "--obey", ORCH_ADDR],
            "oracle": ["oracle", "--headless", "--pilotctl", "/bin/true", "--peer", "orch", "--log", str(log)]}[mode]
    out = _cli(*argv, "--state-dir", str(state_dir.path))
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and str(db_file) in lines[0], lines
    assert "Read-only file system" in lines[0] or "Permission denied" in lines[0]


def test_export_reads_a_read_only_state_dir(state_dir: StateDir) -> None:
    store = EventStore(state_dir.path / "orchestrator.db")
    stored = events(3)
    store.ingest(stored)
    store.close()
    state_dir.freeze()
    out = _cli("export", "--format", "ndjson", "--state-dir", str(state_dir.path))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert sorted(orjson.loads(line)["id"] for line in out.stdout.splitlines()) == sorted(e.id for e in stored)
