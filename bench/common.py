"""What every bench shares: the run context (``--quick`` sizes, results folder), machine facts, tables, JSON
results, percentiles, and headless pilot-tui processes on pilot-sim nodes with their peak memory.

Each bench module exposes ``run(ctx: Ctx) -> dict`` and writes ``<results>/<name>.json`` through
:func:`write_result`. A result carries a ``headline`` list — rows of ``{"measure", "pilot_tui", "baseline",
"ratio"}`` already formatted as text — which :func:`readme_table` gathers into the markdown table for the README.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilot_tui.store.db import query_readonly

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
README_TABLE = "README-table.md"


@dataclass
class Ctx:
    """One bench run: how big (``quick``) and where results go."""

    quick: bool = False
    """Small sizes: for the smoke test and a fast look; figures are not meant to be quoted."""
    results_dir: Path = RESULTS_DIR
    """Where ``<name>.json`` and ``README-table.md`` are written."""

    def size(self, full: int, quick: int) -> int:
        """``quick`` under ``--quick``, else ``full``."""
        return quick if self.quick else full


# -- machine and date -------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``, else whatever ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """Facts about this machine that a figure depends on."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
    }


def load_avg() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine skews every figure here."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def busy_warning() -> str | None:
    """A warning line when the machine is already busy (1-minute load above a third of the cores)."""
    load = load_avg()
    cores = os.cpu_count() or 1
    if load and load[0] > cores / 3:
        return f"warning: load average {load[0]:.2f} on {cores} cores before the run; figures will be skewed"
    return None


def machine_line(m: Mapping[str, Any] | None = None) -> str:
    """``2 cores, AMD EPYC, CPython 3.11.7, Linux-6.1``."""
    m = m or machine()
    if not all(k in m for k in ("cores", "cpu", "python", "os")):
        return str(m.get("platform") or m)
    return f"{m['cores']} cores, {m['cpu']}, {m['python']}, {m['os']}"


def now_iso() -> str:
    """Local date and time to the second, with the UTC offset."""
    return _dt.datetime.now().astimezone().replace(microsecond=0).isoformat()


# -- numbers and tables -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when either is missing or ``b`` is zero."""
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def fx(value: float | None, digits: int = 1) -> str:
    """A ratio as ``12.3x`` (``-`` when unknown)."""
    return "-" if value is None else f"{value:,.{digits}f}x"


