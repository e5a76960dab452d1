"""Offline scanning of whole files (plain or gzip) in big chunks — the engine behind ``pilot-tui scan`` and ``bench/``.

Most lines of a log match nothing, and a Python loop pays for every one of them. Here each filter's compiled
alternation is run with ``search`` over a multi-megabyte chunk, so the regex engine skips non-matching text in C;
Python only sees matching lines. For each match we cut out its line and hand it to the detector's shared loop
``_count`` — the very code :meth:`Detector.feed` runs — in the order the lines appear, merging the filters' match
streams by position (ties in filter order, as ``feed`` does). Hence the same events, windows and counters as
feeding the lines one by one, which ``tests/test_detect_scan.py`` checks on generated logs.

On this Python path (1M-line generated auth.log, half of whose lines match), the regexes are about a fifth of the
time; the rest is Python work per *matching* line (cutting it out, resolving its address and time, counting it in one
or two windows), about 3 µs a line on a 2-core cloud VM. So a detector built with ``native=True`` hands whole raw
chunks to the C engine (:mod:`.native`): :func:`~.chunks.matched_ahead` reads and matches the next chunk in a helper thread
(no GIL needed) while this thread counts the current one, and a chunk the C engine refuses comes back here, decoded,
with its matches counted by the C windows. About 12x faster on that file (see ``bench/scan_bench.py``).

Two corner cases keep the equivalence exact: a match that runs past its line's end (a pattern with ``\\s`` or a
negated class can cross a newline in a chunk) is re-done on the line alone, and a filter's ``require`` literal is
checked per line. A chunk that lacks a filter's ``require`` literal skips that filter entirely.

Year-less syslog times are placed relative to each file's mtime (a log's last write), unless a reference is given.
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilot_tui.model import ThreatEvent

from .chunks import DEFAULT_CHUNK, decode, iter_raw_chunks, matched_ahead, open_log
from .engine import CompiledFilter, Detector
from .events import event_log
from .rules import RuleSet, load_rules


@dataclass(slots=True)
class FileStats:
    """What one scanned file contributed."""

    path: str
    lines: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class ScanReport:
    """Result of a scan: volumes, hits per rule and pattern, hits per source address, events that would fire."""

    files: list[FileStats] = field(default_factory=list)
    lines: int = 0
    bytes: int = 0
    seconds: float = 0.0
    matched_lines: int = 0
    rule_hits: dict[str, int] = field(default_factory=dict)
    pattern_hits: dict[str, int] = field(default_factory=dict)
    ip_hits: Counter[str] = field(default_factory=Counter)
    events: list[ThreatEvent] = field(default_factory=list)
    allowlisted: int = 0
    bad_ip: int = 0
    engine: str = "python"
    """``c`` when the C hot path scanned (see :mod:`.native`), else ``python`` and, after a colon, why not."""

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def offending_ips(self, rules: Iterable[str] | None = None) -> set[str]:
        """Addresses of the fired events (of ``rules`` only, when given)."""
        wanted = set(rules) if rules is not None else None
        return {e.source_ip for e in self.events if wanted is None or e.rule in wanted}

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """JSON-ready summary (``scan --json``); events in wire form."""
        return {
            "files": [
                {"path": f.path, "lines": f.lines, "bytes": f.bytes, "seconds": round(f.seconds, 4)}
                for f in self.files
            ],
            "lines": self.lines,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "lines_per_second": round(self.lines_per_second),
            "engine": self.engine,
            "matched_lines": self.matched_lines,
            "rule_hits": self.rule_hits,
            "pattern_hits": self.pattern_hits,
            "top_ips": [{"ip": ip, "hits": n} for ip, n in self.ip_hits.most_common(top)],
            "distinct_ips": len(self.ip_hits),
            "allowlisted_hits": self.allowlisted,
            "unparsed_address_hits": self.bad_ip,
            "events": [e.to_dict() for e in self.events],
        }


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
    ) -> Iterator[tuple[re.Match[str], str]]:
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


def scan_found(detector: Detector, piece: memoryview, found: Any, log: str, ref: float, out: list[ThreatEvent]) -> int:
    """Count a chunk the C engine matched (``found``), or scan it in Python when it refused (``None``); like
    :func:`scan_raw`, returns the chunk's lines."""
    if found is None:
        return scan_raw(detector, piece, log, ref, out, native=False)
    done = detector.native.count_found(found, ref, event_log(log), detector.clock.year_of(ref))
    return _counted(detector, done, log, out)


def _counted(detector: Detector, done: tuple[int, int, list[Any]], log: str, out: list[ThreatEvent]) -> int:
    """Take what the C engine counted in a chunk — ``(lines, matched lines, fires)`` — into the detector and
    ``out``; returns the chunk's lines."""
    lines, matched, fires = done
    if fires:
        detector.native_events(fires, log, out)
    detector.take_native_counts()
    detector.stats.lines += lines
    detector.stats.matched_lines += matched
    return lines


def scan_raw(
    detector: Detector, piece: bytes | memoryview, log: str, ref: float, out: list[ThreatEvent], native: bool = True
) -> int:
    """Scan one raw chunk (whole lines, undecoded): with the C engine when the detector has one and the chunk suits
    it, else decoded and by :func:`scan_chunk`. Counts the chunk's lines and matched lines in ``detector.stats``
    and returns the number of lines. ``native=False``: the C engine already refused this chunk."""
    if native and detector.native is not None:
        done = detector.native.scan(piece, ref, event_log(log), detector.clock.year_of(ref))
        if done is not None:
            return _counted(detector, done, log, out)
    return _scan_text(detector, decode(piece if isinstance(piece, memoryview) else memoryview(piece)), log, ref, out)


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
    if text.isascii():
        scan_raw(detector, text.encode(), log, ref, out)
    else:
        _scan_text(detector, text.replace("\r\n", "\n"), log, ref, out)
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
        detector = Detector(rules if rules is not None else load_rules(), native=True)
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
    report.allowlisted = stats.allowlisted
    report.bad_ip = stats.bad_ip
    report.engine = "c" if detector.native is not None else f"python: {detector.native_problem}"
    return report


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
        with open_log(path) as stream:
            if detector.native is None:
                for piece in iter_raw_chunks(stream, chunk_size):
                    fstats.lines += scan_raw(detector, piece, str(path), ref, report.events)
                    fstats.bytes += len(piece)
            else:
                for piece, found in matched_ahead(detector.native, stream, chunk_size):
                    fstats.lines += scan_found(detector, piece, found, str(path), ref, report.events)
                    fstats.bytes += len(piece)
        fstats.seconds = time.perf_counter() - t0
        report.files.append(fstats)
