"""``python -m bench real [--quick]``: delivery on real ``pilot-daemon`` 1.18 nodes, side by side in one run.

Every other delivery figure comes from pilot-sim, whose every call is a Python process. This bench brings up the
real-daemon lab (:mod:`bench.lab`: a rendezvous and two daemons in a loopback-only network namespace) and runs the
headless oracle and orchestrator on it, as an operator would:

* **latency** — one line per detection appended at 40 lines/s (:data:`bench.e2e_bench.RATE`), line appended → event
  stored, p50/p95/p99, for ``--transport stream`` and ``--transport message``;
* **burst** — 10,000 lines appended at once → all stored, events/s, both transports;
* **the seed's way** (baseline, same run) — one ``pilotctl connect`` per event to a ``pilotctl recv`` loop (the
  orchestrator with ``--stream-backend recv``): each connect waits for the recv run's timer.

Everything runs twice: on daemons as installed, and with ``-syn-whitelist`` on the daemons (see :data:`LABS`).

An outage run (syn-whitelist lab) kills the orchestrator's daemon a third of the way through 400 lines and starts it
again. Each run counts ids: every event stored exactly once, and no outbox row ``unconfirmed`` (the peer is our own
orchestrator, so every row must be acknowledged). Without the lab (no rendezvous binary, not root) it says why and
skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from pilot_tui.sim.burst import BURST_RULES, burst_ip
from pilot_tui.store.db import query_readonly

from . import lab as reallab
from .common import (
    Ctx,
    Headless,
    count_events,
    fms,
    fnum,
    fx,
    headline_row,
    print_table,
    ratio,
    wait_until,
    write_result,
)
from .e2e_bench import RATE, _append, _warm_up, measure_latency

ORACLE, ORCH = "lab-oracle", "lab-orch"


def _start(lab: reallab.RealLab, workdir: Path, transport: str, backend: str = "auto") -> tuple[Headless, Headless, Path]:
    """A headless orchestrator on ORCH and a headless oracle on ORACLE tailing ``workdir/app.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    orch_node, oracle_node = lab[ORCH], lab[ORACLE]
    clear = orch_node.pilotctl("inbox", "--clear", timeout=30)  # a daemon keeps old messages across app state dirs
    if not clear.ok:
        raise RuntimeError(f"inbox --clear on {ORCH}: {clear}")
    orch = Headless("orchestrator", ["--state-dir", str(workdir / "orch"), "--stream-backend", backend],
                    orch_node.full_env(), workdir / "orch.out", pilotctl=str(orch_node.pilotctl_path))
    log = workdir / "logs" / "app.log"  # its own directory: the tailer watches it, and our outputs are busy files
    log.parent.mkdir(exist_ok=True)
    log.touch()
    rules = workdir / "bench.toml"
    rules.write_text(BURST_RULES)
    oracle = Headless("oracle", ["--peer", ORCH, "--transport", transport, "--log", str(log), "--from-start",
                                 "--rules", str(rules), "--sensor", f"bench-{transport}", "--state-dir",
                                 str(workdir / "oracle")],
                      {**oracle_node.full_env(), "PILOT_TUI_CONNECT_TIMEOUT": "10"}, workdir / "oracle.out",
                      pilotctl=str(oracle_node.pilotctl_path))
    return orch, oracle, log


def _accounting(workdir: Path) -> dict[str, Any]:
    """Exactly-once check: ids at the orchestrator vs the oracle's outbox, and how the outbox rows ended."""
    orch_ids = [r[0] for r in query_readonly(workdir / "orch" / "orchestrator.db", "SELECT id FROM events")]
    outbox = query_readonly(workdir / "oracle" / "oracle.db", "SELECT id, state, ack FROM outbox")
    acks: dict[str, int] = {}
    for _id, state, ack in outbox:
        key = f"{state}:{ack}"
        acks[key] = acks.get(key, 0) + 1
    sent = {r[0] for r in outbox}
    return {
        "stored": len(orch_ids), "distinct_stored": len(set(orch_ids)), "outbox_rows": len(outbox),
        "missing": len(sent - set(orch_ids)), "unexpected": len(set(orch_ids) - sent),
        "unconfirmed": sum(1 for r in outbox if r[2] == "unconfirmed"),
        "pending": sum(1 for r in outbox if r[1] == "pending"), "outbox_acks": acks,
    }


