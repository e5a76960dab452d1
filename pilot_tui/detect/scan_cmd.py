"""``pilot-tui scan FILE… [--rules FILE] [--allow CIDR…] [--json | --ips]``: what the oracle would detect in files.

Like ``fail2ban-regex``: lines read, lines matched per rule and pattern, the source addresses and the events that
would fire — as tables that fit an 80-column terminal, as one JSON document listing *every* source address
(``--json``), or as just the offending addresses, one a line, for a pipe (``--ips``). Everything shown that came
from a log (user names, evidence) is attacker-controlled: it is put in ``rich.text.Text`` objects (never parsed as
markup) after :func:`pilot_tui.model.printable` has defused control characters.

A file none of whose lines any rule reads is said to be in no format the rules know (an Apache *error* log, the old
``sshd(pam_unix)`` syslog format…), with the formats they do read, rather than a bare "nothing would fire".

Exit status, like grep's: 0 when an event would fire, 1 when none would, 2 for bad input (missing or unreadable
file, bad rules file, bad allowlist entry) with one line on stderr. A reader that goes away early (``| head``) ends
the output quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import orjson
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from pilot_tui.model import printable

from .addr import AddressError
from .chunkscan import ScanReport, scan_files
from .engine import Detector
from .rules import RuleError, RuleSet, load_rules
from .timeparse import iso_utc

MAX_EVENTS_SHOWN = 25
TOP_SOURCES = 15

EXIT_FIRED = 0
EXIT_NOTHING = 1
EXIT_ERROR = 2

PACK_FORMATS = {
    "sshd": "OpenSSH (sshd)",
    "sudo": "sudo",
    "web": "web access log",
    "portscan": "firewall log (UFW/netfilter)",
}
"""What each built-in pack reads, as an operator would name the log."""

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
            return EXIT_ERROR
    if not files:
        print("pilot-tui scan: no FILE given", file=sys.stderr)
        return EXIT_ERROR
    try:
        rules = load_rules(rules_file=getattr(args, "rules", None))
        detector = Detector(
            rules,
            allowlist=list(getattr(args, "allow", None) or []),
            sensor=getattr(args, "sensor", None),
        )
    except (RuleError, AddressError, ValueError) as exc:
        print(f"pilot-tui scan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = scan_files(files, detector)
    except (OSError, EOFError) as exc:  # a truncated .gz raises EOFError
        print(f"pilot-tui scan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    status = EXIT_FIRED if report.events else EXIT_NOTHING
    try:
        if getattr(args, "ips", False):
            for path in unread_files(report):
                print(f"pilot-tui scan: {path}: {_unread_note(rules)}", file=sys.stderr)
            sys.stdout.write("".join(ip + "\n" for ip in report.offending_ips()))
        elif getattr(args, "json", False):
            doc = report.to_dict()
            for entry in doc["files"]:
                entry["formats"] = file_formats(entry["filters"], rules)
            sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            render(report, rules, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    return status


def _reader_gone() -> None:
    """The reader of our output went away (``| head``): stop writing, and let the interpreter's last flush of
    stdout go nowhere instead of printing a BrokenPipeError traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _unreadable(path: str) -> str | None:
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "is a directory"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def file_formats(filters: dict[str, int], rules: RuleSet) -> list[str]:
    """The log formats a file was read as: the packs (or user rule files) whose filters matched its lines."""
    packs = {spec.name: spec.pack for spec in rules.filters}
    found: list[str] = []
    for name in filters:
        label = format_label(packs.get(name, name))
        if label not in found:
            found.append(label)
    return found


def format_label(pack: str) -> str:
    return PACK_FORMATS.get(pack, f"rules of {pack}")


def known_formats(rules: RuleSet) -> list[str]:
    """Every format the loaded rules read, in pack order."""
    return list(dict.fromkeys(format_label(spec.pack) for spec in rules.filters))


def unread_files(report: ScanReport) -> list[str]:
    """Files with lines but none that any rule matched: not a log format these rules read."""
    return [f.path for f in report.files if f.lines and not f.matched_lines]


def _unread_note(rules: RuleSet) -> str:
    return "no line in a format these rules read; they read: " + "; ".join(known_formats(rules))


# ---------------------------------------------------------------------------------------------------------------
# Tables that fit the terminal


@dataclass(frozen=True, slots=True)
class Column:
    """A table column; ``drop`` > 0 marks a lesser one (dropped, highest first, when the table does not fit) and
    ``wrap`` lets its text wrap. Columns that neither wrap nor drop (addresses, times) are never cut."""

    header: str
    justify: JustifyMethod = "left"
    wrap: bool = False
    drop: int = 0


def fitted_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int) -> Table:
    """A table of ``rows`` no wider than ``width``: lesser columns are dropped until the others fit whole."""
    active = list(range(len(columns)))

    def need(i: int) -> int:
        cells = [columns[i].header, *(rows[r][i].plain for r in range(len(rows)))]
        if columns[i].wrap:
            return min(max(len(w) for c in cells for w in (c.split() or [""])), 12)
        return max(Text(c).cell_len for c in cells)

    while True:
        total = sum(need(i) + 3 for i in active) - 3  # padding on both inner sides, one separator
        droppable = [i for i in active if columns[i].drop]
        if total <= width or not droppable:
            break
        active.remove(max(droppable, key=lambda i: columns[i].drop))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i in active:
        col = columns[i]
        table.add_column(
            col.header,
            justify=col.justify,
            no_wrap=not col.wrap,
            overflow="fold" if col.wrap else "ellipsis",
        )
    for row in rows:
        table.add_row(*(row[i] for i in active))
    return table


