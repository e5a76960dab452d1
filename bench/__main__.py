"""``python -m bench all|scan|e2e|throughput|ingest|startup|idle|ui|demo [--quick] [--results-dir DIR]``

Runs the benchmarks, each against a baseline measured in the same run, prints their tables, writes
``<results>/<name>.json`` and, at the end, the markdown table of headline figures (``README-table.md``), built from
every result in the results folder.

``--quick`` uses tiny sizes (a smoke run, well under a minute; its figures are not for quoting) and by default writes
to ``bench/results/quick/`` so it never overwrites the figures of a full run.

``python -m bench lab [--check] [--quick] [--rendezvous PATH]``: real ``pilot-daemon`` nodes on a loopback network
namespace (``bench/lab.py``; needs root and a rendezvous binary from ``$PILOT_RENDEZVOUS``, else it says why and
skips). It has its own options, so it gets its arguments as they are, and it is not part of ``all``.
``python -m bench real [--quick]``: the headless oracle and orchestrator on that lab (latency, bursts, the seed's way
side by side; ``bench/real_bench.py``); not part of ``all`` either.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    RESULTS_DIR,
    ROOT,
    Ctx,
    busy_warning,
    machine,
    machine_line,
    now_iso,
    ui_headline,
    write_readme_table,
)


def _scan(ctx: Ctx) -> Any:
    from . import scan_bench

    return scan_bench.run(ctx)


def _e2e(ctx: Ctx) -> Any:
    from . import e2e_bench

    return e2e_bench.run_latency(ctx)


def _throughput(ctx: Ctx) -> Any:
    from . import e2e_bench

    return e2e_bench.run_throughput(ctx)


def _ingest(ctx: Ctx) -> Any:
    from . import ingest_bench

    return ingest_bench.run(ctx)


def _startup(ctx: Ctx) -> Any:
    from . import startup_bench

    return startup_bench.run(ctx)


def _idle(ctx: Ctx) -> Any:
    from . import idle_bench

    return idle_bench.run(ctx)


def _demo(ctx: Ctx) -> Any:
    from . import demo_bench

    return demo_bench.run(ctx)


def _real(ctx: Ctx) -> Any:
    from . import real_bench

    return real_bench.run(ctx)


UI_BENCH = ROOT / "bench" / "ui_bench.py"


def _defines_run(path: Path) -> bool:
    """Whether ``path`` has a top-level ``def run(ctx)`` (the suite's interface) — checked without importing it."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body)


def _ui(ctx: Ctx) -> Any:
    """``bench/ui_bench.py`` when present: through ``run(ctx)`` if it has one, else its command line in a
    subprocess (Textual stays out of this process); a README row is derived from its JSON."""
    if _defines_run(UI_BENCH):
        from . import ui_bench  # type: ignore[attr-defined]

        return ui_bench.run(ctx)
    out = ctx.results_dir / "ui.json"
    sizes = ["--events", "2000", "--presses", "8"] if ctx.quick else []
    argv = [sys.executable, str(UI_BENCH), "--out", str(out), *sizes]
    print(f"ui: {' '.join(argv[1:])}", flush=True)
    proc = subprocess.run(argv, cwd=str(ROOT), timeout=900, check=False)
    if not out.exists():
        raise RuntimeError(f"ui_bench.py exited {proc.returncode} without writing {out}")
    doc = json.loads(out.read_text())
    if isinstance(doc, dict):  # give it the suite's common fields when it lacks them
        doc.setdefault("bench", "ui")
        doc.setdefault("date", now_iso())
        doc.setdefault("quick", ctx.quick)
        doc["machine"] = {**(doc.get("machine") if isinstance(doc.get("machine"), dict) else {}), **machine()}
        row = ui_headline(doc)
        if row and "headline" not in doc:
            doc["headline"] = [row]
        out.write_text(json.dumps(doc, indent=2) + "\n")
    if proc.returncode != 0:
        print(f"ui: ui_bench.py exited {proc.returncode} (a target missed, or an error above)")
    return doc


BENCHES: dict[str, Callable[[Ctx], Any]] = {
    "scan": _scan,
    "e2e": _e2e,
    "throughput": _throughput,
    "ingest": _ingest,
    "startup": _startup,
    "idle": _idle,
    "ui": _ui,
    "real": _real,
    "demo": _demo,
}
ALL = ("startup", "idle", "ui", "e2e", "throughput", "ingest", "scan")
"""Order of ``all``: the benches that start measured processes come before the big in-process ones (scan, the
ingest payloads), because on Linux a child's ``ru_maxrss`` starts from this process's own peak (ui_bench reports
``ru_maxrss``)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lab"]:
        from . import lab

        return lab.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("which", choices=("all", *BENCHES), help="one bench, or all of them in turn")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run); results go to results/quick/")
    parser.add_argument("--results-dir", metavar="DIR", help="where to write the JSON results and README-table.md")
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir) if args.results_dir else (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    ctx = Ctx(quick=args.quick, results_dir=results_dir)
    names = [n for n in ALL if n != "ui" or UI_BENCH.exists()] if args.which == "all" else [args.which]
    if args.which == "all" and not UI_BENCH.exists():
        print("ui: skipped (bench/ui_bench.py not present)")
    print(f"pilot-tui benchmarks{' (--quick)' if ctx.quick else ''}: {', '.join(names)}; {machine_line()}; "
          f"results in {results_dir}", flush=True)
    warning = busy_warning()
    if warning:
        print(warning, flush=True)
    failed: list[str] = []
    began = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            BENCHES[name](ctx)
        except Exception:  # one broken bench must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            print(f"{name}: FAILED", flush=True)
        print(f"[{name} took {time.perf_counter() - t0:.1f}s]", flush=True)
    write_readme_table(ctx)
    print(f"done in {time.perf_counter() - began:.1f}s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
