"""Fuzz: over 10,000 hostile payloads mixed with valid events, through every way a payload reaches the orchestrator.

* the real receiving path on pilot-sim: ``pilot-sim connect`` and the SDK twin's ``dial`` → the headless
  orchestrator's port-1000 stream receiver, and ``pilot-sim send-message`` → its inbox receiver;
* the bulk in-process, for speed: :meth:`OrchestratorEngine.ingest_payload` and ``_handle_conn`` with fake
  connections that deliver the bytes in random chunks and end with EOF, a read timeout or a reset.

Each generated line is bad (quarantined exactly once, with an expected reason) or valid (stored exactly once, with
exactly the content sent, terminal attacks included); see ``fuzz_payloads`` for the generator and the checker. The
receiver must never crash: the in-process calls never raise, the orchestrator process is still running at the end,
its receivers never restarted and it printed no traceback. Duplicate ids: the first one wins (the second one is a
duplicate — acknowledged as such, not stored, not shown, not quarantined).

``test_fuzz_checker_reports_each_planted_fault`` (default suite) proves the checker notices a single lost, unquarantined,
doubly quarantined, wrongly quarantined, overwritten or doubly shown event, and a miscounted quarantine row. ``test_invalid_utf8_message_is_quarantined``
pins a fixed bug: a send-message body that is not UTF-8 (the daemon keeps it as ``data_b64``, which an
``inbox --full`` listing leaves out) once vanished instead of being quarantined.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from e2e_helpers import Proc, query, wait_until
from fuzz_payloads import CASE_KINDS, Case, Expectations, FuzzGen, check_fuzz, read_db
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401

from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.engines.receiver import Settlement, payload_lines, settle
from pilot_tui.sim import sdk
from pilot_tui.store.events import EventStore

IN_PROCESS_CASES = 11_000
REAL_KINDS = tuple(k for k in CASE_KINDS if k != "blank")
"""``connect`` refuses an empty stdin, so blank payloads cannot be sent; one >4 MiB payload is sent on purpose."""


class ChunkedConn:
    """A fake port-1000 connection: the payload in random chunks, then EOF, a read timeout or a reset.

    Chunk boundaries never fall just after a ``}`` (or a ``}`` and line end): a boundary there could end a prefix
    that is itself a whole JSON object, which the receiver takes for a complete seed-style message — the documented
    framing rule for unframed payloads (the reply then lists only what was stored), not what this test is about.
    """

    can_reply = True

    def __init__(self, payload: bytes, rng: random.Random) -> None:
        cuts = sorted({rng.randrange(1, len(payload)) for _ in range(rng.randrange(0, 6))} if len(payload) > 1
                      else set())
        cuts = [c for c in cuts if not payload[:c].rstrip(b"\r\n").endswith(b"}")]
        bounds = [0, *cuts, len(payload)]
        self.chunks = [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
        self.end = rng.choice(["eof", "timeout", "reset"])
        self.written = b""
        self.closed = False

    async def read(self, size: int, timeout: float) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.end == "timeout":
            raise TimeoutError
        if self.end == "reset":
            raise ConnectionError("reset by peer")
        return b""

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        self.closed = True


def read_ack(reply: bytes, payload: bytes) -> Settlement | None:
    """The receiver's acknowledgement of ``payload``, lines named by their index (raises BadAck if unreadable)."""
    return settle(reply.decode(), payload, [str(k) for k in range(len(payload_lines(payload)))])


def line_counts(case: Case) -> tuple[int, int]:
    """(bad lines, valid lines) a case's payloads hold in total (a repeated seed payload counts twice)."""
    bad = sum(1 for line in case.lines if line.reasons is not None)
    valid = sum(1 for line in case.lines if line.reasons is None)
    if case.kind == "seed":
        valid = len(case.payloads)
    return bad, valid


