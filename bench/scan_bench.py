#!/usr/bin/env python3
"""Scan throughput: pilot-tui's chunk scanner against ``grep -cE`` and ``fail2ban-regex`` on one generated auth.log.

Usage: ``python bench/scan_bench.py [--lines N] [--seed S] [--keep DIR] [--no-fail2ban] [--no-quiet]``

Generates the file with :mod:`pilot_tui.sim.loggen`, then times, on the same file, in one run:

* the engine in-process (``scan_files`` with all built-in packs: windows, events and all; best of
  :data:`ENGINE_RUNS` runs);
* the CLI as a subprocess (``pilot-tui scan --json FILE``; interpreter start-up included);
* ``grep -cE`` with an ERE for the same sshd lines, in the C locale and in the session's locale (GNU grep's
  multibyte matching is far slower under UTF-8);
* ``grep -cP`` with our own sshd filter regex (PCRE2 with JIT): what matching alone costs in a native engine;
* ``fail2ban-regex -o ip FILE sshd`` when fail2ban is installed (else a skip line), and compares the set of
  addresses fail2ban's sshd filter reports with the addresses our sshd rules counted.

Then it prints the issue's bars side by side — in-process lines/s and the command's speed as a multiple of
fail2ban-regex's, on both files — with the figures of the C engine that was removed (README, Measured, 2026-11-25)
beside them, and whether each bar is met.

The generated file is an attack-heavy auth.log: about half of its lines are sshd failures that our rules count
(an internet-facing server under brute force looks like that). A quiet server's auth.log is mostly CRON, sessions
and sudo, and what dominates our time changes with the share of matching lines (regex speed vs per-match work),
so the same comparisons are repeated on a second, *quiet* file of the same length (``--no-quiet`` skips it): one
line in ten comes from the same generator (a shorter run, same seed), the other nine are benign lines from
:mod:`pilot_tui.sim.loggen_formats` stamped with the time of the attack line they follow — 5 to 10% of its lines
match, depending on what the sshd patterns read. The generator itself is untouched.

Prints a table per file (seconds, lines/s, MB/s, our speed as a multiple of each) and writes
``bench/results/scan.json`` (the quiet file's figures under ``quiet``).
``python -m bench scan [--quick]`` runs the same through :func:`run` (part of ``python -m bench all``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Ctx, headline_row, load_avg, machine, now_iso  # noqa: E402
from pilot_tui.detect import Detector, load_rules, scan_files  # noqa: E402
from pilot_tui.sim.loggen import generate  # noqa: E402
from pilot_tui.sim.loggen_formats import Clock, cron, ssh_login, ssh_logout, sudo_ok  # noqa: E402

QUIET_EVERY = 10
"""In the quiet file, one line in this many comes from the attack-heavy generator."""

ENGINE_RUNS = 3
"""The in-process engine is timed this many times on each file (best kept): a busy machine skews single runs."""

BARS = {
    "attack": {"in_process_lines_per_s": 2_000_000, "command_over_fail2ban": 25.0},
    "quiet": {"in_process_lines_per_s": 5_000_000, "command_over_fail2ban": 50.0},
}
"""The targets of issue 11 (one detection engine, in Python), per file."""

PREVIOUS_C = {
    "attack": {"in_process_lines_per_s": 4_837_302, "command_lines_per_s": 1_772_169, "command_over_fail2ban": 44.2},
    "quiet": {"in_process_lines_per_s": 13_049_472, "command_lines_per_s": 3_995_906, "command_over_fail2ban": 75.1},
}
"""The removed C hot path's figures (README, Measured, 2026-11-25, same generator and machine kind)."""

