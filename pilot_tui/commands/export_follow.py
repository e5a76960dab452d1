"""``pilot-tui export --follow``: stream events to a log shipper as they are stored, resuming from a saved cursor.

Why not ``export --since 5m`` on a timer: its windows either overlap (duplicates) or leave gaps (events received
between two runs that fall outside both windows). Here the cursor is the store's arrival order (``events.rowid``,
which only grows), kept in a small JSON file next to the output:

* ``--output FILE``: exactly once. After each batch the file is flushed and fsynced, then the cursor records both
  the last rowid and the file's size (written atomically by rename). A restart first cuts the file back to the size
  the cursor recorded — the tail of a batch whose cursor never got saved — and carries on from the cursor's rowid,
  so every event is in the file once, whatever moment the process was killed at.
* stdout: at least once. Nothing can tell what the reader on the other end of a pipe kept, so the cursor is saved
  after each flushed batch; a kill between the two replays that one batch. ECS ``event.id`` / the event ``id`` is
  unique, so a shipper that uses it as the document id (``contrib/vector.toml``, ``contrib/filebeat.yml``) drops
  the replay.

New rows are found by polling the store (one indexed query per ``--interval``): an export runs beside the
orchestrator that writes, in another process, and SQLite's WAL lets it read without ever blocking that writer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import orjson

from pilot_tui import paths
from pilot_tui.store.events import EventStore
from pilot_tui.store.feed import iter_after

from .common import fail

BATCH = 1000
"""Events written between two cursor saves (one fsync each): bounds both the replay on stdout and the cost."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the export stands: the last exported ``events.rowid`` and, for ``--output``, that file's size then."""

    rowid: int = 0
    size: int | None = None


def load_cursor(path: Path) -> Cursor:
    """The saved cursor, or the start when there is none; a damaged one is an error (never silently restart)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return Cursor()
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cursor file {path} is unreadable ({exc}); remove it to export everything again") from None
    if not isinstance(data, dict):
        data = {}
    rowid, size = data.get("rowid"), data.get("size")
    if not isinstance(rowid, int) or rowid < 0 or not (size is None or (isinstance(size, int) and size >= 0)):
        raise ValueError(f"cursor file {path} is not a pilot-tui export cursor; remove it to export everything again")
    return Cursor(rowid, size)


def save_cursor(path: Path, cursor: Cursor) -> None:
    """Write the cursor atomically (temp file 0600, fsync, rename): a crash leaves the old cursor or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, orjson.dumps({"rowid": cursor.rowid, "size": cursor.size}))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def open_output(path: Path, cursor: Cursor, cursor_path: Path) -> tuple[TextIO, Cursor]:
    """Open ``--output`` for appending, first cutting off whatever was written after the cursor was last saved.

    Without a size on record (first run), what the file already holds is kept and that size is saved at once, before
    anything is written, so a crash in the first batch is cut back too.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    size = os.fstat(fd).st_size
    if cursor.size is None:
        cursor = Cursor(cursor.rowid, size)
        save_cursor(cursor_path, cursor)
    keep = cursor.size
    assert keep is not None
    if keep > size:
        os.close(fd)
        raise ValueError(f"{path} is shorter ({size} bytes) than its cursor says ({keep}): it was changed by "
                         "something else; move it or the cursor away")
    if size > keep:
        os.ftruncate(fd, keep)
    os.lseek(fd, 0, os.SEEK_END)
    return os.fdopen(fd, "a", encoding="utf-8"), cursor


def follow(store: EventStore, fmt: str, out: TextIO, cursor_path: Path, cursor: Cursor, *,
           interval: float, stop: threading.Event, to_file: bool) -> int:
    """Write every event after ``cursor`` in ``fmt`` as it is stored, until ``stop``; returns how many."""
    from .export import ecs, flat  # the one mapping of an event to each format

    total = 0
    while True:
        batch = iter_after(store.conn, cursor.rowid, BATCH)
        for stored in batch:
            doc = ecs(stored) if fmt == "ecs" else flat(stored)
            out.write(orjson.dumps(doc).decode() + "\n")
            cursor = Cursor(stored.rowid, None)
        if batch:
            out.flush()
            if to_file:
                os.fsync(out.fileno())
                cursor = Cursor(cursor.rowid, out.tell())
            save_cursor(cursor_path, cursor)
            total += len(batch)
        if stop.is_set():
            return total
        if len(batch) < BATCH:
            stop.wait(interval)


def run(args: argparse.Namespace) -> int:
    """Entry point for ``export --follow`` (the plain export stays in :mod:`.export`)."""
    if args.format == "csv":
        return fail("export", "--follow writes NDJSON or ECS (a CSV has one header and cannot grow by line)")
    try:
        db = paths.db_path("orchestrator", args.state_dir)
        if not db.exists() or db.stat().st_size == 0:
            return fail("export", f"no orchestrator state at {db} (run the orchestrator first, or pass --state-dir)")
        output = Path(args.output).expanduser() if args.output else None
        default_cursor = (output.with_name(output.name + ".cursor") if output
                          else db.with_name(f"export-{args.format}.cursor"))
        cursor_path = Path(args.cursor).expanduser() if args.cursor else default_cursor
        cursor = load_cursor(cursor_path)
        store = EventStore(db)
    except paths.StateError as exc:
        return fail("export", str(exc))
    except ValueError as exc:
        return fail("export", str(exc))
    except OSError as exc:
        return fail("export", f"cannot start: {exc.strerror or exc}")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    out: TextIO = sys.stdout
    try:
        if output is not None:
            out, cursor = open_output(output, cursor, cursor_path)
        print(f"pilot-tui export: following {db} from event #{cursor.rowid} "
              f"(cursor {cursor_path}; stop with Ctrl-C)", file=sys.stderr)
        follow(store, args.format, out, cursor_path, cursor, interval=args.interval, stop=stop,
               to_file=output is not None)
    except BrokenPipeError:
        with contextlib.suppress(OSError):  # the reader went away: end quietly, the cursor holds what was flushed
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except ValueError as exc:
        return fail("export", str(exc))
    except sqlite3.DatabaseError as exc:
        return fail("export", f"{db}: {exc}; events up to the saved cursor were written")
    except OSError as exc:
        return fail("export", f"cannot write: {exc.strerror or exc}; events up to the saved cursor were written")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if out is not sys.stdout:
            out.close()
        store.close()
    return 0