@pytest.mark.fuzz
@pytest.mark.timeout(150)
async def test_ten_thousand_hostile_payloads_in_process(tmp_path: Path) -> None:
    db = tmp_path / "orch.db"
    engine = OrchestratorEngine(None, EventStore(db))  # type: ignore[arg-type]  # ingest needs no pilotctl
    gen, rng, exp = FuzzGen(seed=1125), random.Random(7), Expectations()
    totals = {"stored": 0, "duplicates": 0, "rejected": 0, "acks": 0, "conns": 0}
    started = time.monotonic()
    for n in range(IN_PROCESS_CASES):
        via_conn = n % 4 == 0
        case = gen.case(n, stream_safe=via_conn)
        exp.add(case)
        bad, valid = line_counts(case)
        got_bad = got_valid = 0
        for payload in case.payloads:
            if via_conn:
                conn = ChunkedConn(payload, rng)
                await engine._handle_conn(conn)  # must not raise, whatever the bytes
                assert conn.closed, f"case {n}: connection left open"
                totals["conns"] += 1
                if not payload.strip():
                    assert conn.written == b"", "nothing to acknowledge for an empty payload"
                    continue
                ack = read_ack(conn.written, payload)
                assert ack is not None, f"case {n} ({case.kind}): no ack, wrote {conn.written[:200]!r}"
                totals["acks"] += 1
                got_valid += len(ack.stored) + len(ack.duplicate)
                got_bad += len(ack.rejected) if case.kind != "oversize_payload" else 1
                totals["stored"] += len(ack.stored)
                totals["duplicates"] += len(ack.duplicate)
                totals["rejected"] += len(ack.rejected)
            else:
                result = engine.ingest_payload(payload, sender="", transport=rng.choice(["stream", "message"]))
                got_valid += len(result.stored) + len(result.duplicates)
                got_bad += len(result.rejected)
                totals["stored"] += len(result.stored)
                totals["duplicates"] += len(result.duplicates)
                totals["rejected"] += len(result.rejected)
        if case.kind == "oversize_payload":
            valid = 0
        assert (got_bad, got_valid) == (bad, valid), f"case {n} ({case.kind}): bad/valid {got_bad, got_valid}"
    elapsed = time.monotonic() - started
    engine.store.close()
    problems = check_fuzz(exp, db)
    quarantine, events = read_db(db)
    print(f"in-process: {exp.payloads} payloads ({exp.hostile_payloads} hostile) in {elapsed:.1f}s; "
          f"{len(events)} stored, {len(quarantine)} quarantined, {sum(exp.duplicates.values())} duplicate ids; "
          f"{exp.megabyte_lines} lines of 1 MB+; {totals}; kinds {dict(exp.kinds)}")
    assert exp.hostile_payloads >= 10_000 and exp.megabyte_lines >= 20
    assert len(exp.bad) > 5_000 and len(exp.valid) > 2_000 and sum(exp.duplicates.values()) > 300
    assert not problems, "\n".join(problems[:40])


# -- the real receiving path -----------------------------------------------------------------------------------


class RealPath:
    """Send cases to a headless orchestrator over pilot-sim: CLI connect, SDK dial, CLI send-message."""

    def __init__(self, src: object, orch: object) -> None:
        self.src, self.orch = src, orch
        self.local = threading.local()
        self.drivers: list[sdk.Driver] = []
        self.messages = 0
        self.lock = threading.Lock()

    def close(self) -> None:
        for drv in self.drivers:
            drv.close()

    def connect_cli(self, case: Case) -> None:
        for payload in case.payloads:
            proc = self.src.run("--json", "connect", self.orch.hostname, "1000", "--timeout", "20s",  # type: ignore[attr-defined]
                                input=payload, timeout=60)
            assert proc.returncode == 0, f"connect failed for case {case.n}: {proc.stderr[-500:]}"
            reply = orjson.loads(proc.stdout)["data"]["response"].encode()
            assert read_ack(reply, payload) is not None, f"case {case.n}: no ack"

    def dial_sdk(self, case: Case) -> None:
        drv = getattr(self.local, "drv", None)
        if drv is None:
            drv = self.local.drv = sdk.Driver(self.src.socket)  # type: ignore[attr-defined]
            with self.lock:
                self.drivers.append(drv)
        for payload in case.payloads:
            conn = drv.dial(f"{self.orch.address}:1000", timeout=20)  # type: ignore[attr-defined]
            try:
                conn.write(payload)
                conn.set_read_deadline(time.time() + 20)
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = conn.read(65536)
                    if not chunk:
                        break
                    reply += chunk
            finally:
                conn.close()
            assert read_ack(reply, payload) is not None, f"case {case.n}: no ack, got {reply[:200]!r}"

    def send_message(self, case: Case) -> None:
        for payload in case.payloads:
            proc = self.src.run("--json", "send-message", self.orch.hostname, "--type", "json", "--data", "-",  # type: ignore[attr-defined]
                                input=payload, timeout=60)
            assert proc.returncode == 0, f"send-message failed for case {case.n}: {proc.stderr[-500:]}"
            with self.lock:
                self.messages += 1


