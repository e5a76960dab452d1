"""End to end on pilot-sim: headless oracle → emulated Pilot network → headless orchestrator.

Every detection the oracle committed must be stored by the orchestrator exactly once — for both transports, across
an orchestrator restart in the middle, through a 5,000-event burst, and across a kill -9 of the oracle.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest
from e2e_helpers import BURST_RULES, Proc, burst_lines, query, wait_until
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401

from pilot_tui.sim.loggen import generate

pytestmark = pytest.mark.timeout(180)


def ids(db: Path, table: str = "events") -> list[str]:
    return [r[0] for r in query(db, f"SELECT id FROM {table}")]


def shown_ids(*outs: Path) -> list[str]:
    """Ids the orchestrator printed (one JSON line per accepted event) over all its runs."""
    lines = []
    for out in outs:
        if out.exists():
            lines += [orjson.loads(x) for x in out.read_bytes().splitlines() if x.strip()]
    return [obj["id"] for obj in lines]


@pytest.mark.parametrize("transport", ["stream", "message"])
def test_every_detection_stored_once_across_orchestrator_restart(sim_nodes, tmp_path, transport) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("web-oracle", "threat-orch", trust=[("web-oracle", "threat-orch")])
    log = tmp_path / "auth.log"
    generate(log, "auth", 6000, seed=11)
    rules = tmp_path / "burst.toml"
    rules.write_text(BURST_RULES)
    odb, xdb = tmp_path / "oracle" / "oracle.db", tmp_path / "orch" / "orchestrator.db"
    orch_args = ["--state-dir", str(tmp_path / "orch")]
    orch = Proc("orchestrator", orch_args, nodes["threat-orch"].env, tmp_path / "orch1.out")
    oracle = Proc("oracle", ["--peer", "threat-orch", "--transport", transport, "--log", str(log), "--from-start",
                             "--sensor", "web-1", "--rules", str(rules), "--state-dir", str(tmp_path / "oracle")],
                  nodes["web-oracle"].env, tmp_path / "oracle.out")
    try:
        wait_until(lambda: len(ids(xdb)) >= 20, 60, "first events at the orchestrator", [orch, oracle])
        orch.stop(signal.SIGTERM)
        with log.open("a") as f:  # detections made while the orchestrator is down wait in the outbox
            f.write(burst_lines(0, 300))
        orch = Proc("orchestrator", orch_args, nodes["threat-orch"].env, tmp_path / "orch2.out")
        with log.open("a") as f:
            f.write(burst_lines(300, 200))

        def settled() -> bool:
            sent = ids(odb, "outbox")
            pending = query(odb, "SELECT COUNT(*) FROM outbox WHERE state='pending'")
            return len(sent) >= 500 and bool(pending) and pending[0][0] == 0 and set(sent) <= set(ids(xdb))

        wait_until(settled, 120, "the outbox to drain", [orch, oracle])
    finally:
        oracle.stop()
        orch.stop()
    sent = ids(odb, "outbox")
    stored = ids(xdb)
    assert len(sent) == len(set(sent)) and set(sent) == set(stored)
    shown = shown_ids(tmp_path / "orch1.out", tmp_path / "orch2.out")
    assert sorted(shown) == sorted(stored), "each event is shown exactly once over both orchestrator runs"
    assert query(xdb, "SELECT COUNT(*) FROM quarantine") == [(0,)]
    acks = {r[0] for r in query(odb, "SELECT ack FROM outbox")}
    assert acks <= ({"stored", "duplicate"} if transport == "stream" else {"daemon-ack"})
    burst_ips = {r[0] for r in query(xdb, "SELECT source_ip FROM events WHERE anomaly='burst_test'")}
    assert len(burst_ips) == 500
    if transport == "message":
        senders = {r[0] for r in query(xdb, "SELECT DISTINCT sender FROM events")}
        assert senders == {nodes["web-oracle"].address}


def test_burst_and_oracle_kill_9_lose_nothing(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("web-oracle", "threat-orch", trust=[("web-oracle", "threat-orch")])
    log = tmp_path / "app.log"
    log.write_text(burst_lines(0, 5000))
    rules = tmp_path / "burst.toml"
    rules.write_text(BURST_RULES)
    odb, xdb = tmp_path / "oracle" / "oracle.db", tmp_path / "orch" / "orchestrator.db"
    oracle_args = ["--peer", "threat-orch", "--log", str(log), "--from-start", "--rules", str(rules),
                   "--sensor", "web-1", "--state-dir", str(tmp_path / "oracle")]
    orch = Proc("orchestrator", ["--state-dir", str(tmp_path / "orch")], nodes["threat-orch"].env,
                tmp_path / "orch.out")
    oracle = Proc("oracle", oracle_args, nodes["web-oracle"].env, tmp_path / "oracle1.out")
    try:
        wait_until(lambda: len(ids(xdb)) >= 300, 90, "the burst to start arriving", [orch, oracle])
        assert oracle.stop(signal.SIGKILL) == -signal.SIGKILL
        oracle = Proc("oracle", oracle_args, nodes["web-oracle"].env, tmp_path / "oracle2.out")
        with log.open("a") as f:
            f.write(burst_lines(5000, 500))
        wait_until(lambda: len(ids(xdb)) >= 5500, 150, "all 5,500 detections", [orch, oracle])
        wait_until(lambda: query(odb, "SELECT COUNT(*) FROM outbox WHERE state='pending'") == [(0,)], 60,
                   "the outbox to drain", [orch, oracle])
    finally:
        oracle.stop()
        orch.stop()
    stored_ips = query(xdb, "SELECT source_ip, COUNT(*) FROM events GROUP BY source_ip")
    assert len(stored_ips) == 5500 and all(n == 1 for _, n in stored_ips), "every line detected and stored once"
    assert set(ids(odb, "outbox")) == set(ids(xdb))
    seqs = [r[0] for r in query(xdb, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(5500)), "per-sensor seq has no gap and no repeat"
