"""``pilot-tui scan FILE… [--rules FILE] [--json] [--allow CIDR…]``: what the oracle would detect in these files.

Like ``fail2ban-regex``: lines read, lines matched per rule and pattern, the busiest source addresses and the
events that would fire — as a Rich summary, or one JSON document with ``--json``. Everything shown that came from a
log (user names, evidence) is attacker-controlled: it is put in ``rich.text.Text`` objects (never parsed as markup)
after :func:`pilot_tui.model.printable` has defused control characters.

Exit status: 0 after a scan (whether or not anything was found), 2 for bad input (missing or unreadable file, bad
rules file, bad allowlist entry) with one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import TextIO

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pilot_tui.model import printable

from .addr import AddressError
from .chunkscan import ScanReport, scan_files
from .engine import Detector
from .rules import RuleError, RuleSet, load_rules

MAX_EVENTS_SHOWN = 25
TOP_IPS = 15

_SEVERITY_STYLE = {
    "info": "dim",
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def run(args: argparse.Namespace) -> int:
    """Entry point of the ``scan`` subcommand; returns the exit status (see the module doc)."""
    files: list[str] = list(getattr(args, "files", []) or [])
    for path in files:
        problem = _unreadable(path)
        if problem:
            print(f"pilot-tui scan: {path}: {problem}", file=sys.stderr)
            return 2
    if not files:
        print("pilot-tui scan: no FILE given", file=sys.stderr)
        return 2
    try:
        rules = load_rules(rules_file=getattr(args, "rules", None))
        detector = Detector(
            rules,
            allowlist=list(getattr(args, "allow", None) or []),
            sensor=getattr(args, "sensor", None),
            native=True,
        )
    except (RuleError, AddressError, ValueError) as exc:
        print(f"pilot-tui scan: {exc}", file=sys.stderr)
        return 2
    try:
        report = scan_files(files, detector)
    except (OSError, EOFError) as exc:  # a truncated .gz raises EOFError
        print(f"pilot-tui scan: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(top=TOP_IPS), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        render(report, rules, sys.stdout)
    return 0


def _unreadable(path: str) -> str | None:
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "is a directory"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def render(report: ScanReport, rules: RuleSet, out: TextIO) -> None:
    """Print the human summary of ``report`` to ``out``."""
    console = Console(file=out, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a pipe or file gets Rich's 80 columns: too narrow for IPv6 and timestamps
        console.width = max(console.width, 132)
    mb = report.bytes / 1e6
    rate = report.lines_per_second
    head = Text()
    head.append("Scanned ", style="bold")
    head.append(f"{len(report.files)} file(s): {report.lines:,} lines, {mb:,.1f} MB in {report.seconds:.2f}s")
    head.append(f"  ({rate:,.0f} lines/s)", style="dim")
    console.print(head)
    for f in report.files:
        console.print(Text(f"  {printable(f.path)}: {f.lines:,} lines", style="dim"))
    engine = "C hot path (PCRE2)" if report.engine == "c" else f"pure Python ({report.engine.partition(': ')[2]})"
    console.print(Text(f"  engine: {printable(engine)}", style="dim"))
    console.print(
        Text(
            f"Matched lines: {report.matched_lines:,}   distinct sources: {len(report.ip_hits):,}   "
            f"allowlisted hits: {report.allowlisted:,}   unparsed addresses: {report.bad_ip:,}"
        )
    )

    events_by_rule = Counter(e.rule for e in report.events)
    table = Table(title="Rules", title_justify="left")
    for col, justify in (
        ("rule", "left"),
        ("anomaly", "left"),
        ("lines matched", "right"),
        ("events", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for rule in rules.rules:
        hits = report.rule_hits.get(rule.name, 0)
        style = "" if hits else "dim"
        table.add_row(
            Text(rule.name, style=style),
            Text(rule.anomaly, style=style),
            Text(f"{hits:,}", style=style),
            Text(f"{events_by_rule.get(rule.name, 0):,}", style=style),
        )
    console.print(table)

    patterns = Table(title="Patterns", title_justify="left")
    patterns.add_column("filter/pattern")
    patterns.add_column("lines", justify="right")
    for name, hits in report.pattern_hits.items():
        if hits:
            patterns.add_row(Text(name), Text(f"{hits:,}"))
    if patterns.row_count:
        console.print(patterns)

    if report.ip_hits:
        anomalies: dict[str, set[str]] = {}
        events_by_ip = Counter(e.source_ip for e in report.events)
        for e in report.events:
            anomalies.setdefault(e.source_ip, set()).add(e.anomaly)
        ips = Table(title=f"Top {TOP_IPS} source addresses", title_justify="left")
        for col, justify in (
            ("source", "left"),
            ("hits", "right"),
            ("events", "right"),
            ("anomalies", "left"),
        ):
            ips.add_column(col, justify=justify, no_wrap=col != "anomalies")  # type: ignore[arg-type]
        for ip, hits in report.ip_hits.most_common(TOP_IPS):
            ips.add_row(
                Text(ip),
                Text(f"{hits:,}"),
                Text(f"{events_by_ip.get(ip, 0):,}"),
                Text(", ".join(sorted(anomalies.get(ip, ())))),
            )
        console.print(ips)

    if not report.events:
        console.print(Text("No events would fire.", style="green"))
        return
    events = Table(title=f"Events that would fire: {len(report.events):,}", title_justify="left")
    for col in ("time", "source", "anomaly", "severity", "count", "user", "rule"):
        events.add_column(col, justify="right" if col == "count" else "left", no_wrap=col != "user")
    for e in report.events[:MAX_EVENTS_SHOWN]:
        events.add_row(
            Text((e.ts or "")[:19].replace("T", " ")),
            Text(e.source_ip),
            Text(e.anomaly),
            Text(e.severity, style=_SEVERITY_STYLE.get(e.severity, "")),
            Text(str(e.count or "")),
            Text(printable(e.user or "")[:32]),
            Text(e.rule or ""),
        )
    console.print(events)
    if len(report.events) > MAX_EVENTS_SHOWN:
        console.print(
            Text(f"… and {len(report.events) - MAX_EVENTS_SHOWN:,} more (use --json for all)", style="dim")
        )
