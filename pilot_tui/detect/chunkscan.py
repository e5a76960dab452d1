"""Offline scanning of whole files (plain or gzip) in big chunks — the engine behind ``pilot-tui scan`` and ``bench/``.

Most lines of a log match nothing, and a Python loop pays for every one of them. Here each filter's compiled
alternation is run with ``finditer`` over a multi-megabyte chunk, so the regex engine skips non-matching text in C;
Python only sees matching lines. For each match we cut out its line and hand it to the detector's shared loop
``_count`` — the very code :meth:`Detector.feed` runs — in the order the lines appear, merging the filters' match
streams by position (ties in filter order, as ``feed`` does). Hence the same events, windows and counters as
feeding the lines one by one, which ``tests/test_detect_scan.py`` checks on generated and hostile logs. What a rule
*means* (groups, windows, counts, cooldowns, events) therefore exists once, in Python; this module only decides
which lines reach it.

Where the time goes (CPU time on a 200,000-line attack-heavy auth.log from ``bench/scan_bench.py``'s generator, half
of whose lines match): about 30 % in the filters' regexes, 10 % cutting matched lines out of the chunk, 35 % in
``_count`` per matching line (its address, its time, the sshd connection that decides whether it is a failure),
25 % in the windows and 3 % building events. On a quiet log (8 % of lines match) three quarters are the regexes.
A multi-pattern prefilter (``hyperscan``) was measured and not adopted: it does not touch the per-line work, and
its own scan and compile cost more than they save (README, Measured).

Two corner cases keep the equivalence exact: a match that runs past its line's end (a pattern with ``\\s`` or a
negated class can cross a newline in a chunk) is re-done on the line alone, and a filter's ``require`` literal is
checked per line. A chunk that lacks a filter's ``require`` literal skips that filter entirely.

Year-less syslog times are placed relative to each file's mtime (a log's last write), unless a reference is given.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilot_tui.model import ThreatEvent

from .chunks import DEFAULT_CHUNK, decode, iter_raw_chunks, open_log
from .engine import LOCAL_SOURCE, CompiledFilter, Detector
from .rules import Match, RuleSet, load_rules
from .timeparse import iso_utc


@dataclass(slots=True)
class FileStats:
    """What one scanned file contributed; ``filters`` counts its matched lines per filter (which formats it holds)."""

    path: str
    lines: int = 0
    bytes: int = 0
    seconds: float = 0.0
    matched_lines: int = 0
    filters: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SourceSummary:
    """One source address of a scan: what the rules counted for it and what would fire."""

    ip: str
    failures: int
    """Failures counted for this address (``DetectorStats.ip_hits``: "message repeated N times" counts N)."""
    first: float | None
    last: float | None
    events: int
    anomalies: tuple[str, ...]


@dataclass(slots=True)
class ScanReport:
    """Result of a scan: volumes, hits per rule and pattern, per source address, events that would fire."""

    files: list[FileStats] = field(default_factory=list)
    lines: int = 0
    bytes: int = 0
    seconds: float = 0.0
    matched_lines: int = 0
    rule_hits: dict[str, int] = field(default_factory=dict)
    pattern_hits: dict[str, int] = field(default_factory=dict)
    ip_hits: Counter[str] = field(default_factory=Counter)
    """Failures per source address (``DetectorStats.ip_hits``)."""
    ip_times: dict[str, list[float]] = field(default_factory=dict)
    """Time of the first and last failure per address (``DetectorStats.ip_times``)."""
    events: list[ThreatEvent] = field(default_factory=list)
    allowlisted: int = 0
    bad_ip: int = 0
    user_keyed: frozenset[str] = frozenset()
    """Rules counted per user (sudo): an event of theirs at :data:`~.engine.LOCAL_SOURCE` names no real source."""

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def offending_ips(self, rules: Iterable[str] | None = None) -> list[str]:
        """Addresses for which a rule would fire (of ``rules`` only, when given), lowest first; a user-keyed event's
        stand-in address (the user's SSH login was not seen) is not one."""
        wanted = set(rules) if rules is not None else None
        found = {
            e.source_ip
            for e in self.events
            if (wanted is None or e.rule in wanted)
            and not (e.source_ip == LOCAL_SOURCE and e.rule in self.user_keyed)
        }
        return sorted(found, key=_address_order)

    def source_summaries(self) -> list[SourceSummary]:
        """Every source address seen — counted by a rule, or named by an event — most failures first."""
        events: Counter[str] = Counter()
        anomalies: dict[str, set[str]] = {}
        for e in self.events:
            if e.source_ip == LOCAL_SOURCE and e.rule in self.user_keyed:
                continue
            events[e.source_ip] += 1
            anomalies.setdefault(e.source_ip, set()).add(e.anomaly)
        out = []
        for ip in self.ip_hits.keys() | events.keys():
            first, last = self.ip_times.get(ip) or (None, None)
            out.append(
                SourceSummary(
                    ip, self.ip_hits.get(ip, 0), first, last, events[ip], tuple(sorted(anomalies.get(ip, ())))
                )
            )
        out.sort(key=lambda s: (-s.failures, _address_order(s.ip)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``scan --json``): every source address, every event (in wire form)."""
        return {
            "files": [
                {
                    "path": f.path,
                    "lines": f.lines,
                    "bytes": f.bytes,
                    "seconds": round(f.seconds, 4),
                    "matched_lines": f.matched_lines,
                    "filters": f.filters,
                }
                for f in self.files
            ],
            "lines": self.lines,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "lines_per_second": round(self.lines_per_second),
            "matched_lines": self.matched_lines,
            "rule_hits": self.rule_hits,
            "pattern_hits": self.pattern_hits,
            "distinct_ips": len(self.ip_hits),
            "allowlisted_hits": self.allowlisted,
            "unparsed_address_hits": self.bad_ip,
            "offending_ips": self.offending_ips(),
            "sources": [
                {
                    "ip": s.ip,
                    "failures": s.failures,
                    "first": iso_utc(s.first) if s.first is not None else None,
                    "last": iso_utc(s.last) if s.last is not None else None,
                    "events": s.events,
                    "anomalies": list(s.anomalies),
                }
                for s in self.source_summaries()
            ],
            "events": [e.to_dict() for e in self.events],
        }


def _address_order(ip: str) -> tuple[int, int, str]:
    """Sort key: IPv4 before IPv6, numerically; text that is no address last (never expected)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (7, 0, ip)
    return (addr.version, int(addr), "")


def scan_chunk(detector: Detector, chunk: str, log: str, ref: float, out: list[ThreatEvent]) -> int:
    """Run every filter over ``chunk`` (whole lines) and feed matches to ``detector``; return lines with a match.

    The caller counts the chunk's lines; events are appended to ``out`` in line order. Each filter's matches come
    from one ``finditer``, consumed as they are found (a match object is dropped as soon as its line is handled,
    which keeps memory hot in the cache); with several filters the streams are merged by line start, ties in
    filter order, as :meth:`Detector.feed` visits them. A filter whose ``require`` literal is not in the chunk is
    skipped without running its regex; each distinct literal is looked for once per chunk.
    """
    filters = detector.filters
    present: dict[str, bool] = {}
    heads: list[list[int]] = []  # [start of the filter's next matching line, filter index]
    for fi, cf in enumerate(filters):
        require = cf.require
        if require is not None:
            here = present.get(require)
            if here is None:
                here = present[require] = require in chunk
            if not here:
                continue
        m = cf.rx.search(chunk)
        if m is not None:
            heads.append([chunk.rfind("\n", 0, m.start()) + 1, fi])
    scan = _Scan(chunk)
    count = detector._count
    while heads:
        if len(heads) > 1:
            heads.sort()
            head, limit = heads[0], (heads[1][0], heads[1][1])
        else:
            head, limit = heads[0], (len(chunk) + 1, 0)
        cf = filters[head[1]]
        count(cf, scan.lines(head, cf, limit), log, ref, out)
        if scan.exhausted:
            heads.pop(0)
    return scan.matched


class _Scan:
    """One chunk's scan state; :meth:`lines` is the hot loop (one iteration per matching line)."""

    __slots__ = ("chunk", "matched", "last_line", "exhausted")

    def __init__(self, chunk: str) -> None:
        self.chunk = chunk
        self.matched = 0  # lines with a match (a line matched by two filters counts once)
        self.last_line = -1  # start of the last line counted in ``matched``
        self.exhausted = False

    def lines(
        self, head: list[int], cf: CompiledFilter, limit: tuple[int, int]
    ) -> Iterator[tuple[Match, str]]:
        """``(match, line)`` for filter ``cf``'s matching lines from ``head[0]`` on, in order, until one starts after
        ``limit`` (line start, filter index): its start goes back in ``head``; :attr:`exhausted` says the filter has
        no more. Resuming searches again from that line's start, which finds the very same match (none started
        between the previous match's end and it).

        Every line is judged as ``rx.search(line)`` would judge it: its leftmost match only (later matches on it
        are skipped), and a match that runs past the line's end (``\\s`` or a negated class can cross a newline in
        a chunk) is re-done on the line alone, the scan resuming at the next line.
        """
        chunk = self.chunk
        find, rfind = chunk.find, chunk.rfind
        size = len(chunk)
        rx, require, fi = cf.rx, cf.require, head[1]
        limit_start, limit_fi = limit
        matched, last_line = self.matched, self.last_line
        pos = head[0]
        end = -1  # end of the last line judged
        self.exhausted = False
        try:
            while True:
                restart = -1
                for m in rx.finditer(chunk, pos):
                    p = m.start()
                    if p <= end:  # another match on the line just judged
                        if m.end() > end:  # …that ran into the next line: resume there
                            restart = end + 1
                            break
                        continue
                    start = rfind("\n", 0, p) + 1
                    if start > limit_start or (start == limit_start and fi > limit_fi):
                        head[0] = start
                        return
                    end = find("\n", p)
                    if end < 0:
                        end = size
                    line = chunk[start:end]
                    if m.end() > end:  # ran into the next line: judge this line alone, resume after it
                        restart = end + 1
                        found = rx.search(line)
                        if found is None:
                            break
                        m = found
                    if require is None or require in line:
                        if start != last_line:
                            matched += 1
                            last_line = start
                        yield m, line
                    if restart >= 0:
                        break
                if restart < 0:
                    self.exhausted = True
                    return
                pos = restart
        finally:
            self.matched, self.last_line = matched, last_line


def _scan_text(detector: Detector, chunk: str, log: str, ref: float, out: list[ThreatEvent]) -> int:
    """:func:`scan_chunk` on decoded text, its lines and matched lines counted in ``detector.stats``; returns the
    lines."""
    lines = chunk.count("\n") + (0 if not chunk or chunk.endswith("\n") else 1)
    detector.stats.lines += lines
    detector.stats.matched_lines += scan_chunk(detector, chunk, log, ref, out)
    return lines


def scan_text(
    detector: Detector, text: str, log: str = "<text>", now: float | None = None
) -> list[ThreatEvent]:
    """Chunk-scan an in-memory text (tests, small inputs); counts its lines like :func:`scan_files` does."""
    ref = time.time() if now is None else now
    out: list[ThreatEvent] = []
    _scan_text(detector, text.replace("\r\n", "\n") if "\r" in text else text, log, ref, out)
    return out


def scan_files(
    paths: Iterable[str | Path],
    detector: Detector | None = None,
    *,
    rules: RuleSet | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    reference: float | None = None,
) -> ScanReport:
    """Scan files in order with one detector (windows continue across files, as when tailing rotated logs).

    Without ``detector`` one is built from ``rules`` (default: all built-in packs). ``reference`` overrides each
    file's mtime as the "now" for year-less syslog times and for lines without a time. Raises ``OSError`` for a
    file that cannot be read.
    """
    if detector is None:
        detector = Detector(rules if rules is not None else load_rules())
    report = ScanReport()
    began = time.perf_counter()
    # A scan allocates tens of thousands of acyclic objects (events, evidence tuples): the cyclic collector would
    # walk them again and again for nothing (about a tenth of a busy scan's time), so it rests until the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _scan_into(report, paths, detector, chunk_size, reference)
    finally:
        if collecting:
            gc.enable()
    report.seconds = time.perf_counter() - began
    stats = detector.stats
    report.lines = sum(f.lines for f in report.files)
    report.bytes = sum(f.bytes for f in report.files)
    report.matched_lines = stats.matched_lines
    report.rule_hits = detector.rule_hits()
    report.pattern_hits = detector.pattern_hits()
    report.ip_hits = stats.ip_hits
    report.ip_times = stats.ip_times
    report.allowlisted = stats.allowlisted
    report.bad_ip = stats.bad_ip
    report.user_keyed = frozenset(r.name for r in detector.rules.rules if r.key == "user")
    return report


def _filter_hits(detector: Detector) -> dict[str, int]:
    """Matched lines so far per filter (the sum of its patterns' hits)."""
    return {cf.name: sum(info.hits for info in cf.branches.values()) for cf in detector.filters}


def _scan_into(
    report: ScanReport,
    paths: Iterable[str | Path],
    detector: Detector,
    chunk_size: int,
    reference: float | None,
) -> None:
    """The loop of :func:`scan_files`: files in order, their stats and events into ``report``."""
    for path in paths:
        fstats = FileStats(str(path))
        t0 = time.perf_counter()
        ref = reference if reference is not None else os.path.getmtime(path)
        before, matched_before = _filter_hits(detector), detector.stats.matched_lines
        log = str(path)
        with open_log(path) as stream:
            for piece in iter_raw_chunks(stream, chunk_size):
                fstats.lines += _scan_text(detector, decode(piece), log, ref, report.events)
                fstats.bytes += len(piece)
        fstats.matched_lines = detector.stats.matched_lines - matched_before
        fstats.filters = {
            name: n - before[name] for name, n in _filter_hits(detector).items() if n > before[name]
        }
        fstats.seconds = time.perf_counter() - t0
        report.files.append(fstats)
