#!/usr/bin/env python3
"""The chaos run, from bench/: the scenario of ``tests/test_chaos.py``, with its figures printed.

Usage: ``python bench/chaos.py [--events N] [--seed S] [--drop-rate R] [--keep DIR] [--out FILE] [--quiet]``

An oracle and an orchestrator run as headless processes on pilot-sim; N log lines (one detection each) are written
while the log is rotated by rename and by copytruncate, the orchestrator is killed and restarted 5 times, the
oracle is SIGKILLed twice and the orchestrator's node drops a share of incoming connects. Then the checker of
``tests/chaos_harness.py`` verifies that every detection was stored and shown exactly once, nothing was
quarantined and the oracle's offsets point at the end of the current log.

Prints the timeline and the figures (wall time, send attempts and failures by code, acks, …), writes them to
``bench/results/chaos.json`` (or ``--out``) and exits 0 when the checker found nothing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from chaos_harness import ChaosConfig, check_chaos, run_chaos  # noqa: E402

from bench.common import load_avg, machine, now_iso  # noqa: E402
from pilot_tui.sim.cluster import SimCluster  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drop-rate", type=float, default=defaults.drop_rate)
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep every file (databases, logs, stdout)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    parser.add_argument("--quiet", action="store_true", help="no timeline while running")
    args = parser.parse_args(argv)

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pilot-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = ChaosConfig(events=args.events, chunk=max(10, args.events // 40), seed=args.seed,
                         drop_rate=args.drop_rate)
    cluster = SimCluster(workdir / "sim")
    try:
        result = run_chaos(cluster, workdir / "chaos", config, log=None if args.quiet else print)
        problems = check_chaos(result)
    finally:
        cluster.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    figures = {"bench": "chaos", "date": now_iso(), "machine": machine(), "load_avg": load_avg(),
               **result.figures, "problems": problems}
    print()
    for key, value in figures.items():
        if key not in ("timeline", "problems", "bench"):
            print(f"{key:>24}: {value}")
    print(f"{'verdict':>24}: {'exactly once — no problem found' if not problems else f'{len(problems)} problems'}")
    for problem in problems[:40]:
        print(f"  - {problem}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