# The lines our sshd rules count (failed password, invalid user, pam failure with rhost, max auth, preauth invalid)
GREP_SSHD = (
    r"sshd(-session)?\[[0-9]+\]: (message repeated [0-9]+ times: \[ ?)?((error|fatal): )?"
    r"(Failed (password|none|keyboard-interactive/pam) for .* from [0-9A-Fa-f:.]+ port [0-9]+"
    r"|(Invalid|Illegal) user .* from [0-9A-Fa-f:.]+"
    r"|pam_[a-z]+\(sshd:auth\): authentication failure;.* rhost=[0-9A-Fa-f:.]+"
    r"|maximum authentication attempts exceeded for .* from [0-9A-Fa-f:.]+"
    r"|(Connection closed by|Disconnected from|Connection reset by) invalid user .* [0-9A-Fa-f:.]+ port [0-9]+ \[preauth\])"
)


def timed(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    return time.perf_counter() - began, proc


def cli_argv(path: Path) -> tuple[list[str], str]:
    """``pilot-tui scan`` if the CLI has it wired, else the same ``scan_cmd.run`` through ``python -c``."""
    exe = Path(sys.executable).with_name("pilot-tui")
    if exe.exists():
        probe = subprocess.run([str(exe), "scan", "--help"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return [str(exe), "scan", "--json", str(path)], "pilot-tui scan --json"
    code = (
        "import argparse, sys; from pilot_tui.detect.scan_cmd import run; "
        "sys.exit(run(argparse.Namespace(files=sys.argv[1:], rules=None, json=True, allow=[])))"
    )
    return [sys.executable, "-c", code, str(path)], "python -c scan_cmd.run (CLI not wired yet)"


def run(ctx: Ctx) -> dict[str, object]:
    """The suite's entry (``python -m bench scan``): 1,000,000 lines, 20,000 under ``--quick``."""
    return measure(
        argparse.Namespace(lines=ctx.size(1_000_000, 20_000), seed=1, keep=None, no_fail2ban=False,
                           no_quiet=False, out=str(ctx.results_dir / "scan.json")),
        quick=ctx.quick,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="write the generated log here and keep it")
    parser.add_argument("--no-fail2ban", action="store_true", help="skip fail2ban-regex even if installed")
    parser.add_argument("--no-quiet", action="store_true", help="skip the second, quiet (5%% matching) file")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scan.json"))
    measure(parser.parse_args(argv))
    return 0


def write_quiet_log(path: Path, lines: int, seed: int) -> None:
    """A quiet server's auth.log of ``lines`` lines: see the module doc. Deterministic for a seed."""
    attack = path.with_name(path.name + ".attack")
    generate(attack, "auth", max(lines // QUIET_EVERY, 1), seed=seed)
    rng = random.Random(seed)
    clock = Clock(0.0)
    pool: list[str] = []  # benign lines without their 15-character syslog time
    for i in range(200):
        event = cron(clock, 5000 + i) if i % 4 else sudo_ok(clock, ("deploy", "alice", "bob")[i % 3], "/bin/ls")
        if i % 25 == 0:
            # sshd pids far above the generator's (which start below 50,000 and count up one per event): a shared
            # pid would glue a benign login to an attacker's lines in fail2ban's multi-line sshd filter
            pid = 3_000_000 + i
            event = ssh_login(clock, pid, "bob", "192.0.2.248", 40000 + i, i) + ssh_logout(
                clock, pid, "bob", "192.0.2.248", 40000 + i
            )
        pool += [line[15:] for line in event]
    written = 0
    with open(attack, encoding="utf-8") as src, open(path, "w", encoding="utf-8", newline="\n") as out:
        for line in src:
            out.write(line)
            written += 1
            for _ in range(QUIET_EVERY - 1):
                if written >= lines:
                    break
                out.write(line[:15] + rng.choice(pool))
                written += 1
            if written >= lines:
                break
    mtime = attack.stat().st_mtime
    os.utime(path, (mtime, mtime))  # scan places year-less syslog times relative to the file's mtime
    attack.unlink()


def measure(args: argparse.Namespace, quick: bool = False) -> dict[str, object]:
    """Generate the file(s), time every tool on them, print the tables, write ``args.out``; returns what was written."""

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pilot-scan-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "auth.log"
    t0 = time.perf_counter()
    generate(path, "auth", args.lines, seed=args.seed)
    size = path.stat().st_size
    print(
        f"generated {args.lines:,} auth.log lines ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.2f}s: {path}"
    )
    main = compare(path, args, "attack-heavy auth.log (generator's mix)")
    quiet = None
    if not getattr(args, "no_quiet", False):
        qpath = workdir / "auth-quiet.log"
        write_quiet_log(qpath, args.lines, args.seed)
        quiet = compare(qpath, args, f"quiet auth.log (1 line in {QUIET_EVERY} from the generator)")
    bars = _bars(main, quiet)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": "scan",
        "date": now_iso(),
        "machine": machine(),
        "load_avg": load_avg(),
        "quick": quick,
        "lines": args.lines,
        "bytes": size,
        "seed": args.seed,
        "matched_lines": main["matched_lines"],
        "rows": main["rows"],
        "ip_sets": main["ip_sets"],
        "quiet": quiet,
        "bars": bars,
        "headline": _headline(main, quiet, args.lines, size),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return doc


def compare(path: Path, args: argparse.Namespace, title: str) -> dict[str, object]:
    """Time our engine, the CLI, grep (two locales) and fail2ban-regex on ``path``; print and return the rows."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    path.read_bytes()  # warm the page cache so every tool reads from memory

    rows: list[dict[str, object]] = []

    def add(tool: str, seconds: float | None, note: str = "") -> None:
        rows.append(
            {
                "tool": tool,
                "seconds": seconds,
                "note": note,
                "lines_per_s": lines / seconds if seconds else None,
                "mb_per_s": size / 1e6 / seconds if seconds else None,
            }
        )

    rules = load_rules()
    reports = [scan_files([path], Detector(rules)) for _ in range(ENGINE_RUNS)]
    report = min(reports, key=lambda r: r.seconds)
    add(
        "pilot-tui engine (in-process)",
        report.seconds,
        f"best of {ENGINE_RUNS}; {report.matched_lines:,} lines matched, {len(report.events):,} events",
    )
    ours_ips = set(report.ip_hits)

    argv_cli, label = cli_argv(path)
    secs, proc = timed(argv_cli)
    add(
        f"pilot-tui CLI ({label})",
        secs if proc.returncode == 0 else None,
        "includes interpreter start-up" if proc.returncode == 0 else f"failed: {proc.stderr.strip()[:80]}",
    )

    grep = shutil.which("grep")
    grep_c = None
    if grep:
        for locale in ("C", os.environ.get("LC_ALL") or os.environ.get("LANG") or "C.UTF-8"):
            env = dict(os.environ, LC_ALL=locale)
            secs, proc = timed([grep, "-cE", GREP_SSHD, str(path)], env)
            add(f"grep -cE (LC_ALL={locale})", secs, f"{proc.stdout.strip()} lines matched")
            if locale == "C":
                grep_c = secs
        # Our own sshd filter regex, unchanged, under PCRE2 with JIT: what matching alone costs in a native engine
        # (the same match count as ours shows the regex means the same there).
        sshd = next((cf for cf in Detector(rules).filters if getattr(cf, "name", "") == "sshd"), None)
        if sshd is not None:
            secs, proc = timed([grep, "-cP", sshd.rx.pattern, str(path)], dict(os.environ, LC_ALL="C"))
            if proc.returncode in (0, 1):
                add("grep -cP, our sshd filter regex (PCRE2 JIT)", secs, f"{proc.stdout.strip()} lines matched")
            else:
                print(f"grep -P: skipped ({proc.stderr.strip()[:80] or 'no PCRE support'})")
    f2b = shutil.which("fail2ban-regex")
    f2b_ips: set[str] | None = None
    if f2b and not args.no_fail2ban:
        secs, proc = timed([f2b, "-o", "ip", str(path), "sshd"])
        f2b_ips = {x.strip() for x in proc.stdout.splitlines() if x.strip()}
        add(
            "fail2ban-regex -o ip FILE sshd",
            secs if proc.returncode == 0 else None,
            f"{len(f2b_ips):,} distinct addresses",
        )
    else:
        print("fail2ban-regex: skipped (" + ("--no-fail2ban" if f2b else "not installed") + ")")

    ours = rows[0]["seconds"]
    print(f"\n== {title}: {lines:,} lines, {size / 1e6:.1f} MB, {report.matched_lines / lines:.1%} of lines match")
    print(f"{'tool':<52} {'seconds':>8} {'lines/s':>12} {'MB/s':>8} {'ours is':>9}  note")
    for row in rows:
        s = row["seconds"]
        ratio = f"{s / ours:.2f}x" if s and ours else "-"  # type: ignore[operator]
        lps = f"{row['lines_per_s']:,.0f}" if s else "-"
        mbs = f"{row['mb_per_s']:.1f}" if s else "-"
        secs_txt = f"{s:.3f}" if s else "-"
        print(f"{row['tool']:<52} {secs_txt:>8} {lps:>12} {mbs:>8} {ratio:>9}  {row['note']}")
        row["ours_speedup"] = s / ours if s and ours else None  # type: ignore[operator]
    same = None
    if f2b_ips is not None:
        same = f2b_ips == ours_ips
        print(
            f"offending addresses: fail2ban {len(f2b_ips):,}, pilot-tui {len(ours_ips):,}, "
            f"identical: {same}"
        )
        if not same:
            print(
                f"  only fail2ban: {sorted(f2b_ips - ours_ips)[:10]}  only pilot-tui: {sorted(ours_ips - f2b_ips)[:10]}"
            )
    if grep_c:
        print(f"vs grep (C locale): pilot-tui takes {ours / grep_c:.2f}x grep's time")  # type: ignore[operator]
    return {
        "file": title,
        "lines": lines,
        "bytes": size,
        "matched_lines": report.matched_lines,
        "events": len(report.events),
        "rows": rows,
        "ip_sets": None
        if f2b_ips is None
        else {"fail2ban": len(f2b_ips), "pilot_tui": len(ours_ips), "identical": same},
    }


def _headline(
    main: dict[str, object], quiet: dict[str, object] | None, lines: int, size: int
) -> list[dict[str, str]]:
    """README rows: our engine against fail2ban-regex (when it ran) and grep in the C locale, on each file."""
    out = []
    for doc, what in (
        (main, f"`pilot-tui scan`, {lines:,}-line auth.log ({size / 1e6:.0f} MB, attack-heavy), in-process engine"),
        (quiet, f"`pilot-tui scan`, {lines:,}-line quiet auth.log (~{_share(quiet)} of lines match), in-process engine"),
    ):
        if doc is None:
            continue
        rows: list[dict[str, object]] = doc["rows"]  # type: ignore[assignment]
        ours = rows[0]
        by_tool = {str(r["tool"]): r for r in rows}
        f2b = by_tool.get("fail2ban-regex -o ip FILE sshd")
        grep_c = by_tool.get("grep -cE (LC_ALL=C)")
        mine = f"{ours['lines_per_s']:,.0f} lines/s, {ours['mb_per_s']:.1f} MB/s"  # type: ignore[str-format]
        same = (doc["ip_sets"] or {}).get("identical")  # type: ignore[union-attr]
        if f2b and f2b["seconds"]:
            ident = {True: "same offending IPs", False: "offending IPs DIFFER", None: "IPs not compared"}[same]
            out.append(headline_row(what, mine, f"fail2ban-regex (sshd): {f2b['lines_per_s']:,.0f} lines/s",
                                    f"{f2b['ours_speedup']:.1f}x faster; {ident}"))
        else:
            out.append(headline_row(what, mine, "fail2ban-regex: not installed (skipped)", "-"))
        if grep_c and grep_c["seconds"]:
            ratio = float(grep_c["ours_speedup"])  # type: ignore[arg-type]
            out.append(headline_row(f"{what.split(', in-process')[0]} vs `grep -cE` (C locale, matching only)", mine,
                                    f"grep -cE: {grep_c['lines_per_s']:,.0f} lines/s",
                                    f"pilot-tui {ratio:.1f}x faster" if ratio >= 1 else f"grep {1 / ratio:.1f}x faster"))
        cli = next((r for r in rows if str(r["tool"]).startswith("pilot-tui CLI")), None)
        if cli and cli["seconds"] and f2b and f2b["seconds"]:
            out.append(headline_row(f"{what.split(', in-process')[0]}, `pilot-tui scan --json` as a command "
                                    "(interpreter start-up and JSON output included)",
                                    f"{cli['lines_per_s']:,.0f} lines/s",
                                    f"fail2ban-regex (sshd): {f2b['lines_per_s']:,.0f} lines/s",
                                    f"{float(cli['lines_per_s']) / float(f2b['lines_per_s']):.1f}x faster"))
    return out


def _share(doc: dict[str, object] | None) -> str:
    """The share of a file's lines that match, as the headline names the quiet file."""
    if not doc or not doc.get("lines"):
        return "?"
    return f"{float(doc['matched_lines']) / float(doc['lines']):.0%}"  # type: ignore[arg-type]


def _bars(main: dict[str, object], quiet: dict[str, object] | None) -> dict[str, object]:
    """Print and return the issue's bars on both files, beside the removed C engine's figures."""
    out: dict[str, object] = {}
    print("\n== scan bars (issue 11): pure Python engine now, C hot path before (README, 2026-11-25)")
    print(f"{'measure':<52} {'now':>12} {'bar':>12} {'met':>4} {'C before':>12}")
    for name, doc in (("attack", main), ("quiet", quiet)):
        if doc is None:
            continue
        rows = {str(r["tool"]): r for r in doc["rows"]}  # type: ignore[attr-defined]
        engine = rows["pilot-tui engine (in-process)"]
        cli = next((r for t, r in rows.items() if t.startswith("pilot-tui CLI")), None)
        f2b = rows.get("fail2ban-regex -o ip FILE sshd")
        lps = float(engine["lines_per_s"] or 0)  # type: ignore[arg-type]
        ratio = None
        if cli and cli["lines_per_s"] and f2b and f2b["lines_per_s"]:
            ratio = float(cli["lines_per_s"]) / float(f2b["lines_per_s"])  # type: ignore[arg-type]
        bar, before = BARS[name], PREVIOUS_C[name]
        entry = {
            "in_process_lines_per_s": round(lps),
            "in_process_bar": bar["in_process_lines_per_s"],
            "in_process_met": lps >= bar["in_process_lines_per_s"],
            "command_lines_per_s": round(float(cli["lines_per_s"])) if cli and cli["lines_per_s"] else None,
            "command_over_fail2ban": round(ratio, 1) if ratio is not None else None,
            "command_bar": bar["command_over_fail2ban"],
            "command_met": None if ratio is None else ratio >= bar["command_over_fail2ban"],
            "previous_c": before,
        }
        out[name] = entry
        label = "attack-heavy" if name == "attack" else "quiet"
        met = "yes" if entry["in_process_met"] else "NO"
        print(f"{label + ' in-process, lines/s':<52} {lps:>12,.0f} {bar['in_process_lines_per_s']:>12,} {met:>4} "
              f"{before['in_process_lines_per_s']:>12,}")
        if ratio is None:
            print(f"{label + ' command vs fail2ban-regex':<52} {'-':>12} {bar['command_over_fail2ban']:>11.0f}x "
                  f"{'-':>4} {before['command_over_fail2ban']:>11.1f}x  (fail2ban-regex not run)")
        else:
            met = "yes" if entry["command_met"] else "NO"
            print(f"{label + ' command vs fail2ban-regex':<52} {ratio:>11.1f}x {bar['command_over_fail2ban']:>11.0f}x "
                  f"{met:>4} {before['command_over_fail2ban']:>11.1f}x")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
