"""Plain logic of the source layer: line splitting, identities, positions, one follower stepped by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_tui.sources import STATE_DRAINING, STATE_FOLLOWING, FilePosition, TailOptions
from pilot_tui.sources.follower import FileFollower
from pilot_tui.sources.identity import (
    FINGERPRINT_BYTES,
    find_by_identity,
    is_rotated_name,
    newer_rotations,
    not_a_log_file,
)
from pilot_tui.sources.lines import LineSplitter
from pilot_tui.sources.types import RateMeter

pytestmark = pytest.mark.timeout(20)


# --------------------------------------------------------------------------------------------- LineSplitter


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    tail=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
)
def test_any_chunking_gives_the_same_complete_lines(lines: list[bytes], cuts: list[int], tail: bytes) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    splitter = LineSplitter(max_line_bytes=64)
    out: list[bytes] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        res = splitter.feed(data[a:b], max_lines=10_000)
        assert res.consumed == b - a
        out += res.lines
    assert out == lines  # the unfinished tail is never handed out ...
    assert splitter.pending_bytes == len(tail)  # ... but held


def test_overlong_line_is_cut_once_and_memory_stays_bounded() -> None:
    splitter = LineSplitter(max_line_bytes=8)
    for _ in range(100):
        assert splitter.feed(b"x" * 1000, 100).lines == []
        assert splitter.pending_bytes <= 8
    res = splitter.feed(b"yy\nshort\n" + b"z" * 20 + b"\n", 100)
    assert res.lines == [b"x" * 8, b"short", b"z" * 8]
    assert splitter.cut == 2


def test_max_lines_stops_at_a_line_boundary() -> None:
    splitter = LineSplitter()
    res = splitter.feed(b"a\nbb\nccc\n", max_lines=2)
    assert (res.lines, res.consumed, res.boundary) == ([b"a", b"bb"], 5, 5)
    assert splitter.pending_bytes == 0


def test_discard_first_drops_the_line_we_started_inside() -> None:
    splitter = LineSplitter()
    splitter.reset(discard_first=True)
    res = splitter.feed(b"rest of a line\nwhole\n", 10)
    assert res.lines == [b"whole"] and res.boundary == len(b"rest of a line\nwhole\n")


def test_flush_hands_out_the_final_unterminated_line() -> None:
    splitter = LineSplitter()
    splitter.feed(b"a\nlast words", 10)
    assert splitter.flush() == b"last words"
    assert splitter.flush() is None


# --------------------------------------------------------------------------------------------- identity & positions


@pytest.mark.parametrize(
    ("name", "rotated"),
    [
        ("auth.log", False),
        ("app.log", False),
        ("auth.log.1", True),
        ("auth.log.2.gz", True),
        ("syslog.3.xz", True),
        ("auth.log-20240101", True),
        ("app.log.20240101.gz", True),
        ("access-2024.log", False),
    ],
)
def test_rotated_names(name: str, rotated: bool) -> None:
    assert is_rotated_name(f"/var/log/{name}") is rotated


def test_position_round_trip_and_malformed() -> None:
    pos = FilePosition("/var/log/auth.log", 2049, 42, "ab" * 16, 1024, 77)
    assert FilePosition.from_json(pos.to_json()) == pos
    for bad in (None, {}, {"v": 2}, {**pos.to_json(), "offset": -1}, {**pos.to_json(), "ino": "x"}, [1, 2]):
        assert FilePosition.from_json(bad) is None  # type: ignore[arg-type]


def test_find_by_identity_needs_inode_and_fingerprint(tmp_path: Path) -> None:
    old = tmp_path / "auth.log.1"
    old.write_text("original first line\n")
    pos = position_of(old)
    assert find_by_identity(str(tmp_path), pos.ino, pos.fp, pos.fp_len, exclude="") == str(old)
    assert find_by_identity(str(tmp_path), pos.ino, pos.fp, pos.fp_len, exclude=str(old)) is None
    old.write_text("replaced content!!!!\n")  # same inode, other head: inode reuse must not fool us
    assert old.stat().st_ino == pos.ino
    assert find_by_identity(str(tmp_path), pos.ino, pos.fp, pos.fp_len, exclude="") is None


def test_rate_meter_is_rolling() -> None:
    meter = RateMeter(window_s=5.0)
    meter.add(50, now=100.0)
    meter.add(50, now=102.0)
    assert meter.rate(now=103.0) == 20.0
    assert meter.rate(now=106.0) == 10.0
    assert meter.rate(now=200.0) == 0.0


# --------------------------------------------------------------------------------------------- follower by hand


def follower(
    path: Path, *, start_at_end: bool = False, pos: FilePosition | None = None, **kw: float
) -> FileFollower:
    opts = TailOptions(rotate_wait=kw.get("rotate_wait", 1.0), use_watchdog=False)
    return FileFollower(str(path), position=pos, start_at_end=start_at_end, options=opts)


def position_of(path: Path) -> FilePosition:
    fol = follower(path)
    res = fol.step(0.0)
    assert res.batch is not None
    fol.close()
    pos = FilePosition.from_json(res.batch.position)
    assert pos is not None
    return pos


def drain(fol: FileFollower, now: float = 0.0) -> list[str]:
    out: list[str] = []
    for _ in range(100):
        res = fol.step(now)
        if res.batch is not None:
            out += res.batch.lines
        if not res.more:
            return out
    raise AssertionError("follower never settled")


def test_truncate_and_refill_past_the_offset_between_two_looks(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("old 1\nold 2\n")
    fol = follower(log)
    assert drain(fol) == ["old 1", "old 2"]
    log.write_text(
        "a much longer new first line that replaces everything\n"
    )  # same inode, bigger than before
    assert drain(fol) == ["a much longer new first line that replaces everything"]
    assert fol.truncations == 1
    fol.close()


def test_fingerprint_grows_with_a_short_file(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("x\n")
    fol = follower(log)
    res = fol.step(0.0)
    assert res.batch is not None and res.batch.position["fp_len"] == 2
    log.write_text("x\n" + "y" * 3000 + "\n")
    drain(fol)
    with open(log, "a") as f:
        f.write("z\n")
    res = fol.step(0.0)
    assert res.batch is not None and res.batch.position["fp_len"] == FINGERPRINT_BYTES
    fol.close()


def test_rotation_grace_then_switch(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("a1\npartial")
    fol = follower(log, rotate_wait=1.0)
    assert drain(fol, now=0.0) == ["a1"]
    log.rename(tmp_path / "auth.log.1")
    log.write_text("b1\n")
    assert drain(fol, now=10.0) == []
    assert fol.state == STATE_DRAINING and fol.next_deadline() == 10.0 + 1.0
    # Grace over: the unterminated last line of the finished file is handed out, then the new file from 0.
    assert drain(fol, now=11.5) == ["partial", "b1"]
    assert fol.state == STATE_FOLLOWING and fol.rotations == 1
    fol.close()


def test_deleted_old_file_switches_without_waiting(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("a1\n")
    fol = follower(log, rotate_wait=60.0)
    assert drain(fol) == ["a1"]
    log.unlink()
    log.write_text("b1\n")
    assert drain(fol, now=1.0) == ["b1"]
    fol.close()


def shift(log: Path, keep: int = 5) -> None:
    """logrotate's ``rotate N`` + ``create``: .N-1 -> .N ... log -> .1, then an empty file at the path."""
    for n in range(keep - 1, 0, -1):
        older = log.with_name(f"{log.name}.{n}")
        if older.exists():
            older.rename(log.with_name(f"{log.name}.{n + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))
    log.touch()


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_two_shifts_between_two_looks_read_every_generation_in_order(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("a1\n")
    fol = follower(log, rotate_wait=1.0)
    assert drain(fol, now=0.0) == ["a1"]
    shift(log)
    append(tmp_path / "auth.log.1", "a2\n")  # the writer's old handle, after the rename
    append(log, "b1\n")
    shift(log)  # b's file is shifted away before the follower ever looked at it
    append(log, "c1\n")
    assert drain(fol, now=1.0) == ["a2"]  # the old file first; the two newer ones are held, not read yet
    assert fol.state == STATE_DRAINING and fol.generations_waiting == 2
    # One grace period (from when they stopped growing) covers the whole backlog, not one per generation.
    assert drain(fol, now=2.1) == ["b1", "c1"]
    assert fol.state == STATE_FOLLOWING and fol.rotations == 2 and fol.generations_waiting == 0
    fol.close()


def test_a_new_file_deleted_after_a_rename_is_still_read(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("a1\n")
    fol = follower(log, rotate_wait=60.0)
    assert drain(fol) == ["a1"]
    log.rename(tmp_path / "auth.log.1")
    log.write_text("b1\nb2\n")
    assert drain(fol, now=1.0) == [] and fol.generations_waiting == 1  # seen and held ...
    log.unlink()  # ... so deleting it takes nothing away
    log.write_text("c1\n")
    assert drain(fol, now=2.0) == []
    (tmp_path / "auth.log.1").unlink()  # the old one goes too: finished without waiting out the grace
    assert drain(fol, now=3.0) == ["b1", "b2", "c1"]
    assert fol.rotations == 2 and fol.state == STATE_FOLLOWING
    fol.close()


def test_a_write_to_the_renamed_file_restarts_its_quiet_time(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("a1\n")
    fol = follower(log, rotate_wait=1.0)
    assert drain(fol, now=0.0) == ["a1"]
    log.rename(tmp_path / "auth.log.1")
    log.write_text("b1\n")
    assert drain(fol, now=0.0) == []
    append(tmp_path / "auth.log.1", "a2\n")
    assert drain(fol, now=0.9) == ["a2"]  # read at 0.9: quiet again only from here
    assert drain(fol, now=1.5) == [] and fol.state == STATE_DRAINING
    assert drain(fol, now=2.0) == ["b1"]
    fol.close()


def test_newer_rotations_orders_by_logrotate_names(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    # Oldest first, as logrotate leaves them: each file was last written before the next one was.
    for age, name in enumerate(("auth.log.4.gz", "auth.log.3", "auth.log.2", "auth.log.1", "auth.log", "other.log.1")):
        (tmp_path / name).write_text(name + "\n")
        os.utime(tmp_path / name, (1000 + age, 1000 + age))
    ino = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    dev = log.stat().st_dev
    assert newer_rotations(str(log), dev, ino["auth.log.3"]) == [
        (str(tmp_path / "auth.log.2"), ino["auth.log.2"]),
        (str(tmp_path / "auth.log.1"), ino["auth.log.1"]),
    ]
    assert newer_rotations(str(log), dev, ino["auth.log.1"]) == []
    assert newer_rotations(str(log), dev, ino["other.log.1"]) is None  # not a rotation of this path: no order
    # A "newer" name last written before our file (another numbering, a copytruncate copy): older, never re-read.
    os.utime(tmp_path / "auth.log.2", (900, 900))
    assert newer_rotations(str(log), dev, ino["auth.log.3"]) == [(str(tmp_path / "auth.log.1"), ino["auth.log.1"])]
    for age, stamp in enumerate(("20240101", "20240102", "20240103")):
        (tmp_path / f"app.log-{stamp}").write_text(stamp + "\n")
        os.utime(tmp_path / f"app.log-{stamp}", (2000 + age, 2000 + age))
    app = tmp_path / "app.log"
    first = (tmp_path / "app.log-20240101").stat().st_ino
    assert [name for name, _ in newer_rotations(str(app), dev, first) or []] == [
        str(tmp_path / "app.log-20240102"),
        str(tmp_path / "app.log-20240103"),
    ]


def test_not_a_log_file_names_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert not_a_log_file(str(fifo)) == "is a named pipe (FIFO), not a regular file"
    assert not_a_log_file(str(tmp_path)) == "is a directory, not a regular file"
    assert not_a_log_file("/dev/null") == "is a character device, not a regular file"
    assert not_a_log_file(str(tmp_path / "missing.log")) is None  # may appear later
    (tmp_path / "auth.log").write_text("")
    assert not_a_log_file(str(tmp_path / "auth.log")) is None


def test_sources_never_import_textual() -> None:
    code = "import sys, pilot_tui.sources; sys.exit(any(m.split('.')[0] == 'textual' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False, env=os.environ.copy()).returncode == 0