@pytest.mark.fuzz
@pytest.mark.timeout(180)
def test_hostile_payloads_through_pilot_sim(sim_nodes, tmp_path: Path) -> None:  # noqa: F811
    nodes = sim_nodes("fuzz-src", "fuzz-orch", trust=[("fuzz-src", "fuzz-orch")])
    src, orch_node = nodes["fuzz-src"], nodes["fuzz-orch"]
    db, out, err = tmp_path / "orch" / "orchestrator.db", tmp_path / "orch.out", tmp_path / "orch.err"
    orch = Proc("orchestrator", ["--state-dir", str(tmp_path / "orch")], orch_node.env, out, err=err)
    gen, exp = FuzzGen(seed=2026, big_lines=True), Expectations()
    path = RealPath(src, orch_node)
    started = time.monotonic()
    try:
        wait_until(lambda: b'"state":"running"' in err.read_bytes() and b'"name":"stream"' in err.read_bytes(), 30,
                   "the stream receiver", [orch])
        plan: list[tuple[str, Case]] = []
        n = 0
        for route, count in (("connect", 120), ("dial", 900), ("message", 120)):
            for _ in range(count):
                case = gen.case(n, stream_safe=True, kinds=REAL_KINDS)
                n += 1
                plan.append((route, case))
        big = gen.case(n, stream_safe=True, kinds=("oversize_payload",))
        plan.append(("dial", big))
        for _, case in plan:
            exp.add(case)
        runners = {"connect": path.connect_cli, "dial": path.dial_sdk, "message": path.send_message}
        # Cases that share an id (duplicate pairs) are within one case, sent in order by one worker. In-process
        # dials mostly wait for the receiver's idle gap (unframed payloads), so they get more workers than the
        # CLI routes, whose cost is a Python start-up each.
        with ThreadPoolExecutor(max_workers=12) as dials, ThreadPoolExecutor(max_workers=3) as clis:
            futures = [(dials if route == "dial" else clis).submit(runners[route], case) for route, case in plan]
            for future in futures:
                future.result()
        sent_at = time.monotonic()
        wait_until(lambda: _count(db, "inbox_seen") >= path.messages, 60, "the inbox receiver to catch up", [orch])
        assert orch.popen.poll() is None, "the orchestrator died"
    finally:
        path.close()
        code = orch.stop(signal.SIGTERM)
    assert code == 0, f"orchestrator exit {code}: {orch.stderr()[-2000:]}"
    stderr = orch.stderr()
    assert "Traceback" not in stderr, stderr[-3000:]
    restarts = [orjson.loads(x) for x in stderr.splitlines() if '"restarting"' in x]
    assert not restarts, f"a receiver crashed and was restarted: {restarts[:3]}"
    shown = [orjson.loads(x)["id"] for x in out.read_bytes().splitlines() if x.strip()]
    problems = check_fuzz(exp, db, shown=shown)
    quarantine, events = read_db(db)
    routes = {r: sum(len(c.payloads) for route, c in plan if route == r) for r in runners}
    print(f"pilot-sim: {exp.payloads} payloads ({exp.hostile_payloads} hostile) by route {routes}; "
          f"sent in {sent_at - started:.1f}s; {len(events)} stored, {len(quarantine)} quarantined, "
          f"{sum(exp.duplicates.values())} duplicate ids")
    assert not problems, "\n".join(problems[:40])


def _count(db: Path, table: str) -> int:
    rows = query(db, f"SELECT COUNT(*) FROM {table}")
    return int(rows[0][0]) if rows else 0


@pytest.mark.fuzz
@pytest.mark.timeout(60)
def test_invalid_utf8_message_is_quarantined(sim_nodes, tmp_path: Path) -> None:  # noqa: F811
    nodes = sim_nodes("bin-src", "bin-orch", trust=[("bin-src", "bin-orch")])
    db, err = tmp_path / "orch" / "orchestrator.db", tmp_path / "orch.err"
    orch = Proc("orchestrator", ["--state-dir", str(tmp_path / "orch")], nodes["bin-orch"].env, tmp_path / "orch.out",
                err=err)
    try:
        payload = b'{"source_ip":"192.0.2.9","anomaly":"\xff\xfe","severity":"low","id":"binary-1"}'
        proc = nodes["bin-src"].run("--json", "send-message", "bin-orch", "--type", "json", "--data", "-",
                                    input=payload)
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: _count(db, "inbox_seen") >= 1, 30, "the inbox receiver to take the message", [orch])
    finally:
        orch.stop()
    quarantine, events = read_db(db)
    assert events == []
    assert [reason for reason, _ in quarantine] == ["invalid_utf8"], "the message must be quarantined, not dropped"


