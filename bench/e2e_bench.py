"""End to end through pilot-sim: latency (line appended → event stored) and sustained delivery throughput.

``python -m bench e2e`` — **latency**. A headless oracle tails a log file and sends to a headless orchestrator,
both as pilot-sim nodes. The bench appends one line per detection (a distinct IP each, :data:`BURST_RULES`) at a
steady rate and records ``time.time()`` right after each write; the orchestrator records ``received_at`` (its own
``time.time()``, same machine clock) when it stores the event. p50/p95/p99 over ≥ 1,000 events. Baseline: the same
path with the orchestrator on ``--stream-backend recv`` (a ``pilotctl recv`` loop that cannot reply, so each
``connect`` waits until the recv run ends). The oracle's outbox (``created``) splits each latency into
*tail + detect* (append → detection committed) and *deliver* (committed → stored at the orchestrator).

``python -m bench throughput`` — **sustained throughput**, all against the same orchestrator process:

* the seed's way: one ``pilot-sim connect <orch> 1000`` subprocess per event, sequentially, a bare seed message each;
* our ``Sender`` (in-engine) with ``batch_events=1`` — one connect per event, but our framing and acks;
* our ``Sender`` with its default batching (100 events per connect), draining a pre-filled outbox;
* the whole oracle process (tail + detect + outbox + batched sends) on a burst of lines appended at once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pilot_tui.sim.burst import BURST_RULES, burst_ip, burst_line
from pilot_tui.sim.cluster import SimCluster, SimNode, sim_command
from pilot_tui.store.db import query_readonly

from .common import (
    Ctx,
    Headless,
    count_events,
    fms,
    fnum,
    fx,
    headline_row,
    percentile,
    print_table,
    ratio,
    sim_process_s,
    wait_until,
    write_result,
)

ORACLE, ORCH = "bench-oracle", "bench-orch"
RATE = 40.0
"""Lines per second in the latency runs (steady, one detection each)."""


def _start_pair(workdir: Path, backend: str) -> tuple[SimCluster, SimNode, SimNode, Headless, Headless, Path]:
    """Two trusted sim nodes, a headless orchestrator (``backend``) and a headless oracle tailing
    ``workdir/app.log`` with BURST_RULES. The caller stops everything (see :func:`_stop`)."""
    net = SimCluster(workdir / "sim")
    procs: list[Headless] = []
    try:
        oracle_node, orch_node = net.start(ORACLE, ORCH, trust=[(ORACLE, ORCH)])
        orch = Headless("orchestrator", ["--state-dir", str(workdir / "orch"), "--stream-backend", backend],
                        orch_node.env, workdir / "orch.out")
        procs.append(orch)
        log = workdir / "app.log"
        log.touch()
        rules = workdir / "bench.toml"
        rules.write_text(BURST_RULES)
        # The connect timeout pinned to the engine default (10 s), whatever the caller's environment says.
        oracle = Headless("oracle", ["--peer", ORCH, "--log", str(log), "--from-start", "--rules", str(rules),
                                     "--sensor", "bench", "--state-dir", str(workdir / "oracle")],
                          {**oracle_node.env, "PILOT_TUI_CONNECT_TIMEOUT": "10"}, workdir / "oracle.out")
        procs.append(oracle)
        return net, oracle_node, orch_node, orch, oracle, log
    except BaseException:
        for p in procs:
            p.stop()
        net.cleanup()
        raise


def _stop(net: SimCluster, *procs: Headless | None) -> None:
    for p in procs:
        if p is not None:
            p.stop()
    net.cleanup()


def _append(fd: int, first: int, count: int) -> list[tuple[str, float]]:
    """Append ``count`` alert lines in one write; (ip, time written) for each."""
    os.write(fd, "".join(burst_line(i) for i in range(first, first + count)).encode())
    now = time.time()
    return [(burst_ip(i), now) for i in range(first, first + count)]


def _warm_up(fd: int, first: int, count: int, orch_db: Path, procs: list[Headless], timeout: float = 60,
             expect: int | None = None) -> None:
    """A few lines through the whole path so start-up (tailer attach, first connect) is not measured."""
    _append(fd, first, count)
    target = count if expect is None else expect
    wait_until(lambda: count_events(orch_db) >= target, timeout, "warm-up events at the orchestrator", procs)


def latency_run(workdir: Path, backend: str, n: int, rate: float = RATE) -> dict[str, Any]:
    """Append ``n`` lines at ``rate``/s, wait until all are stored; latencies in seconds with a breakdown."""
    net, _o, _x, orch, oracle, log = _start_pair(workdir, backend)
    try:
        result = measure_latency(log, workdir / "orch" / "orchestrator.db", workdir / "oracle" / "oracle.db",
                                 [orch, oracle], n, rate, backend)
    finally:
        _stop(net, oracle, orch)
    return {"backend": backend, **result}


def measure_latency(log: Path, orch_db: Path, oracle_db: Path, procs: list[Headless], n: int, rate: float,
                    label: str) -> dict[str, Any]:
    """With a headless oracle tailing ``log`` into a headless orchestrator (``procs``, both running): append ``n``
    lines at ``rate``/s (after a warm-up), wait until all are stored and split each latency into tail+detect and
    deliver. Also used by the real-daemon bench (:mod:`bench.real_bench`)."""
    warm = 5
    before = count_events(orch_db)
    appended: dict[str, float] = {}
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        _warm_up(fd, 100_000 + before, warm, orch_db, procs, expect=before + warm)
        start = time.time()
        for i in range(n):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            appended.update(_append(fd, before + i, 1))
        sent_s = time.time() - start
    finally:
        os.close(fd)
    wait_until(lambda: count_events(orch_db) >= before + warm + n, 60 + n / rate, f"{n} events stored ({label})",
               procs, poll=0.2)
    done = time.time()
    stored = {ip: (eid, at) for eid, ip, at in query_readonly(orch_db, "SELECT id, source_ip, received_at FROM events")}
    created = dict(query_readonly(oracle_db, "SELECT id, created FROM outbox"))
    acks = dict(query_readonly(oracle_db, "SELECT ack, COUNT(*) FROM outbox GROUP BY ack"))
    total, tail, deliver = [], [], []
    for ip, t_append in appended.items():
        eid, t_stored = stored[ip]
        total.append(t_stored - t_append)
        if eid in created:
            tail.append(created[eid] - t_append)
            deliver.append(t_stored - created[eid])

    def pct(xs: list[float]) -> dict[str, float]:
        return {f"p{p}": percentile(xs, p) for p in (50, 95, 99)} | {"max": max(xs), "mean": sum(xs) / len(xs)}

    return {
        "events": n, "rate_per_s": rate, "append_seconds": sent_s,
        "seconds_until_all_stored": done - start, "latency_s": pct(total), "tail_detect_s": pct(tail),
        "deliver_s": pct(deliver), "oracle_acks": acks,
    }


def run_latency(ctx: Ctx) -> dict[str, Any]:
    n = ctx.size(1000, 40)
    n_base = ctx.size(1000, 40)
    work = Path(tempfile.mkdtemp(prefix="pilot-bench-e2e-"))
    try:
        print(f"e2e latency: {n:,} events at {RATE:g} lines/s, orchestrator on the sim SDK stream server ...", flush=True)
        ours = latency_run(work / "sdk", "auto", n)
        print(f"e2e latency baseline: {n_base:,} events at {RATE:g} lines/s, orchestrator on the recv fallback ...",
              flush=True)
        base = latency_run(work / "recv", "recv", n_base)
        sim_s = sim_process_s()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for label, r in (("pilot-tui (replying stream server)", ours), ("baseline: --stream-backend recv", base)):
        lat = r["latency_s"]
        rows.append([label, fnum(r["events"]), fms(lat["p50"]), fms(lat["p95"]), fms(lat["p99"]), fms(lat["max"]),
                     fms(r["tail_detect_s"]["p50"]), fms(r["deliver_s"]["p50"])])
    ratios = {p: ratio(base["latency_s"][p], ours["latency_s"][p]) for p in ("p50", "p95", "p99")}
    print_table(
        f"end-to-end latency: line appended -> event stored by the orchestrator ({RATE:g} lines/s, pilot-sim)",
        ["path", "events", "p50", "p95", "p99", "max", "tail+detect p50", "deliver p50"],
        rows,
        [f"recv baseline / replying receiver: p50 {fx(ratios['p50'])}, p95 {fx(ratios['p95'])}, "
         f"p99 {fx(ratios['p99'])}",
         f"oracle acks: ours {ours['oracle_acks']}, baseline {base['oracle_acks']}",
         f"one pilot-sim process start (pilot-sim version): {fms(sim_s)} — part of every connect on pilot-sim; "
         "the Sender runs one connect at a time, so lines wait for the one in flight"],
    )
    headline = [
        headline_row(
            f"end-to-end latency p50 / p99 (line appended → stored, {RATE:g} lines/s, {ours['events']:,} events)",
            f"{fms(ours['latency_s']['p50'])} / {fms(ours['latency_s']['p99'])}",
            f"{fms(base['latency_s']['p50'])} / {fms(base['latency_s']['p99'])} (recv fallback, no reply)",
            f"{fx(ratios['p50'])} / {fx(ratios['p99'])} lower",
        )
    ]
    result = {"pilot_tui": ours, "baseline_recv": base, "baseline_over_ours": ratios, "sim_process_s": sim_s,
              "headline": headline}
    write_result(ctx, "e2e", result)
    return result


# -- throughput ---------------------------------------------------------------------------------------------------


def seed_way(node: SimNode, first: int, n: int, budget_s: float) -> dict[str, Any]:
    """What the seed does: ``echo '{source_ip, anomaly, severity}' | pilotctl connect <orch> 1000`` per event."""
    argv = [*sim_command(), "connect", ORCH, "1000"]
    ok = failed = 0
    start = time.perf_counter()
    for i in range(first, first + n):
        msg = f'{{"source_ip": "{burst_ip(i)}", "anomaly": "brute_force_ssh", "severity": "critical"}}\n'
        proc = subprocess.run(argv, input=msg.encode(), env=node.env, capture_output=True, timeout=60, check=False)
        ok, failed = (ok + 1, failed) if proc.returncode == 0 else (ok, failed + 1)
        if time.perf_counter() - start > budget_s:
            break
    secs = time.perf_counter() - start
    return {"events": ok, "failed": failed, "seconds": secs, "events_per_s": ok / secs, "connects": ok + failed}


def sender_way(node: SimNode, workdir: Path, first: int, n: int, batch_events: int, budget_s: float) -> dict[str, Any]:
    """Our Sender (in this process) draining an outbox pre-filled with ``n`` events, ``batch_events`` per connect."""
    from pilot_tui.engines.sender import Sender
    from pilot_tui.engines.updates import SendResult, UpdateBus
    from pilot_tui.model import make_event
    from pilot_tui.pilot.driver import Pilotctl
    from pilot_tui.store.outbox import Outbox

    from .common import sim_binary

    outbox = Outbox(workdir / f"outbox-{batch_events}.db")
    sensor = f"bench-sender-{batch_events}"
    events = [make_event(burst_ip(i), "brute_force_ssh", "critical", sensor=sensor, rule="sshd", count=5,
                         window_s=600, user="root", log="/var/log/auth.log",
                         evidence=[f"Nov 25 12:00:01 web-1 sshd[811]: Failed password for root from {burst_ip(i)} "
                                   "port 4242 ssh2"]) for i in range(first, first + n)]
    outbox.record(events, {})
    bus = UpdateBus()
    results: list[SendResult] = []
    bus.subscribe(lambda u: results.append(u) if isinstance(u, SendResult) else None)
    sender = Sender(Pilotctl(sim_binary(), env=node.env), outbox, bus, peer=ORCH, batch_events=batch_events)

    async def drive() -> float:
        task = asyncio.create_task(sender.run())
        start = time.perf_counter()
        try:
            while outbox.depth() and time.perf_counter() - start < budget_s:
                await asyncio.sleep(0.01)
            return time.perf_counter() - start
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        secs = asyncio.run(drive())
        delivered = outbox.counts().get("delivered", 0)
        acks = dict(outbox.conn.execute("SELECT ack, COUNT(*) FROM outbox GROUP BY ack").fetchall())
    finally:
        outbox.close()
    oks = [r for r in results if r.ok]
    return {"events": delivered, "seconds": secs, "events_per_s": delivered / secs, "connects": len(results),
            "failed_connects": len(results) - len(oks), "batch_events": batch_events, "acks": acks,
            "connect_ms_p50": percentile([r.latency_ms for r in oks], 50) if oks else None}


def oracle_burst(fd: int, orch_db: Path, first: int, n: int, procs: list[Headless], budget_s: float) -> dict[str, Any]:
    """``n`` lines appended at once to the file the oracle process tails → time until all stored."""
    before = count_events(orch_db)
    start = time.time()
    _append(fd, first, n)
    try:
        done = wait_until(lambda: count_events(orch_db) >= before + n, budget_s, "the oracle burst", procs, poll=0.05)
    except TimeoutError:
        done = time.time()
    stored = count_events(orch_db) - before
    return {"events": stored, "seconds": done - start, "events_per_s": stored / (done - start)}


def run_throughput(ctx: Ctx) -> dict[str, Any]:
    n_single = ctx.size(200, 12)
    n_batch = ctx.size(10_000, 300)
    budget = ctx.size(40, 8)
    work = Path(tempfile.mkdtemp(prefix="pilot-bench-tput-"))
    try:
        net, oracle_node, _x, orch, oracle, log = _start_pair(work, "auto")
        orch_db = work / "orch" / "orchestrator.db"
        try:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            try:
                _warm_up(fd, 100_000, 5, orch_db, [orch, oracle])
                print(f"throughput: seed's way, one pilot-sim connect per event ({n_single} events) ...", flush=True)
                seed = seed_way(oracle_node, 0, n_single, budget)
                print(f"throughput: Sender batch_events=1 ({n_single} events) ...", flush=True)
                single = sender_way(oracle_node, work, 10_000, n_single, 1, budget)
                print(f"throughput: Sender batched, 100 per connect ({n_batch:,} events) ...", flush=True)
                batched = sender_way(oracle_node, work, 20_000, n_batch, 100, budget * 3)
                print(f"throughput: oracle process, burst of {n_batch:,} lines ...", flush=True)
                burst = oracle_burst(fd, orch_db, 40_000, n_batch, [orch, oracle], budget * 3)
                sim_s = sim_process_s()
            finally:
                os.close(fd)
        finally:
            _stop(net, oracle, orch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = seed["events_per_s"]
    rows = [
        ["seed's way: pilot-sim connect per event (subprocess, sequential)", fnum(seed["events"]),
         fnum(seed["connects"]), f"{seed['seconds']:.2f}", fnum(seed["events_per_s"], 1), "1.0x"],
        ["Sender batch_events=1 (in-engine, one connect per event)", fnum(single["events"]),
         fnum(single["connects"]), f"{single['seconds']:.2f}", fnum(single["events_per_s"], 1),
         fx(ratio(single["events_per_s"], base))],
        ["Sender batched (100 events per connect)", fnum(batched["events"]), fnum(batched["connects"]),
         f"{batched['seconds']:.2f}", fnum(batched["events_per_s"], 1), fx(ratio(batched["events_per_s"], base))],
        ["oracle process: burst appended -> all stored", fnum(burst["events"]), "-", f"{burst['seconds']:.2f}",
         fnum(burst["events_per_s"], 1), fx(ratio(burst["events_per_s"], base))],
    ]
    print_table("sustained delivery throughput through pilot-sim (same orchestrator process)",
                ["path", "events", "connects", "seconds", "events/s", "vs seed"], rows,
                [f"connect p50: batch_events=1 {single['connect_ms_p50'] or 0:.0f} ms, "
                 f"batched {batched['connect_ms_p50'] or 0:.0f} ms; of which a pilot-sim process start "
                 f"(pilot-sim version) {sim_s * 1000:.0f} ms",
                 f"batched / batch_events=1: {fx(ratio(batched['events_per_s'], single['events_per_s']))}"])
    headline = [
        headline_row(
            "delivery throughput, events/s (batched 100 per connect vs one connect per event)",
            f"{fnum(batched['events_per_s'])} (Sender); {fnum(burst['events_per_s'])} (oracle process, tail→stored)",
            f"{fnum(seed['events_per_s'], 1)} (seed: connect per event); {fnum(single['events_per_s'], 1)} "
            "(Sender, batch_events=1)",
            f"{fx(ratio(batched['events_per_s'], base), 0)} / {fx(ratio(batched['events_per_s'], single['events_per_s']), 0)}",
        )
    ]
    result = {
        "seed_connect_per_event": seed, "sender_batch_1": single, "sender_batched": batched, "oracle_burst": burst,
        "batched_over_seed": ratio(batched["events_per_s"], base),
        "batched_over_batch_1": ratio(batched["events_per_s"], single["events_per_s"]),
        "oracle_burst_over_seed": ratio(burst["events_per_s"], base), "sim_process_s": sim_s, "headline": headline,
    }
    write_result(ctx, "throughput", result)
    return result
