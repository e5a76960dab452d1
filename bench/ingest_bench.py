"""Orchestrator ingest: a 50,000-event burst through pilot-sim into a headless orchestrator process.

``python -m bench ingest``. The events are framed as the oracle frames them (100 per payload, ``batch_size`` on
each line) and pushed with ``pilot-sim --json connect <orch> 1000`` from the sender node, several connects in
parallel. Measured: time from the first connect to all events stored (the orchestrator's replies list the stored
ids and the database count is checked), events/s, and the orchestrator process's peak RSS (its ``VmHWM`` after the
burst: on Linux its ``ru_maxrss`` would include this bench process's own peak, see
:func:`bench.common.peak_rss_kb_self`; its RSS while idle before the burst is shown for comparison).

Baseline, same run: the same payloads through ``decode_payload`` + ``EventStore.ingest`` in a fresh Python process
with no network (``python -m bench.ingest_bench --worker``), so the cost of the network path is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from pilot_tui.engines.receiver import payload_lines, settle
from pilot_tui.sim.burst import burst_ip

from .common import (
    Ctx,
    Headless,
    count_events,
    fnum,
    fx,
    headline_row,
    peak_rss_kb_self,
    percentile,
    print_table,
    proc_cpu_s,
    ratio,
    sim_binary,
    vm_kb,
    wait_until,
    write_result,
)

SENDER, ORCH = "bench-sender", "bench-orch"
BATCH = 100
PARALLEL = 4
"""Connects in flight at once (the machine has 2 cores; a few more hide each connect's process start-up)."""


def make_payloads(n: int, batch: int = BATCH, *, first: int = 0, sensor: str = "web") -> list[bytes]:
    """``n`` realistic events from a few sensors, framed as the oracle frames them (``batch_size`` per line)."""
    from pilot_tui.model import make_event

    payloads: list[bytes] = []
    sensors = [f"{sensor}-{k}" for k in range(PARALLEL)]
    seqs = dict.fromkeys(sensors, 0)
    for start in range(0, n, batch):
        sensor = sensors[(start // batch) % len(sensors)]
        lines = []
        count = min(batch, n - start)
        for i in range(start, start + count):
            ip = burst_ip(first + i)
            event = make_event(ip, "brute_force_ssh", "critical", sensor=sensor, seq=seqs[sensor], rule="sshd",
                               count=6, window_s=600, user="root", log="/var/log/auth.log",
                               evidence=[f"Nov 25 12:00:0{k} web-1 sshd[811]: Failed password for root from {ip} "
                                         f"port {40000 + k} ssh2" for k in range(3)])
            seqs[sensor] += 1
            obj = event.to_dict()
            obj["batch_size"] = count
            lines.append(orjson.dumps(obj))
        payloads.append(b"\n".join(lines) + b"\n")
    return payloads


def push(payloads: list[bytes], env: dict[str, str], parallel: int, budget_s: float) -> dict[str, Any]:
    """Send every payload with one ``pilot-sim connect`` each, ``parallel`` at a time; count the stored ids."""
    argv = [sim_binary(), "--json", "connect", ORCH, "1000", "--timeout", "30s"]
    lock = threading.Lock()
    stats: dict[str, Any] = {"stored": 0, "duplicate": 0, "failed_connects": 0, "retries": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + budget_s

    def one(payload: bytes) -> None:
        for attempt in range(3):
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            proc = subprocess.run(argv, input=payload, env=env, capture_output=True, timeout=60, check=False)
            took = time.perf_counter() - began
            ack = None
            if proc.returncode == 0:
                try:
                    reply = orjson.loads(proc.stdout)["data"]["response"]
                    ack = settle(reply, payload, [str(k) for k in range(len(payload_lines(payload)))])
                except (ValueError, KeyError, TypeError):  # BadAck is a ValueError
                    ack = None
            with lock:
                if ack is not None:
                    latencies.append(took)
                    stats["stored"] += len(ack.stored)
                    stats["duplicate"] += len(ack.duplicate)
                    return
                stats["failed_connects"] += 1
                stats["retries"] += attempt < 2
        return

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, payloads))
    stats["connects"] = len(latencies)
    stats["connect_s_p50"] = percentile(latencies, 50)
    stats["connect_s_p95"] = percentile(latencies, 95)
    return stats


def network_run(payloads: list[bytes], n: int, work: Path, parallel: int, budget_s: float) -> dict[str, Any]:
    from pilot_tui.sim.cluster import SimCluster

    with SimCluster(work / "sim") as net:
        sender, orch_node = net.start(SENDER, ORCH, trust=[(SENDER, ORCH)])
        orch = Headless("orchestrator", ["--state-dir", str(work / "orch")], orch_node.env, work / "orch.out")
        db = work / "orch" / "orchestrator.db"
        try:
            # Ready = a one-event warm-up payload is stored (it also loads the code paths the burst uses).
            warm = make_payloads(1, first=120_000, sensor="warmup")[0]
            wait_until(lambda: _try_connect(warm, sender.env), 30, "the orchestrator's port 1000", [orch], poll=0.2)
            idle_rss = vm_kb(orch.popen.pid, "VmRSS")
            idle_cpu = proc_cpu_s(orch.popen.pid)
            before = count_events(db)
            cpu0 = _machine_cpu_s()
            start = time.perf_counter()
            stats = push(payloads, sender.env, parallel, budget_s)
            wait_until(lambda: count_events(db) >= before + n, max(5.0, budget_s / 4), "all events in the database",
                       [orch], poll=0.05)
            seconds = time.perf_counter() - start
            wall_cpu_s = _machine_cpu_s() - cpu0 if cpu0 is not None else None
            stored_db = count_events(db) - before
        finally:
            orch.stop()
    return {"events": n, "stored": stored_db, "seconds": seconds, "events_per_s": stored_db / seconds,
            "peak_rss_mb": (orch.peak_rss_kb or 0) / 1024, "idle_rss_mb": (idle_rss or 0) / 1024,
            "ru_maxrss_mb": (orch.ru_maxrss_kb or 0) / 1024,
            "orchestrator_cpu_s": orch.cpu_s, "wall_cpu_s": wall_cpu_s,
            "orchestrator_burst_cpu_s": (orch.cpu_s - idle_cpu) if orch.cpu_s is not None and idle_cpu is not None
            else None,
            "parallel_connects": parallel, "batch": BATCH, **stats}


def _machine_cpu_s() -> float | None:
    """CPU seconds all processes used so far (Linux ``/proc/stat``), to show how busy the burst kept the machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[0]) + int(fields[1]) + int(fields[2])) / ticks  # user + nice + system
    except (OSError, ValueError, IndexError):
        return None


def _try_connect(payload: bytes, env: dict[str, str]) -> bool:
    proc = subprocess.run([sim_binary(), "--json", "connect", ORCH, "1000", "--timeout", "5s"], input=payload,
                          env=env, capture_output=True, timeout=30, check=False)
    return proc.returncode == 0 and b"pilot-tui.ack/" in proc.stdout  # our receiver answered


def inprocess_run(payloads: list[bytes], work: Path) -> dict[str, Any]:
    """The baseline in a fresh interpreter (so its peak RSS is comparable with the orchestrator's)."""
    path = work / "payloads.bin"
    with path.open("wb") as f:
        for p in payloads:
            f.write(len(p).to_bytes(4, "big") + p)
    proc = subprocess.run([sys.executable, "-m", "bench.ingest_bench", "--worker", str(path), str(work / "inproc.db")],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=str(Path(__file__).resolve().parent.parent))
    if proc.returncode != 0:
        raise RuntimeError(f"in-process ingest worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _read_payloads(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while header := f.read(4):
            yield f.read(int.from_bytes(header, "big"))


def worker(payload_file: Path, db: Path) -> dict[str, Any]:
    """``decode_payload`` + ``EventStore.ingest`` for every payload, as the orchestrator does, minus the network."""
    from pilot_tui.model import decode_payload
    from pilot_tui.store.events import EventStore

    store = EventStore(db)
    stored = 0
    start = time.perf_counter()
    for payload in _read_payloads(payload_file):
        decoded = decode_payload(payload)
        stored += len(store.ingest(decoded.events, decoded.rejected, transport="stream").stored)
    seconds = time.perf_counter() - start
    total = store.total()
    store.close()
    peak_kb = peak_rss_kb_self()
    return {"events": total, "stored": stored, "seconds": seconds, "events_per_s": stored / seconds,
            "peak_rss_mb": peak_kb / 1024}


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.size(50_000, 2_000)
    budget = ctx.size(300, 60)
    work = Path(tempfile.mkdtemp(prefix="pilot-bench-ingest-"))
    try:
        t0 = time.perf_counter()
        payloads = make_payloads(n)
        size = sum(len(p) for p in payloads)
        print(f"ingest: {n:,} events in {len(payloads):,} payloads of {BATCH} ({size / 1e6:.1f} MB) made in "
              f"{time.perf_counter() - t0:.1f}s; pushing through pilot-sim, {PARALLEL} connects in parallel ...",
              flush=True)
        net = network_run(payloads, n, work, PARALLEL, budget)
        print("ingest baseline: the same payloads through EventStore.ingest in-process ...", flush=True)
        base = inprocess_run(payloads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        [f"orchestrator process via pilot-sim ({PARALLEL} parallel connects)", fnum(net["stored"]),
         f"{net['seconds']:.2f}", fnum(net["events_per_s"]), f"{net['peak_rss_mb']:.1f}", "1.0x"],
        ["baseline: decode + EventStore.ingest in-process, no network", fnum(base["stored"]),
         f"{base['seconds']:.2f}", fnum(base["events_per_s"]), f"{base['peak_rss_mb']:.1f}",
         fx(ratio(base["events_per_s"], net["events_per_s"]))],
    ]
    print_table(f"orchestrator ingest: {n:,}-event burst, {BATCH}-event batches",
                ["path", "events stored", "seconds", "events/s", "peak RSS MB", "speed vs network"], rows,
                [f"orchestrator RSS idle before the burst: {net['idle_rss_mb']:.1f} MB; connects: {net['connects']}, "
                 f"p50 {net['connect_s_p50'] * 1000:.0f} ms, p95 {net['connect_s_p95'] * 1000:.0f} ms; failed "
                 f"connects {net['failed_connects']}, duplicates {net['duplicate']}",
                 f"network share of the time: {1 - base['seconds'] / net['seconds']:.0%} "
                 f"(ingest itself {base['seconds']:.2f}s of {net['seconds']:.2f}s)",
                 f"CPU during the burst: orchestrator process {net['orchestrator_burst_cpu_s'] or 0:.1f} s "
                 f"({(net['orchestrator_burst_cpu_s'] or 0) / n * 1e6:.0f} µs/event), whole machine {net['wall_cpu_s'] or 0:.1f} s of {net['seconds'] * (os.cpu_count() or 1):.1f} "
                 "available (pilot-sim connect processes and daemons take the rest)"])
    headline = [
        headline_row(
            f"orchestrator ingest, {n:,}-event burst (100-event connects)",
            f"{fnum(net['events_per_s'])} events/s, all stored in {net['seconds']:.1f} s, peak RSS "
            f"{net['peak_rss_mb']:.0f} MB",
            f"{fnum(base['events_per_s'])} events/s in-process EventStore.ingest (no network), peak RSS "
            f"{base['peak_rss_mb']:.0f} MB",
            f"in-process {fx(ratio(base['events_per_s'], net['events_per_s']))} faster: "
            f"{1 - base['seconds'] / net['seconds']:.0%} of the time is the network path",
        )
    ]
    result = {"events": n, "payload_bytes": size, "network": net, "inprocess": base,
              "inprocess_over_network": ratio(base["events_per_s"], net["events_per_s"]), "headline": headline}
    write_result(ctx, "ingest", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="in-process ingest worker (the baseline of the ingest bench)")
    parser.add_argument("--worker", nargs=2, metavar=("PAYLOADS", "DB"), required=True)
    ns = parser.parse_args()
    print(json.dumps(worker(Path(ns.worker[0]), Path(ns.worker[1]))))