# -- the checker must notice a single fault (fast; default suite) ------------------------------------------------


def _small_run(tmp_path: Path) -> tuple[Expectations, Path, list[Case]]:
    db = tmp_path / "orch.db"
    engine = OrchestratorEngine(None, EventStore(db))  # type: ignore[arg-type]
    gen, exp, cases = FuzzGen(seed=99, big_lines=False), Expectations(), []
    for n in range(400):
        case = gen.case(n)
        exp.add(case)
        cases.append(case)
        for payload in case.payloads:
            engine.ingest_payload(payload, sender="", transport="stream")
    engine.store.close()
    return exp, db, cases


def _doctor(db: Path, dest: Path, statement: str, *args: object) -> Path:
    """A copy of ``db`` with one statement applied: a planted fault."""
    shutil.copyfile(db, dest)
    conn = sqlite3.connect(dest)
    with conn:
        conn.execute(statement, args)
    conn.close()
    return dest


def test_fuzz_checker_reports_each_planted_fault(tmp_path: Path) -> None:
    exp, db, cases = _small_run(tmp_path)
    assert check_fuzz(exp, db) == []
    assert len(exp.bad) > 300 and len(exp.valid) > 100 and exp.duplicates
    valid_id = sorted(exp.valid)[3]
    bad_marker = sorted(exp.bad)[5]
    dup = next(c for c in cases if c.kind == "dup_different_content")
    second = dup.lines[1].expect
    assert second is not None

    lost = _doctor(db, tmp_path / "lost.db", "DELETE FROM events WHERE id=?", valid_id)
    assert any(valid_id in p and "stored 0 times" in p for p in check_fuzz(exp, lost))

    unquarantined = _doctor(db, tmp_path / "unq.db", "DELETE FROM quarantine WHERE CAST(raw AS TEXT) LIKE ?",
                            f"%{bad_marker}%")
    assert any(bad_marker in p and "quarantined 0 times" in p for p in check_fuzz(exp, unquarantined))

    twice = _doctor(db, tmp_path / "twice.db", "INSERT INTO quarantine(received_at, reason, detail, raw, raw_len, "
                    "lines, samples) SELECT received_at, reason, detail, raw, raw_len, lines, samples FROM quarantine "
                    "WHERE CAST(raw AS TEXT) LIKE ?", f"%{bad_marker}%")
    assert any(bad_marker in p and "quarantined 2 times" in p for p in check_fuzz(exp, twice))
    assert any("quarantine rows for" in p for p in check_fuzz(exp, twice)), "one row per payload, not two"

    miscounted = _doctor(db, tmp_path / "count.db", "UPDATE quarantine SET lines = lines + 1 WHERE CAST(raw AS TEXT) "
                         "LIKE ?", f"%{bad_marker}%")
    assert any("lines refused but samples" in p for p in check_fuzz(exp, miscounted))

    second_won = _doctor(db, tmp_path / "second.db", "UPDATE events SET body=? WHERE id=?", orjson.dumps(second),
                         dup.lines[0].marker)
    assert any(dup.lines[0].marker in p and "differs from the first" in p for p in check_fuzz(exp, second_won))

    quarantined_valid = _doctor(db, tmp_path / "qv.db", "INSERT INTO quarantine(received_at, reason, detail, raw, "
                                "raw_len) VALUES (0, 'bad_json', '', ?, 1)", valid_id.encode())
    assert any("not bad" in p and valid_id in p for p in check_fuzz(exp, quarantined_valid))

    stored = [r[0] for r in read_db(db)[1]]
    assert check_fuzz(exp, db, shown=stored) == []
    assert any(f"{stored[0]}: shown 2 times" in p for p in check_fuzz(exp, db, shown=[*stored, stored[0]]))
    assert any(f"{stored[1]}: stored but never shown" in p for p in check_fuzz(exp, db, shown=stored[:1] + stored[2:]))
