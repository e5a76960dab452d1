"""Smoke test of the benchmark suite: ``python -m bench all --quick`` prints every figure and writes valid JSON.

Tiny sizes (about 25 s on 2 cores); the figures themselves are not checked against targets here, only that each
bench measured something on both sides of its comparison and wrote it down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(150)


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_bench_all_quick(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--results-dir", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=140, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-4000:]}\n{proc.stderr[-4000:]}"

    # every table and figure is printed
    for title in ("== cold start", "== end-to-end latency", "== sustained delivery throughput",
                  "== orchestrator ingest", "== headline figures"):
        assert title in out, f"missing table {title!r}"
    assert "Textual imported by --help: no" in out
    assert "pilot-tui engine (in-process)" in out and "grep -cE" in out
    assert "fail2ban-regex -o ip FILE sshd" in out or "fail2ban-regex: skipped" in out
    for label in ("baseline: python -c pass", "baseline: --stream-backend recv", "seed's way",
                  "Sender batch_events=1", "Sender batched", "baseline: decode + EventStore.ingest"):
        assert label in out, f"missing row {label!r}"

    # every result is valid JSON with the date, the machine and a README row
    docs = {}
    for name in ("scan", "e2e", "throughput", "ingest", "startup"):
        doc = json.loads((results / f"{name}.json").read_text())
        assert doc["quick"] is True and doc["date"][:4].isdigit()
        assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu"] and doc["machine"]["python"]
        assert doc["headline"] and all(set(r) == {"measure", "pilot_tui", "baseline", "ratio"} for r in doc["headline"])
        docs[name] = doc

    scan = docs["scan"]
    assert _positive(scan["rows"][0]["lines_per_s"]) and _positive(scan["rows"][0]["mb_per_s"])
    if scan["ip_sets"] is not None:
        assert scan["ip_sets"]["identical"] is True

    e2e = docs["e2e"]
    for side in ("pilot_tui", "baseline_recv"):
        lat = e2e[side]["latency_s"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"], lat
    assert e2e["baseline_over_ours"]["p50"] > 1, "the replying receiver must beat the recv fallback"

    tput = docs["throughput"]
    for key in ("seed_connect_per_event", "sender_batch_1", "sender_batched", "oracle_burst"):
        assert _positive(tput[key]["events_per_s"]), key
    assert tput["batched_over_seed"] > 1

    ingest = docs["ingest"]
    assert ingest["network"]["stored"] == ingest["events"] == ingest["inprocess"]["events"]
    assert _positive(ingest["network"]["peak_rss_mb"]) and _positive(ingest["inprocess"]["events_per_s"])

    startup = docs["startup"]
    assert startup["imports"]["textual_imported"] is False
    assert _positive(startup["baseline_median_s"])

    table = (results / "README-table.md").read_text()
    assert table.count("\n| ") >= 6 and "| measure | pilot-tui | baseline | comparison |" in table
