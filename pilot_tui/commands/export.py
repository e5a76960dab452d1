"""``pilot-tui export``: stored events as NDJSON, CSV or ECS on stdout, for log shippers (Vector, Filebeat).

ECS (Elastic Common Schema) mapping: ``@timestamp`` ← event ``ts`` (else receive time), ``source.ip``,
``event.kind=alert``, ``event.severity`` (1-5 from info…critical), ``event.action`` ← anomaly, ``rule.name``,
``observer.name`` ← sensor, ``event.id``, ``event.count``; plus ``pilot_tui.*`` for the rest.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import time
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from pilot_tui import paths
from pilot_tui.store.db import open_readonly
from pilot_tui.store.events import SCHEMA as EVENTS_SCHEMA
from pilot_tui.store.events import EventStore, StoredEvent
from pilot_tui.store.feed import iter_since

from .common import fail

CSV_FIELDS = ("received_at", "ts", "id", "severity", "anomaly", "source_ip", "sensor", "seq", "count", "rule",
              "user", "log", "state", "note", "sender", "transport")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flat(s: StoredEvent) -> dict[str, Any]:
    d = s.event.to_dict()
    d.update(received_at=_iso(s.received_at), state=s.state, note=s.note, sender=s.sender, transport=s.transport)
    return d


def ecs(s: StoredEvent) -> dict[str, Any]:
    e = s.event
    doc: dict[str, Any] = {
        "@timestamp": e.ts or _iso(s.received_at),
        "event": {"kind": "alert", "id": e.id, "severity": e.severity_rank + 1, "action": e.anomaly,
                  "category": ["intrusion_detection"], "created": _iso(s.received_at)},
        "source": {"ip": e.source_ip},
        "rule": {"name": e.rule or e.anomaly},
        "observer": {"name": e.sensor or "", "vendor": "pilot-tui"},
        "pilot_tui": {"severity": e.severity, "state": s.state, "sender": s.sender, "transport": s.transport},
    }
    if e.count is not None:
        doc["event"]["count"] = e.count
    if e.user:
        doc["user"] = {"name": e.user}
    if e.log:
        doc["log"] = {"file": {"path": e.log}}
    if e.evidence:
        doc["message"] = e.evidence[-1]
    return doc


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection"); user names and
evidence are attacker-chosen (``Invalid user =HYPERLINK(…) from …``)."""


def csv_safe(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every text cell that a spreadsheet would run as a formula prefixed with ``'`` (OWASP's rule)."""
    return {k: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v for k, v in row.items()}


def write(store: EventStore | sqlite3.Connection, fmt: str, out: TextIO, since_s: float | None = None) -> int:
    """Write events in ``fmt`` from a store or a read-only connection to one; returns how many."""
    conn = store if isinstance(store, sqlite3.Connection) else store.conn
    since = time.time() - since_s if since_s else None
    n = 0
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
    for stored in iter_since(conn, since):
        if writer is not None:
            writer.writerow(csv_safe(flat(stored)))
        else:
            doc = ecs(stored) if fmt == "ecs" else flat(stored)
            out.write(orjson.dumps(doc).decode() + "\n")
        n += 1
    return n


def run(args: argparse.Namespace) -> int:
    if getattr(args, "follow", False) or getattr(args, "output", None) or getattr(args, "cursor", None):
        if not args.follow:
            return fail("export", "--output and --cursor go with --follow")
        if args.since is not None:
            return fail("export", "--since does not go with --follow (the cursor says where to start)")
        from . import export_follow

        return export_follow.run(args)
    try:
        db = paths.db_path("orchestrator", args.state_dir)
        if not db.exists() or db.stat().st_size == 0:
            return fail("export", f"no orchestrator state at {db} (run the orchestrator first, or pass --state-dir)")
    except paths.StateError as exc:
        return fail("export", str(exc))
    except OSError as exc:
        return fail("export", f"cannot read orchestrator state: {exc.strerror or exc}")
    try:
        store: EventStore | sqlite3.Connection = EventStore(db)
    except paths.StateError as exc:
        try:  # exporting writes nothing: a read-only state dir (a read-only mount, a backup) is read as it is
            store = open_readonly(db, EVENTS_SCHEMA)
        except paths.StateError:
            return fail("export", str(exc))
    try:
        write(store, args.format, sys.stdout, args.since)
    except BrokenPipeError:
        pass
    except sqlite3.DatabaseError as exc:
        # a page-corrupted file opens fine and fails part-way: what was written stands, the error is one line
        sys.stdout.flush()
        return fail("export", f"{db} is corrupt ({exc}); the events before this point were written")
    finally:
        store.close()
    return 0