class _Console(Console):
    """Rich's console, but a closed pipe raises :class:`BrokenPipeError` to :func:`run` (Rich's own handler exits
    with status 1, which would hide whether anything would fire)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _when(epoch: float | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` (UTC), the width every time column reserves."""
    return iso_utc(epoch)[:19].replace("T", " ") if epoch is not None else "-"


def render(report: ScanReport, rules: RuleSet, out: TextIO) -> None:
    """Print the human summary of ``report`` to ``out`` (at most 80 columns when ``out`` is not a terminal)."""
    console = _Console(file=out, highlight=False, soft_wrap=False)
    width = console.width
    mb = report.bytes / 1e6
    head = Text()
    head.append("Scanned ", style="bold")
    head.append(f"{len(report.files)} file(s): {report.lines:,} lines, {mb:,.1f} MB in {report.seconds:.2f}s")
    head.append(f"  ({report.lines_per_second:,.0f} lines/s)", style="dim")
    console.print(head)
    for f in report.files:
        line = Text(f"  {printable(f.path)}: {f.lines:,} lines", style="dim")
        if f.matched_lines:
            formats = ", ".join(file_formats(f.filters, rules))
            line.append(f", {f.matched_lines:,} matched; read as {formats}", style="dim")
        elif f.lines:
            line.append(" — none in a format these rules read", style="yellow")
        console.print(line)
    console.print(
        Text(
            f"Matched lines: {report.matched_lines:,}   source addresses: {len(report.ip_hits):,}\n"
            f"Allowlisted hits: {report.allowlisted:,}   unparsed addresses: {report.bad_ip:,}   "
            "(times below in UTC)"
        )
    )
    if not report.matched_lines:
        console.print(
            Text(
                "No line matched any rule, so nothing would fire: "
                + ("the file is" if len(report.files) == 1 else "these files are")
                + " in no format these rules read. They read: "
                + "; ".join(known_formats(rules))
                + ".",
                style="yellow",
            )
        )
        return

    events_by_rule = Counter(e.rule for e in report.events)
    rows = []
    for rule in rules.rules:
        hits = report.rule_hits.get(rule.name, 0)
        style = "" if hits else "dim"
        rows.append(
            [
                Text(rule.name, style=style),
                Text(rule.anomaly, style=style),
                Text(f"{hits:,}", style=style),
                Text(f"{events_by_rule.get(rule.name, 0):,}", style=style),
            ]
        )
    console.print(
        fitted_table(
            "Rules",
            [Column("rule"), Column("anomaly", drop=1), Column("lines counted", "right"), Column("events", "right")],
            rows,
            width,
        )
    )

    rows = [[Text(name), Text(f"{hits:,}")] for name, hits in report.pattern_hits.items() if hits]
    if rows:
        console.print(fitted_table("Patterns", [Column("filter/pattern"), Column("lines", "right")], rows, width))

    sources = report.source_summaries()
    if sources:
        shown = sources[:TOP_SOURCES]
        rows = [
            [
                Text(s.ip),
                Text(f"{s.failures:,}"),
                Text(f"{s.events:,}"),
                Text(_when(s.first)),
                Text(_when(s.last)),
                Text(", ".join(s.anomalies)),
            ]
            for s in shown
        ]
        title = (
            f"Source addresses: top {len(shown)} of {len(sources):,} by failures"
            if len(sources) > len(shown)
            else f"Source addresses: {len(sources):,}"
        )
        console.print(
            fitted_table(
                title,
                [
                    Column("source"),
                    Column("failures", "right"),
                    Column("events", "right", drop=4),
                    Column("first", drop=2),
                    Column("last", drop=1),
                    Column("anomalies", wrap=True, drop=3),
                ],
                rows,
                width,
            )
        )
        if len(sources) > len(shown):
            console.print(Text("  every address: --json; just the offending ones: --ips", style="dim"))

    if not report.events:
        console.print(
            Text("No events would fire: no source reached a rule's threshold.", style="green")
        )
        return
    rows = [
        [
            Text(_when_iso(e.ts)),
            Text(e.source_ip),
            Text(e.anomaly),
            Text(e.severity, style=_SEVERITY_STYLE.get(e.severity, "")),
            Text(str(e.count or "")),
            Text(printable(e.user or "")[:32]),
            Text(e.rule or ""),
        ]
        for e in report.events[:MAX_EVENTS_SHOWN]
    ]
    console.print(
        fitted_table(
            f"Events that would fire: {len(report.events):,}",
            [
                Column("time"),
                Column("source"),
                Column("anomaly"),
                Column("severity", drop=2),
                Column("count", "right", drop=3),
                Column("user", wrap=True, drop=4),
                Column("rule", drop=5),
            ],
            rows,
            width,
        )
    )
    if len(report.events) > MAX_EVENTS_SHOWN:
        console.print(
            Text(f"… and {len(report.events) - MAX_EVENTS_SHOWN:,} more (use --json for all)", style="dim")
        )


def _when_iso(ts: str | None) -> str:
    return (ts or "")[:19].replace("T", " ")
