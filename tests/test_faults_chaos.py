"""Issue 12/13 on a real full disk: an orchestrator and an oracle on pilot-sim, each state dir on its own small tmpfs
that the test fills to the last byte and then empties again.

While the orchestrator's disk is full it must answer "not stored" (the oracle keeps every row pending — none marked
delivered that the orchestrator does not have), say so once, and take everything when the disk has room again.
While the oracle's disk is full it must wait at its last saved log position and lose no line. Neither may print a
traceback. Needs root (mounting a tmpfs); skipped otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from e2e_helpers import BURST_RULES, Proc, burst_lines, query, wait_until
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``path``; :meth:`fill` takes every free byte, :meth:`free` gives it back."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.ballast = path / "ballast"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")

    def fill(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.ballast.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[tuple[SmallDisk, SmallDisk]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    made: list[SmallDisk] = []
    try:
        made.append(SmallDisk(tmp_path / "orchfs", "6m"))
        made.append(SmallDisk(tmp_path / "oraclefs", "12m"))
        yield made[0], made[1]
    finally:
        for disk in made:
            disk.unmount()


def shrink_wal(db: Path) -> None:
    """Checkpoint and truncate ``db``'s WAL (from a second connection, as SQLite allows), so the process's next
    write must grow it: SQLite rewrites a WAL in place once it has grown, and a full disk would go unnoticed."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the WAL could not be truncated"
    finally:
        conn.close()


def lines_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        if raw.strip().startswith(b"{"):
            out.append(orjson.loads(raw))
    return out


def messages(path: Path, level: str) -> list[str]:
    return [str(x["message"]) for x in lines_of(path) if x.get("type") == "Notice" and x.get("level") == level]


def test_full_disks_lose_nothing_and_recover(sim_nodes, tmp_path: Path, disks) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    orchfs, oraclefs = disks
    nodes = sim_nodes("full-oracle", "full-orch", trust=[("full-oracle", "full-orch")])
    log = tmp_path / "app.log"
    log.write_text(burst_lines(0, 100))
    rules = tmp_path / "burst.toml"
    rules.write_text(BURST_RULES)
    xstate, ostate = orchfs.path / "state", oraclefs.path / "state"
    xdb, odb = xstate / "orchestrator.db", ostate / "oracle.db"
    orch_err, oracle_out = tmp_path / "orch.err", tmp_path / "oracle.out"
    orch = Proc("orchestrator", ["--state-dir", str(xstate)], nodes["full-orch"].env, tmp_path / "orch.out",
                err=orch_err)
    oracle = Proc("oracle", ["--peer", "full-orch", "--log", str(log), "--from-start", "--rules", str(rules),
                             "--sensor", "web-1", "--state-dir", str(ostate)],
                  {**nodes["full-oracle"].env, "PILOT_TUI_CONNECT_TIMEOUT": "3"}, oracle_out, err=tmp_path / "oracle.err")
    procs = [orch, oracle]

    def stored() -> set[str]:
        return {r[0] for r in query(xdb, "SELECT id FROM events")}

    def told_stored() -> set[str]:
        return {r[0] for r in query(odb, "SELECT id FROM outbox WHERE state='delivered'")}

    def pending() -> int:
        rows = query(odb, "SELECT COUNT(*) FROM outbox WHERE state='pending'")
        return int(rows[0][0]) if rows else -1

    try:
        wait_until(lambda: len(stored()) >= 100, 60, "the first 100 events", procs)

        # the orchestrator's disk fills while a burst comes in
        shrink_wal(xdb)
        orchfs.fill()
        with log.open("a") as f:
            f.write(burst_lines(100, 2500))
        wait_until(lambda: messages(orch_err, "error"), 90, "the orchestrator saying its store fails", procs)
        wait_until(lambda: len(query(odb, "SELECT id FROM outbox")) >= 2600, 90, "every line detected", procs)
        assert pending() > 0
        assert told_stored() <= stored(), "a row marked delivered that the orchestrator does not have"
        assert not query(odb, "SELECT id FROM outbox WHERE ack='unconfirmed'")
        states = [x for x in lines_of(orch_err) if x.get("type") == "ReceiverState" and x.get("name") == "stream"]
        assert states[-1]["state"] == "degraded" and "full" in str(states[-1]["detail"])
        orchfs.free()
        wait_until(lambda: pending() == 0 and len(stored()) == 2600, 120, "everything stored once it has room", procs)
        wait_until(lambda: messages(orch_err, "info"), 30, "the orchestrator saying it recovered", procs)

        # then the oracle's disk fills while more lines arrive
        shrink_wal(odb)
        oraclefs.fill()
        with log.open("a") as f:
            f.write(burst_lines(2600, 1500))
        wait_until(lambda: messages(oracle_out, "error"), 90, "the oracle saying its outbox fails", procs)
        assert "outbox failing" in messages(oracle_out, "error")[0]
        oraclefs.free()
        wait_until(lambda: len(stored()) == 4100 and pending() == 0, 150, "every line delivered once it has room",
                   procs)
        wait_until(lambda: messages(oracle_out, "info"), 30, "the oracle saying it recovered", procs)
    finally:
        oracle.stop()
        orch.stop()
    sent = [r[0] for r in query(odb, "SELECT id FROM outbox")]
    assert len(sent) == len(set(sent)) == 4100 and set(sent) == stored()
    assert {r[0] for r in query(odb, "SELECT ack FROM outbox")} <= {"stored", "duplicate"}
    ips = query(xdb, "SELECT COUNT(DISTINCT source_ip) FROM events WHERE anomaly='burst_test'")
    assert ips == [(4100,)], "each line detected once"
    for path in (orch_err, oracle_out, tmp_path / "oracle.err", tmp_path / "orch.out"):
        text = path.read_text("utf-8", "replace") if path.exists() else ""
        assert "Traceback" not in text and "never retrieved" not in text, f"{path.name}: {text[-3000:]}"
    assert len(messages(orch_err, "error")) <= 3, "one line per episode, not one per payload"
