"""Read-side queries over the event store: the filtered feed window, incidents, top sources, rates, export.

The threat feed must stay responsive with tens of thousands of events, so the UI never loads them all: it asks for
the total matching a filter and for one window (``LIMIT/OFFSET``) at a time, newest first.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .events import EVENT_COLUMNS, StoredEvent, row_to_stored


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What the analyst wants to see. Empty fields do not filter."""

    text: str = ""
    """Free text: matched against source IP, anomaly, sensor and the raw event (substring, case-insensitive)."""
    min_severity: int = 0
    """Lowest severity rank shown (0 info … 4 critical)."""
    hide_handled: bool = False
    """Hide acknowledged, mitigated and false-positive events."""
    source_ip: str = ""
    """Exact source IP (an incident's events)."""
    ip_part: str = ""
    """Fragment of the source IP (case-insensitive substring)."""
    anomaly: str = ""
    """Fragment of the anomaly name."""
    sensor: str = ""
    """Fragment of the sensor name."""

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.min_severity:
            clauses.append("severity >= ?")
            args.append(self.min_severity)
        if self.hide_handled:
            clauses.append("state IN ('new', 'mitigating')")
        if self.source_ip:
            clauses.append("source_ip = ?")
            args.append(self.source_ip)
        for column, value in (("source_ip", self.ip_part), ("anomaly", self.anomaly),
                              ("COALESCE(sensor, '')", self.sensor)):
            if value:
                clauses.append(f"instr(lower({column}), ?)")
                args.append(value.lower())
        text = self.text.strip()
        if text:
            # instr() on lower() is a literal substring test: no LIKE wildcards to escape from user input.
            clauses.append(
                "(instr(lower(source_ip), ?) OR instr(lower(anomaly), ?) OR instr(lower(COALESCE(sensor, '')), ?) "
                "OR instr(lower(CAST(body AS TEXT)), ?))"
            )
            args += [text.lower()] * 4
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def count(conn: sqlite3.Connection, flt: FeedFilter) -> int:
    where, args = flt.where()
    return int(conn.execute(f"SELECT COUNT(*) FROM events{where}", args).fetchone()[0])


def window(conn: sqlite3.Connection, flt: FeedFilter, offset: int, limit: int) -> list[StoredEvent]:
    """Rows ``offset … offset+limit`` of the filtered feed, newest first."""
    where, args = flt.where()
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY rowid DESC LIMIT ? OFFSET ?", [*args, limit, offset]
    )
    return [row_to_stored(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Incident:
    """All events from one source IP, across sensors and anomalies."""

    source_ip: str
    first_seen: float
    last_seen: float
    events: int
    total_count: int
    max_severity: int
    sensors: tuple[str, ...]
    anomalies: tuple[str, ...]
    open_events: int
    mitigation: str | None


def incidents(conn: sqlite3.Connection, limit: int = 200) -> list[Incident]:
    """Incidents ordered by most recent activity; one attacker hitting five servers is one row with five sensors."""
    rows = conn.execute(
        "SELECT source_ip, MIN(received_at), MAX(received_at), COUNT(*), SUM(COALESCE(count, 1)), MAX(severity), "
        "GROUP_CONCAT(DISTINCT sensor), GROUP_CONCAT(DISTINCT anomaly), "
        "SUM(state IN ('new', 'mitigating')), MAX(mitigation) "
        "FROM events GROUP BY source_ip ORDER BY MAX(rowid) DESC LIMIT ?",
        (limit,),
    )
    out = []
    for r in rows:
        out.append(
            Incident(
                source_ip=r[0], first_seen=r[1], last_seen=r[2], events=r[3], total_count=r[4] or 0,
                max_severity=r[5], sensors=tuple(sorted(filter(None, (r[6] or "").split(",")))),
                anomalies=tuple(sorted(filter(None, (r[7] or "").split(",")))), open_events=r[8] or 0,
                mitigation=r[9],
            )
        )
    return out


def top_sources(conn: sqlite3.Connection, n: int = 5, since_s: float | None = None) -> list[tuple[str, int]]:
    """The ``n`` source IPs with the most events (optionally only the last ``since_s`` seconds)."""
    where, args = ("", []) if since_s is None else (" WHERE received_at >= ?", [time.time() - since_s])
    return [
        (r[0], r[1])
        for r in conn.execute(
            f"SELECT source_ip, COUNT(*) AS n FROM events{where} GROUP BY source_ip ORDER BY n DESC LIMIT ?",
            [*args, n],
        )
    ]


def per_minute(conn: sqlite3.Connection, minutes: int = 30, now: float | None = None) -> list[int]:
    """Events received per minute over the last ``minutes`` minutes, oldest first (for a sparkline)."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    buckets = [0] * minutes
    for minute, n in conn.execute(
        "SELECT CAST((received_at - ?) / 60 AS INTEGER) AS m, COUNT(*) FROM events WHERE received_at >= ? GROUP BY m",
        (start, start),
    ):
        if 0 <= minute < minutes:
            buckets[minute] = n
    return buckets


def iter_since(conn: sqlite3.Connection, since_epoch: float | None = None) -> Iterator[StoredEvent]:
    """All stored events in arrival order (for export), optionally only those received after ``since_epoch``."""
    where, args = ("", []) if since_epoch is None else (" WHERE received_at >= ?", [since_epoch])
    for row in conn.execute(f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY rowid", args):
        yield row_to_stored(row)



def iter_after(conn: sqlite3.Connection, rowid: int, limit: int) -> list[StoredEvent]:
    """Up to ``limit`` events stored after arrival number ``rowid``, oldest first: the cursor of ``export --follow``
    (``StoredEvent.rowid`` only grows with arrival)."""
    rows = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?", (rowid, limit))
    return [row_to_stored(row) for row in rows]