def _stats(workdir: Path) -> dict[str, Any]:
    """Sends, hedges, failed sends and peer states from the oracle's headless output (one JSON object a line)."""
    hedged = failed = sends = 0
    states: list[str] = []
    for line in (workdir / "oracle.out").read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if obj.get("type") == "SendResult":
            sends += 1
            hedged += bool(obj.get("hedged"))
            failed += not obj.get("ok")
        elif obj.get("type") == "PeerState":
            states.append(str(obj.get("state")))
    return {"sends": sends, "hedged": hedged, "failed_sends": failed, "peer_states": states}


def latency(lab: reallab.RealLab, workdir: Path, transport: str, n: int) -> dict[str, Any]:
    orch, oracle, log = _start(lab, workdir, transport)
    try:
        result = measure_latency(log, workdir / "orch" / "orchestrator.db", workdir / "oracle" / "oracle.db",
                                 [orch, oracle], n, RATE, f"real {transport}")
        time.sleep(0.5)
    finally:
        oracle.stop()
        orch.stop()
    return {"transport": transport, **result, "accounting": _accounting(workdir), "sender": _stats(workdir)}


def burst(lab: reallab.RealLab, workdir: Path, transport: str, n: int) -> dict[str, Any]:
    """``n`` lines appended in one write → all stored (after a short warm-up through the whole path)."""
    orch, oracle, log = _start(lab, workdir, transport)
    orch_db = workdir / "orch" / "orchestrator.db"
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            _warm_up(fd, 120_000, 5, orch_db, [orch, oracle])
            start = time.time()
            _append(fd, 0, n)
            done = wait_until(lambda: count_events(orch_db) >= 5 + n, 60 + n / 500, f"burst of {n} ({transport})",
                              [orch, oracle], poll=0.02)
        finally:
            os.close(fd)
        time.sleep(0.5)
    finally:
        oracle.stop()
        orch.stop()
    secs = done - start
    return {"transport": transport, "events": n, "seconds": secs, "events_per_s": n / secs,
            "accounting": _accounting(workdir), "sender": _stats(workdir),
            "oracle_cpu_s": oracle.cpu_s, "orchestrator_cpu_s": orch.cpu_s}


def outage(lab: reallab.RealLab, workdir: Path, transport: str, n: int = 400, rate: float = RATE) -> dict[str, Any]:
    """Lines at ``rate``/s while the orchestrator's daemon is killed and started again a third of the way in: every
    event must still be stored exactly once, none ``unconfirmed``; also how long the peer looked stalled/unreachable."""
    orch, oracle, log = _start(lab, workdir, transport)
    orch_db = workdir / "orch" / "orchestrator.db"
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            _warm_up(fd, 125_000, 5, orch_db, [orch, oracle])
            start = time.time()
            restarted = 0.0
            for i in range(n):
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                _append(fd, i, 1)
                if i == n // 3:
                    restarted = lab.restart_daemon(ORCH, hard=True)
        finally:
            os.close(fd)
        done = wait_until(lambda: count_events(orch_db) >= 5 + n, 120, f"all {n} events after the restart",
                          [orch, oracle], poll=0.1)
        time.sleep(0.5)
    finally:
        oracle.stop()
        orch.stop()
    return {"transport": transport, "events": n, "daemon_back_s": restarted, "seconds_until_all_stored": done - start,
            "accounting": _accounting(workdir), "sender": _stats(workdir)}


