"""Cold start of ``pilot-tui --help``: ``python -m pilot_tui --help`` and the ``pilot-tui`` console script against
``python -c pass`` (the interpreter's own start-up), median of ≥ 10 runs each, target ≤ 0.3 s.

``python -m bench startup``. Also checks, in a subprocess, that ``--help`` imports neither Textual nor Rich (the UI
is imported only when a mode with a UI runs), and lists the slowest imports from ``-X importtime``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

from .common import Ctx, headline_row, median, pilot_tui_script, print_table, write_result

TARGET_S = 0.3

PROBE = r"""
import runpy, sys
sys.argv = ["pilot-tui", "--help"]
try:
    runpy.run_module("pilot_tui", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich", "sqlite3", "orjson", "watchdog"))
print("MODULES=" + ",".join(heavy), file=sys.stderr)
"""


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Wall time of ``runs`` sequential runs (one untimed warm-up first so the page cache is warm for all)."""
    subprocess.run(argv, capture_output=True, check=False)
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        out.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return out


def imported_modules() -> dict[str, Any]:
    """Which of Textual/Rich/sqlite3/orjson/watchdog ``pilot-tui --help`` imports (run in a fresh interpreter)."""
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=False)
    line = next((x for x in proc.stderr.splitlines() if x.startswith("MODULES=")), "MODULES=")
    mods = [m for m in line.split("=", 1)[1].split(",") if m]
    tops = sorted({m.split(".")[0] for m in mods})
    return {"heavy_top_level": tops, "textual_imported": "textual" in tops, "rich_imported": "rich" in tops}


def _importtime(args: list[str]) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, nesting, module) for each import of ``python -X importtime ARGS``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    return rows


def import_profile(script: str | None, top: int = 6) -> dict[str, Any]:
    """``python -X importtime -m pilot_tui --help``: total import time and the slowest modules (cumulative µs);
    the console script's imports are checked for Textual too."""
    rows = _importtime(["-m", "pilot_tui", "--help"])
    top_level = [r for r in rows if r[2] == 1]  # imported directly (not by another module)
    total_us = sum(r[1] for r in top_level)
    ours = [r for r in rows if r[3].startswith("pilot_tui")]
    slow = sorted(top_level, key=lambda r: -r[1])[:top]
    script_rows = _importtime([script, "--help"]) if script else []
    return {
        "modules": len(rows), "total_import_ms": total_us / 1000,
        "pilot_tui_self_ms": sum(r[0] for r in ours) / 1000,
        "slowest_top_level": [{"module": r[3], "cumulative_ms": r[1] / 1000} for r in slow],
        "textual_in_importtime": any(r[3].split(".")[0] == "textual" for r in rows + script_rows),
        "console_script_checked": bool(script_rows),
    }


def run(ctx: Ctx) -> dict[str, Any]:
    runs = ctx.size(15, 3)
    cases: list[tuple[str, list[str]]] = [
        ("baseline: python -c pass", [sys.executable, "-c", "pass"]),
        ("python -m pilot_tui --help", [sys.executable, "-m", "pilot_tui", "--help"]),
    ]
    script = pilot_tui_script()
    if script:
        cases.append(("pilot-tui --help (console script)", [script, "--help"]))
    else:
        print("pilot-tui console script: not found next to this interpreter or on PATH (skipped)")
    print(f"startup: {runs} runs of each of {len(cases)} commands ...", flush=True)
    results = {}
    for label, argv in cases:
        times = time_runs(argv, runs)
        results[label] = {"argv": argv, "runs": runs, "median_s": median(times), "min_s": min(times),
                          "max_s": max(times), "all_s": times}
    base = results[cases[0][0]]["median_s"]
    mods = imported_modules()
    prof = import_profile(script)
    mods["textual_imported"] = mods["textual_imported"] or prof["textual_in_importtime"]
    rows = []
    for label, r in results.items():
        over = r["median_s"] - base
        verdict = "" if label.startswith("baseline") else ("ok" if r["median_s"] <= TARGET_S else "OVER")
        rows.append([label, f"{r['median_s'] * 1000:.0f}", f"{r['min_s'] * 1000:.0f}", f"{r['max_s'] * 1000:.0f}",
                     "-" if label.startswith("baseline") else f"+{over * 1000:.0f}", f"{r['median_s'] / base:.1f}x",
                     verdict])
    slow = ", ".join(f"{s['module']} {s['cumulative_ms']:.0f} ms" for s in prof["slowest_top_level"])
    print_table(f"cold start, median of {runs} runs (target <= {TARGET_S} s)",
                ["command", "median ms", "min ms", "max ms", "over python", "vs python", "target"], rows,
                [f"Textual imported by --help: {'YES' if mods['textual_imported'] else 'no'}; Rich: "
                 f"{'YES' if mods['rich_imported'] else 'no'}; heavy modules loaded: "
                 f"{', '.join(mods['heavy_top_level']) or 'none'}",
                 f"-X importtime: {prof['modules']} modules, {prof['total_import_ms']:.0f} ms of imports; "
                 f"slowest: {slow}"])
    cmd = results["python -m pilot_tui --help"]
    script_r = results.get("pilot-tui --help (console script)")
    worst = max(r["median_s"] for label, r in results.items() if not label.startswith("baseline"))
    headline = [
        headline_row(
            f"`pilot-tui --help` cold start, median of {runs} (target ≤ {TARGET_S} s)",
            f"{cmd['median_s'] * 1000:.0f} ms (`python -m pilot_tui`)"
            + (f", {script_r['median_s'] * 1000:.0f} ms (console script)" if script_r else "")
            + f"; Textual imported: {'yes' if mods['textual_imported'] else 'no'}",
            f"{base * 1000:.0f} ms (`python -c pass`)",
            f"+{(cmd['median_s'] - base) * 1000:.0f} ms; {'within' if worst <= TARGET_S else 'OVER'} target",
        )
    ]
    result = {"target_s": TARGET_S, "runs": results, "baseline_median_s": base, "within_target": worst <= TARGET_S,
              "imports": mods, "import_profile": prof, "headline": headline}
    write_result(ctx, "startup", result)
    if mods["textual_imported"]:
        print("startup: FAIL — pilot-tui --help imported Textual")
    return result

