"""Idle CPU of the engines that follow a Pilot inbox: a headless orchestrator and a headless executor at rest.

``python -m bench idle``. Each engine runs as a pilot-sim node whose inbox already holds 1,000 messages (written
with the emulator's own inbox writer, the daemon's file format): valid seed events for the orchestrator, mitigation
results for the executor (which marks them processed and answers none, so no reply traffic follows). Once every
message is processed, the bench samples each process's CPU time — its own plus that of the ``pilot-sim`` children
it has reaped (``/proc/<pid>/stat`` utime + stime + cutime + cstime) — over one cycle of the inbox watcher's
safety-net polls (60 s: a complete listing and the incremental ones between), and reports it as a share of one core.
It also times one ``pilot-sim`` run of each safety-net poll on the same 1,000-message inbox and shows what they
cost spread over their periods.

Why it exists: the inbox watcher once took its own reads of the inbox files (watchdog's ``opened`` /
``closed_no_write``) for new mail and re-listed the whole inbox in a loop, burning a core while nothing happened.

Baseline, measured over the same window on the same machine: a process that only sleeps (a Python interpreter
waiting on ``time.sleep``), i.e. the floor this measurement can see; the target is ≤ 2 % of a core.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilot_tui.engines.mitigation import RESULT_SCHEMA
from pilot_tui.pilot.inbox import COMPLETE_EVERY_S, SINCE_MARGIN_S, WATCHED_POLL_S, rfc3339
from pilot_tui.sim.burst import burst_ip
from pilot_tui.sim.cluster import SimCluster, SimNode, sim_command
from pilot_tui.sim.proto import TYPE_JSON
from pilot_tui.sim.services import write_inbox_message
from pilot_tui.store.db import query_readonly

from .common import Ctx, Headless, count_events, headline_row, print_table, wait_until, write_result

ORCH, EXEC, PEER = "idle-orch", "idle-exec", "idle-peer"
TARGET = 0.02
"""At rest an engine should use at most 2 % of one core."""


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of ``pid`` plus its reaped children (``utime + stime + cutime + cstime`` from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def idle_shares(pids: dict[str, int], seconds: float) -> dict[str, float | None]:
    """Share of one core each process (with its reaped children) uses over the same next ``seconds``."""
    before, t0 = {k: tree_cpu_s(p) for k, p in pids.items()}, time.monotonic()
    time.sleep(seconds)
    after, t1 = {k: tree_cpu_s(p) for k, p in pids.items()}, time.monotonic()
    out: dict[str, float | None] = {}
    for key in pids:
        b, a = before[key], after[key]
        out[key] = None if a is None or b is None else (a - b) / (t1 - t0)
    return out


def _fill(inbox: Path, n: int, sender: str, payload: Any) -> None:
    for i in range(n):
        write_inbox_message(inbox, TYPE_JSON, json.dumps(payload(i)).encode(), sender, message_id=f"{i:032x}")


def _event(i: int) -> dict[str, Any]:
    return {"source_ip": burst_ip(i), "anomaly": "brute_force_ssh", "severity": "high"}


def _result(i: int) -> dict[str, Any]:
    return {"schema": RESULT_SCHEMA, "request_id": f"old-{i}", "ip": burst_ip(i), "action": "block",
            "status": "applied"}


def _processed(db: Path) -> int:
    try:
        rows = query_readonly(db, "SELECT COUNT(*) FROM processed")
    except Exception:  # the engine has not created its schema yet
        return 0
    return int(rows[0][0]) if rows else 0


def _listing_cpu_s(node: SimNode, *flags: str, runs: int = 3) -> float:
    """Median CPU seconds (user + system) of one ``pilot-sim --json inbox FLAGS`` run as ``node``."""
    costs = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([*sim_command(), "--json", "inbox", *flags], env=node.env, capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return sorted(costs)[len(costs) // 2]


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.size(1000, 50)
    window = float(ctx.size(int(COMPLETE_EVERY_S), 2))  # a whole safety-net cycle: no luck in where polls fall
    settle = float(ctx.size(5, 1))  # quiet time after the last message is processed (start-up work winds down)
    shares: dict[str, float | None] = {}
    safety: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pilot-tui-idle-") as tmp:
        work = Path(tmp)
        net = SimCluster(work / "sim")
        procs: list[Headless] = []
        try:
            peer, orch_node, exec_node = net.start(PEER, ORCH, EXEC)
            _fill(orch_node.inbox, n, peer.address, _event)
            _fill(exec_node.inbox, n, peer.address, _result)
            orch = Headless("orchestrator", ["--state-dir", str(work / "orch")], orch_node.env, work / "orch.out")
            procs.append(orch)
            exe = Headless("executor", ["--state-dir", str(work / "exec"), "--obey", PEER],
                           exec_node.env, work / "exec.out")
            procs.append(exe)
            wait_until(lambda: count_events(work / "orch" / "orchestrator.db") >= n
                       if (work / "orch" / "orchestrator.db").exists() else False,
                       120, f"{n} inbox events stored by the orchestrator", procs, poll=0.2)
            wait_until(lambda: _processed(work / "exec" / "executor.db") >= n
                       if (work / "exec" / "executor.db").exists() else False,
                       120, f"{n} inbox messages processed by the executor", procs, poll=0.2)
            # the baseline: a Python process that only sleeps, measured over the same window
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            try:
                time.sleep(settle)
                shares.update(idle_shares({"orchestrator": orch.popen.pid, "executor": exe.popen.pid,
                                           "sleeper": sleeper.pid}, window))
            finally:
                sleeper.kill()
                sleeper.wait()
            for p in procs:
                p.check("idle window")
            safety = {
                "incremental_s": _listing_cpu_s(orch_node, "--limit", "0", "--since",
                                                rfc3339(time.time() - WATCHED_POLL_S - SINCE_MARGIN_S)),
                "complete_s": _listing_cpu_s(orch_node, "--limit", "0"),
            }
        finally:
            for p in procs:
                p.stop()
            net.cleanup()

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:.2f} %"

    base = shares["sleeper"]
    spread = safety["incremental_s"] / WATCHED_POLL_S + safety["complete_s"] / COMPLETE_EVERY_S
    rows = [[name, pct(shares[name]), pct(base), "yes" if (shares[name] or 0) <= TARGET else "NO"]
            for name in ("orchestrator", "executor")]
    print_table(f"idle CPU over {window:g}s with {n:,} messages in the inbox (share of one core, incl. children)",
                ["engine", "pilot-tui", "baseline (sleeping process)", f"≤ {TARGET * 100:g} %"], rows,
                [f"settled {settle:g}s after the last message was processed; pilot-sim children counted once reaped",
                 f"of which safety-net polls (one pilot-sim run each): an empty --since window "
                 f"{safety['incremental_s'] * 1000:.0f} ms CPU every {WATCHED_POLL_S:g}s + a complete listing of "
                 f"{n:,} {safety['complete_s'] * 1000:.0f} ms every {COMPLETE_EVERY_S:g}s = {pct(spread)} of a core"])
    headline = [headline_row(
        f"idle CPU with {n:,} inbox messages (headless, pilot-sim)",
        f"orchestrator {pct(shares['orchestrator'])}, executor {pct(shares['executor'])} of a core "
        f"over {window:g}s",
        f"a sleeping process {pct(base)}",
        f"target ≤ {TARGET * 100:g} %",
    )]
    result = {"messages": n, "window_s": window, "settle_s": settle, "cpu_share": shares, "target": TARGET,
              "safety_poll_cpu_s": safety, "safety_poll_share": spread, "headline": headline}
    write_result(ctx, "idle", result)
    return result