def fnum(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators (``-`` when unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def fms(seconds: float | None) -> str:
    """Seconds shown as milliseconds."""
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], notes: Iterable[str] = ()) -> None:
    """A plain-text table: first column left-aligned, the rest right-aligned; ``notes`` printed below."""
    body = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body if i < len(r)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=False)]
        return "  ".join(out).rstrip()

    print(f"\n== {title}")
    print(line(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in body:
        print(line(row + [""] * (len(headers) - len(row))))
    for note in notes:
        print(f"  {note}")
    sys.stdout.flush()


# -- results -----------------------------------------------------------------------------------------------------


def write_result(ctx: Ctx, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``<results>/<name>.json`` with the date, the machine and the size switch, then ``data``."""
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.results_dir / f"{name}.json"
    doc = {"bench": name, "date": now_iso(), "machine": machine(), "load_avg": load_avg(), "quick": ctx.quick, **data}
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    print(f"wrote {path}")
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def headline_row(measure: str, ours: str, baseline: str, ratio_text: str) -> dict[str, str]:
    """One README row: what, pilot-tui's figure, the baseline's figure (named), and the comparison."""
    return {"measure": measure, "pilot_tui": ours, "baseline": baseline, "ratio": ratio_text}


def ui_headline(doc: Mapping[str, Any]) -> dict[str, str] | None:
    """A README row from ``bench/ui_bench.py``'s JSON, which has none of its own (its comparison: the UI cost of a
    new event with 1,000 events stored vs with N). ``None`` when the JSON is not in the expected shape."""
    try:
        n = int(doc["events"])
        keys = doc["keypress"]
        big, small = doc[f"new_event_{n // 1000}k"], doc["new_event_1k"]
        return headline_row(
            f"UI at {n:,} stored events (headless Textual, 120×40)",
            f"keypress→render p95 {keys['p95_ms']:.1f} ms; new event {big['ui_p50_ms']:.2f} ms UI time (p50), "
            f"{big['ui_p95_ms']:.2f} ms (p95); peak RSS {doc['peak_rss_mb']:.0f} MB",
            f"new event with 1,000 stored: {small['ui_p50_ms']:.2f} ms (p50), {small['ui_p95_ms']:.2f} ms (p95)",
            f"{big['ui_p50_ms'] / small['ui_p50_ms']:.1f}x (targets: p95 ≤ 100 ms, ≤ 5 ms, ≤ 250 MB)",
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


README_ORDER = ("scan", "e2e", "throughput", "ingest", "startup", "ui")


def readme_table(results_dir: Path) -> str:
    """The markdown table of headline figures from every ``*.json`` in ``results_dir`` that has some."""
    docs = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if not doc.get("headline") and path.stem == "ui":  # written by ui_bench.py run on its own
            row = ui_headline(doc)
            doc = {**doc, "bench": "ui", "headline": [row] if row else []}
        if isinstance(doc.get("headline"), list) and doc["headline"]:
            docs.append(doc)
    order = {name: i for i, name in enumerate(README_ORDER)}
    docs.sort(key=lambda d: (order.get(str(d.get("bench")), 99), str(d.get("bench"))))
    if not docs:
        return ""
    dates = sorted({str(d.get("date", ""))[:10] for d in docs if d.get("date")})
    machines = {machine_line(d["machine"]) for d in docs
                if isinstance(d.get("machine"), dict) and "cores" in d["machine"]}
    quick = any(d.get("quick") for d in docs)
    out = [
        f"Measured {' to '.join([dates[0], dates[-1]] if len(dates) > 1 else dates)} on "
        f"{'; '.join(sorted(machines))} (`python -m bench all`{', --quick: sizes too small to quote' if quick else ''}).",
        "",
        "| measure | pilot-tui | baseline | comparison |",
        "|---|---|---|---|",
    ]
    for doc in docs:
        for row in doc["headline"]:
            if isinstance(row, dict):
                cells = [str(row.get(k, "")).replace("|", "\\|") for k in ("measure", "pilot_tui", "baseline", "ratio")]
                out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_readme_table(ctx: Ctx, show: bool = True) -> str:
    """Build :func:`readme_table` from the results folder, write ``README-table.md`` there, print it."""
    text = readme_table(ctx.results_dir)
    if not text:
        return ""
    path = ctx.results_dir / README_TABLE
    path.write_text(text)
    if show:
        print(f"\n== headline figures (for the README; also in {path})\n")
        print(text)
    return text


# -- pilot-sim and headless pilot-tui processes ------------------------------------------------------------------


def sim_binary() -> str:
    """The ``pilot-sim`` executable next to this interpreter (else on PATH): what ``PILOTCTL`` points at."""
    here = Path(sys.executable).with_name("pilot-sim")
    if here.exists():
        return str(here)
    found = shutil.which("pilot-sim")
    if not found:
        raise RuntimeError("pilot-sim not found: install the project (pip install -e .) into this interpreter")
    return found


def sim_process_s(runs: int = 10) -> float:
    """Median wall time of ``pilot-sim --json version``: what each emulated ``pilotctl`` call costs before it does
    anything (a Python start-up; the real, Go, pilotctl takes ~10-14 ms per call in all)."""
    argv = [sim_binary(), "--json", "version"]
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - began)
    return median(times)


def pilot_tui_script() -> str | None:
    """The ``pilot-tui`` console script next to this interpreter (else on PATH), or ``None``."""
    here = Path(sys.executable).with_name("pilot-tui")
    if here.exists():
        return str(here)
    return shutil.which("pilot-tui")


def vm_kb(pid: int | str, field: str) -> int | None:
    """A ``/proc/<pid>/status`` memory field in kB (``VmRSS`` now, ``VmHWM`` its peak), or ``None``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a running process has used so far (Linux ``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_kb_self() -> int:
    """This process's peak RSS: ``VmHWM`` on Linux, else ``ru_maxrss``.

    Why not ``ru_maxrss`` everywhere: Linux carries the parent's high-water mark into a child's ``ru_maxrss`` at
    ``exec`` (``setmax_mm_hiwater_rss`` of the old mm, which is the parent's under vfork), so a process started
    from a big bench process reports at least the bench's own peak. ``VmHWM`` belongs to the new image only.
    """
    import resource

    return vm_kb("self", "VmHWM") or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Headless:
    """A ``pilot-tui MODE --headless`` process running as a pilot-sim node (or a real lab node).

    stdout goes to ``out`` (the accepted events / send results); stderr to ``out`` + ``.err``. :meth:`stop` reads
    its peak RSS (``VmHWM``, see :func:`peak_rss_kb_self`) just before stopping it, and reaps it with ``wait4`` for
    its CPU time and ``ru_maxrss``.
    """

    def __init__(self, mode: str, args: Sequence[str], env: Mapping[str, str], out: Path,
                 pilotctl: str | None = None) -> None:
        """``pilotctl``: the binary it drives (default: pilot-sim; the real-daemon bench passes the wheel's)."""
        self.mode = mode
        self.out = out
        self.err = out.with_name(out.name + ".err")
        full_env = {**os.environ, **env, "PILOTCTL": pilotctl or sim_binary(), "PYTHONUNBUFFERED": "1"}
        self._stdout = out.open("ab")
        self._stderr = self.err.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pilot_tui", mode, "--headless", *args],
            env=full_env, stdout=self._stdout, stderr=self._stderr, stdin=subprocess.DEVNULL,
        )
        self.peak_rss_kb: int | None = None
        """Peak RSS of this process (``VmHWM`` read just before the stop; else ``ru_maxrss``), after :meth:`stop`."""
        self.ru_maxrss_kb: int | None = None
        """``ru_maxrss`` from ``wait4`` — on Linux at least the bench process's own peak (inherited at exec)."""
        self.cpu_s: float | None = None
        """User + system CPU seconds it used, known after :meth:`stop`."""
        self.returncode: int | None = None

    def alive(self) -> bool:
        return self.returncode is None and self.popen.poll() is None

    def check(self, what: str) -> None:
        """Raise if the process has already exited (with the end of its stderr)."""
        if not self.alive():
            raise RuntimeError(f"{what}: pilot-tui {self.mode} exited early ({self.popen.returncode}): {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.err.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to ``timeout`` (then SIGKILL); records exit status and peak RSS."""
        if self.returncode is not None:
            return self.returncode
        pid = self.popen.pid
        if self.popen.returncode is None:
            self.peak_rss_kb = vm_kb(pid, "VmHWM")
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            status = rusage = None
            while True:
                try:
                    wpid, status, rusage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if wpid == pid:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    _, status, rusage = os.wait4(pid, 0)
                    break
                time.sleep(0.05)
            if status is not None:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
            if rusage is not None:
                self.ru_maxrss_kb = int(rusage.ru_maxrss)  # kilobytes on Linux
                if self.peak_rss_kb is None:
                    self.peak_rss_kb = self.ru_maxrss_kb
                self.cpu_s = rusage.ru_utime + rusage.ru_stime
        self.returncode = self.popen.returncode if self.popen.returncode is not None else -1
        self._stdout.close()
        self._stderr.close()
        return self.returncode


def wait_until(cond: Any, timeout: float, what: str, procs: Sequence[Headless] = (), poll: float = 0.05) -> float:
    """Poll ``cond()`` until true; returns ``time.time()`` when it first was. Raises on timeout or a dead process."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return time.time()
        for proc in procs:
            proc.check(what)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def count_events(db: Path) -> int:
    rows = query_readonly(db, "SELECT COUNT(*) FROM events")
    return int(rows[0][0]) if rows else 0