def seed_way(lab: reallab.RealLab, workdir: Path, n: int) -> dict[str, Any]:
    """The seed: ``pilotctl connect <orch> 1000`` per event, a bare seed message each, to a ``pilotctl recv`` loop."""
    orch, oracle, _log = _start(lab, workdir, "stream", backend="recv")
    oracle.stop()  # only the orchestrator is needed; pilotctl is run by hand as the seed does
    node = lab[ORACLE]
    times: list[float] = []
    failed = 0
    try:
        wait_until(lambda: "recv" in (workdir / "orch.out.err").read_text(errors="replace"), 30,
                   "the recv loop", [orch])
        start = time.perf_counter()
        for i in range(n):
            msg = f'{{"source_ip": "{burst_ip(60_000 + i)}", "anomaly": "brute_force_ssh", "severity": "critical"}}'
            t0 = time.perf_counter()
            proc = subprocess.run([str(node.pilotctl_path), "--json", "connect", ORCH, "1000", "--timeout", "5s"],
                                  input=msg.encode(), env=node.full_env(), capture_output=True, timeout=30,
                                  check=False)
            if proc.returncode == 0:
                times.append(time.perf_counter() - t0)
            else:
                failed += 1
        secs = time.perf_counter() - start
        orch_db = workdir / "orch" / "orchestrator.db"
        stored = count_events(orch_db)
    finally:
        orch.stop()
    times.sort()
    return {"events": n, "ok": len(times), "failed": failed, "stored": stored, "seconds": secs,
            "events_per_s": len(times) / secs if secs else 0.0,
            "connect_s_p50": times[len(times) // 2] if times else None}


LABS = (("default", ()), ("syn-whitelist", ("-syn-whitelist", "1,2")))
"""Each run twice: daemons as installed, and with the orchestrator's daemon exempting its oracle from the SYN rate
limit (``-syn-whitelist``; the lab's two nodes are ids 1 and 2), which README's "On real machines" recommends."""


def run(ctx: Ctx) -> dict[str, Any]:
    reason = reallab.unavailable()
    if reason:
        print(f"real: skipped — {reason}")
        return {"skipped": reason}
    n_lat = ctx.size(400, 40)
    n_burst = ctx.size(10_000, 500)
    n_seed = ctx.size(20, 3)
    work = Path(tempfile.mkdtemp(prefix="pilot-bench-real-"))
    out: dict[str, Any] = {}
    try:
        for label, args in LABS:
            with reallab.RealLab(work / label / "lab", nodes=[ORACLE, ORCH], trust=[(ORACLE, ORCH)],
                                 daemon_args=args) as lab:
                print(f"real [{label}]: lab up in {lab.timings.get('up', 0):.1f} s", flush=True)
                for transport in ("stream", "message"):
                    print(f"real [{label}]: latency, {n_lat} events at {RATE:g} lines/s, --transport {transport} ...",
                          flush=True)
                    out[f"{label}:latency_{transport}"] = latency(lab, work / label / f"lat-{transport}", transport,
                                                                  n_lat)
                for transport in ("stream", "message"):
                    print(f"real [{label}]: burst of {n_burst:,} lines, --transport {transport} ...", flush=True)
                    out[f"{label}:burst_{transport}"] = burst(lab, work / label / f"burst-{transport}", transport,
                                                              n_burst)
                if label == "default":
                    print(f"real [{label}]: the seed's way, {n_seed} connects to a pilotctl recv loop ...", flush=True)
                    out["seed"] = seed_way(lab, work / label / "seed", n_seed)
                else:
                    for transport in ("stream", "message"):
                        print(f"real [{label}]: outage: the orchestrator's daemon killed and restarted while "
                              f"{n_lat} lines arrive, --transport {transport} ...", flush=True)
                        out[f"outage_{transport}"] = outage(lab, work / label / f"outage-{transport}", transport,
                                                            n_lat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(out)
    write_result(ctx, "real", out)
    return out


def _report(out: dict[str, Any]) -> None:
    seed = out["seed"]
    rows = []
    for label, _args in LABS:
        for transport in ("stream", "message"):
            r = out[f"{label}:latency_{transport}"]
            lat, acc = r["latency_s"], r["accounting"]
            rows.append([f"{label}, --transport {transport}", fnum(r["events"]), fms(lat["p50"]), fms(lat["p95"]),
                         fms(lat["p99"]), fms(lat["max"]), f"{acc['distinct_stored']}/{acc['outbox_rows']}",
                         str(acc["stored"] - acc["distinct_stored"]), str(acc["unconfirmed"]),
                         str(r["sender"]["sends"])])
    rows.append(["seed: connect per event → pilotctl recv", fnum(seed["ok"]), fms(seed["connect_s_p50"]), "-", "-",
                 "-", f"{seed['stored']}/{seed['events']}", "-", "-", fnum(seed["ok"] + seed["failed"])])
    print_table(f"real pilot-daemon 1.18: line appended → stored ({RATE:g} lines/s)",
                ["daemons, path", "events", "p50", "p95", "p99", "max", "stored/sent", "dups", "unconfirmed", "sends"],
                rows,
                ["bars: stream p50 ≤ 20 ms, p99 ≤ 80 ms; message p50 ≤ 50 ms, p99 ≤ 150 ms",
                 "syn-whitelist: the orchestrator's daemon runs with -syn-whitelist <oracle id> (README)"])
    rows = []
    for label, _args in LABS:
        for transport in ("stream", "message"):
            r = out[f"{label}:burst_{transport}"]
            acc = r["accounting"]
            rows.append([f"{label}, --transport {transport}", fnum(r["events"]), f"{r['seconds']:.2f}",
                         fnum(r["events_per_s"]), f"{acc['distinct_stored']}/{acc['outbox_rows']}",
                         str(acc["stored"] - acc["distinct_stored"]), str(acc["unconfirmed"]),
                         str(r["sender"]["sends"])])
    rows.append(["seed: connect per event → pilotctl recv", fnum(seed["ok"]), f"{seed['seconds']:.2f}",
                 fnum(seed["events_per_s"], 2), f"{seed['stored']}/{seed['events']}", "-", "-",
                 fnum(seed["ok"] + seed["failed"])])
    best = max(out[f"{label}:burst_stream"]["events_per_s"] for label, _ in LABS)
    print_table("real pilot-daemon 1.18: burst appended at once → all stored",
                ["daemons, path", "events", "seconds", "events/s", "stored/sent", "dups", "unconfirmed", "sends"], rows,
                ["bars: stream ≥ 10,000 events/s, message ≥ 3,000 events/s; "
                 f"stream vs seed: {fx(ratio(best, seed['events_per_s'] or None), 0)}"])
    rows = []
    for transport in ("stream", "message"):
        r = out[f"outage_{transport}"]
        acc = r["accounting"]
        rows.append([f"--transport {transport}", fnum(r["events"]), f"{r['daemon_back_s']:.1f}",
                     f"{r['seconds_until_all_stored']:.1f}", f"{acc['distinct_stored']}/{acc['outbox_rows']}",
                     str(acc["stored"] - acc["distinct_stored"]), str(acc["unconfirmed"]),
                     str(r["sender"]["failed_sends"]), " → ".join(r["sender"]["peer_states"])[:60]])
    print_table(f"real pilot-daemon 1.18: the orchestrator's daemon killed and restarted ({RATE:g} lines/s)",
                ["path", "events", "daemon back (s)", "all stored (s)", "stored/sent", "dups", "unconfirmed",
                 "failed sends", "peer states"], rows)
    d, w = "default", "syn-whitelist"
    out["headline"] = [
        headline_row(
            "real 1.18 daemons: latency p50 / p99, line appended → stored at 40 lines/s (stream; message)",
            f"{fms(out[f'{w}:latency_stream']['latency_s']['p50'])} / "
            f"{fms(out[f'{w}:latency_stream']['latency_s']['p99'])}; "
            f"{fms(out[f'{w}:latency_message']['latency_s']['p50'])} / "
            f"{fms(out[f'{w}:latency_message']['latency_s']['p99'])} (-syn-whitelist); stream "
            f"{fms(out[f'{d}:latency_stream']['latency_s']['p50'])} / "
            f"{fms(out[f'{d}:latency_stream']['latency_s']['p99'])} (default daemons)",
            f"{fms(seed['connect_s_p50'])} per event (seed: connect → pilotctl recv)", "-"),
        headline_row(
            "real 1.18 daemons: 10,000 lines at once → all stored, events/s (stream; message)",
            f"{fnum(out[f'{w}:burst_stream']['events_per_s'])}; {fnum(out[f'{w}:burst_message']['events_per_s'])}",
            f"{fnum(seed['events_per_s'], 2)} (seed)", fx(ratio(best, seed["events_per_s"] or None), 0)),
    ]
