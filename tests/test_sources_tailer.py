"""File tailing end to end: rotation cases, restarts, partial lines, globs, poll-only and watchdog modes.

Each test drives a real :class:`FileTailer` on files in ``tmp_path`` and plays the engine: it records every batch
and "persists" ``batch.position`` under ``batch.key``. Waiting is always "poll for a condition with a deadline".
The rotation tests run twice: with watchdog and a poll interval too long to matter (so they prove notifications
drive it), and poll-only (so they prove correctness never depends on notifications).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pilot_tui.sources import (
    STATE_DRAINING,
    STATE_FOLLOWING,
    STATE_STARTING,
    STATE_WAITING,
    FileTailer,
    LineBatch,
    TailOptions,
)
from pilot_tui.sources.tailer import file_key

pytestmark = pytest.mark.timeout(20)

POLL = TailOptions(poll_interval=0.05, rotate_wait=0.3, use_watchdog=False)
WATCH = TailOptions(poll_interval=30.0, rotate_wait=0.3, use_watchdog=True)
MODES = pytest.mark.parametrize("opts", [WATCH, POLL], ids=["watchdog", "poll-only"])


class Tail:
    """Runs a tailer in a background task, playing the engine (records batches, persists positions)."""

    def __init__(
        self,
        paths: list[Path | str],
        positions: Mapping[str, Any] | None = None,
        *,
        from_start: bool = False,
        opts: TailOptions = POLL,
    ) -> None:
        self.tailer = FileTailer([str(p) for p in paths], positions, from_start=from_start, options=opts)
        self.batches: list[LineBatch] = []
        self.positions: dict[str, Any] = dict(positions or {})
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tail:
        self._task = asyncio.create_task(self._run())
        # Let the tailer place itself first, so lines written by the test are "new" ones.
        await self.until(self._placed, "start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        await self.tailer.close()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)

    def _placed(self) -> bool:
        stats = self.tailer.stats()
        return bool(stats) and all(s.state != STATE_STARTING for s in stats)

    async def _run(self) -> None:
        async for batch in self.tailer.batches():
            self.batches.append(batch)
            self.positions[batch.key] = batch.position

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b.lines]

    def stat(self, path: Path) -> Any:
        return next(s for s in self.tailer.stats() if s.path == str(path))

    async def until(self, cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; lines={self.lines!r} stats={self.tailer.stats()}"
                )
            await asyncio.sleep(0.01)

    async def lines_are(self, expected: list[str], timeout: float = 5.0) -> None:
        await self.until(lambda: len(self.lines) >= len(expected), f"{len(expected)} lines", timeout)
        await asyncio.sleep(0.1)  # nothing extra (no duplicates) may follow
        assert self.lines == expected


def write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write(text)


def lines(prefix: str, n: int, start: int = 1) -> str:
    return "".join(f"{prefix}{i}\n" for i in range(start, start + n))


# --------------------------------------------------------------------------------------------- start position


async def test_first_run_starts_at_end_and_persists_that_point(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("old", 3))
    async with Tail([log]) as t:
        await t.until(lambda: bool(t.batches), "the start position")
        first = t.batches[0]
        assert first.lines == [] and first.key == file_key(log)
        assert (
            first.position["offset"] == log.stat().st_size
        )  # persisted at once: a restart cannot lose lines
        write(log, lines("new", 2))
        await t.lines_are(["new1", "new2"])
        assert t.stat(log).state == STATE_FOLLOWING


async def test_from_start_reads_history(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("old", 3))
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["old1", "old2", "old3"])


async def test_start_at_end_keeps_an_unfinished_last_line_whole(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "done\nhalf of a li")
    async with Tail([log]) as t:
        await t.until(lambda: bool(t.batches), "the start position")
        write(log, "ne\n")
        await t.lines_are(["half of a line"])


# --------------------------------------------------------------------------------------------- partial lines


@MODES
async def test_partial_last_line_is_held_until_its_newline(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log], opts=opts) as t:
        write(log, "first\nsecond half")
        await t.lines_are(["first"])
        assert t.positions[file_key(log)]["offset"] == len("first\n")  # never past a line boundary
        write(log, "-written\r\n")
        await t.lines_are(["first", "second half-written"])


async def test_overlong_line_is_cut_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    opts = TailOptions(poll_interval=0.05, use_watchdog=False, max_line_bytes=1024, read_chunk_bytes=300)
    async with Tail([log], opts=opts) as t:
        write(log, "x" * 5000)
        await asyncio.sleep(0.2)
        assert t.lines == []
        write(log, "y" * 10 + "\nafter\n")
        await t.lines_are(["x" * 1024, "after"])
        assert t.stat(log).lines_cut == 1


async def test_batches_are_capped(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("l", 5000))
    opts = TailOptions(poll_interval=0.05, use_watchdog=False, max_batch_lines=700)
    async with Tail([log], from_start=True, opts=opts) as t:
        await t.lines_are([f"l{i}" for i in range(1, 5001)])
        assert max(len(b.lines) for b in t.batches) <= 700


# --------------------------------------------------------------------------------------------- rotation


@MODES
async def test_rename_rotation_drains_old_file_then_switches(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    writer = open(log, "a", encoding="utf-8", buffering=1)  # the daemon's handle, kept across the rename
    try:
        async with Tail([log], opts=opts) as t:
            writer.write(lines("a", 2))
            await t.lines_are(["a1", "a2"])
            log.rename(tmp_path / "auth.log.1")
            writer.write("a3\n")  # after the rename, before the daemon reopens: must not be lost
            write(log, "b1\n")  # logrotate's `create` + a new line in the new file
            await t.until(lambda: "a3" in t.lines, "the old file's late line")
            writer.write("a4\n")  # still inside the grace period
            writer.close()
            await t.lines_are(["a1", "a2", "a3", "a4", "b1"])
            s = t.stat(log)
            assert s.rotations == 1 and s.state == STATE_FOLLOWING and s.inode == log.stat().st_ino
    finally:
        writer.close()


@MODES
async def test_copytruncate_restarts_at_zero(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log], opts=opts) as t:
        write(log, lines("a", 5))
        await t.lines_are([f"a{i}" for i in range(1, 6)])
        shutil.copy(log, tmp_path / "auth.log.1")
        os.truncate(log, 0)
        await t.until(lambda: t.stat(log).truncations == 1, "the shrink")
        write(log, "b1\n")
        await t.lines_are([f"a{i}" for i in range(1, 6)] + ["b1"])
        assert t.positions[file_key(log)]["offset"] == 3


@MODES
async def test_missing_file_is_awaited_then_read_from_zero(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    async with Tail([log], opts=opts) as t:  # start-at-end default does not apply to a file born later
        await t.until(lambda: t.stat(log).state == STATE_WAITING, "waiting state")
        write(log, lines("n", 2))
        await t.lines_are(["n1", "n2"])


@MODES
async def test_deleted_and_recreated(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log], opts=opts) as t:
        write(log, "a1\n")
        await t.lines_are(["a1"])
        log.unlink()
        await t.until(lambda: t.stat(log).state == STATE_WAITING, "waiting after deletion")
        write(log, "b1\nb2\n")
        await t.lines_are(["a1", "b1", "b2"])
        assert t.stat(log).rotations == 1


async def test_drain_state_is_visible_during_grace(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    opts = TailOptions(poll_interval=0.05, rotate_wait=1.0, use_watchdog=False)
    async with Tail([log], from_start=True, opts=opts) as t:
        await t.lines_are(["a1"])
        log.rename(tmp_path / "auth.log.1")
        write(log, "b1\n")
        await t.until(lambda: t.stat(log).state == STATE_DRAINING, "draining state")
        await t.lines_are(["a1", "b1"], timeout=5)


def shift(log: Path, keep: int = 5) -> None:
    """logrotate's ``rotate N`` + ``create``: .N-1 -> .N ... log -> .1, then an empty file at the path."""
    for n in range(keep - 1, 0, -1):
        older = log.with_name(f"{log.name}.{n}")
        if older.exists():
            older.rename(log.with_name(f"{log.name}.{n + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))
    log.touch()


@MODES
async def test_a_second_shift_while_the_first_file_drains_loses_nothing(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    writer = open(log, "a", encoding="utf-8", buffering=1)  # the daemon's handle, kept across the first rename
    try:
        async with Tail([log], opts=opts) as t:
            writer.write(lines("a", 2))
            await t.lines_are(["a1", "a2"])
            shift(log)
            writer.write("a3\n")  # the writer has not reopened yet
            write(log, "b1\nb2\n")
            shift(log)  # well inside the first file's grace period: b's file is now auth.log.1
            write(log, "c1\n")
            writer.close()
            await t.lines_are(["a1", "a2", "a3", "b1", "b2", "c1"])
            s = t.stat(log)
            assert s.rotations == 2 and s.state == STATE_FOLLOWING and s.inode == log.stat().st_ino
    finally:
        writer.close()


@MODES
async def test_a_new_file_deleted_soon_after_a_rename_is_read(tmp_path: Path, opts: TailOptions) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log], opts=opts) as t:
        write(log, "a1\n")
        await t.lines_are(["a1"])
        log.rename(tmp_path / "auth.log.1")
        write(log, "b1\nb2\n")
        await t.until(lambda: t.stat(log).generations_waiting == 1, "the new file to be held open")
        assert t.stat(log).state == STATE_DRAINING and t.lines == ["a1"]  # the old file's grace comes first
        log.unlink()
        write(log, "c1\n")
        await t.lines_are(["a1", "b1", "b2", "c1"])
        assert t.stat(log).rotations == 2


async def test_restart_reads_every_generation_rotated_while_stopped(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["a1"])
        stored = dict(t.positions)
    write(log, "a2\n")
    shift(log)
    write(log, "b1\n")
    shift(log)
    write(log, "c1\n")
    async with Tail([log], stored) as t:  # a1's file is auth.log.2 now; b's is auth.log.1
        await t.lines_are(["a2", "b1", "c1"])
        assert t.stat(log).state == STATE_FOLLOWING


async def test_restart_while_generations_wait_resumes_the_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    opts = TailOptions(poll_interval=0.05, rotate_wait=30.0, use_watchdog=False)
    async with Tail([log], from_start=True, opts=opts) as t:
        await t.lines_are(["a1"])
        shift(log)
        write(log, "b1\n")
        await t.until(lambda: t.stat(log).generations_waiting == 1, "the new file to be held")
        stored = dict(t.positions)  # still on a's file: b1 is not read before a's grace is over
    assert stored[file_key(log)]["ino"] == (tmp_path / "auth.log.1").stat().st_ino
    shift(log)
    write(log, "c1\n")
    async with Tail([log], stored) as t:
        await t.lines_are(["b1", "c1"])


async def test_a_fifo_at_the_path_is_an_error_state_and_never_blocks(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    os.mkfifo(log)
    async with Tail([log]) as t:
        await t.until(lambda: t.stat(log).state.startswith("error: is a named pipe (FIFO)"), "error state")
    # Leaving the block closed the tailer within its 5 s bound: opening the FIFO did not wait for a writer.
    log.unlink()


def _special(kind: str, tmp_path: Path) -> tuple[str, object]:
    """A non-regular file of ``kind`` (and what keeps it alive)."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "auth.log")
        return str(tmp_path / "auth.log"), None
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(tmp_path / "auth.log"))
        return str(tmp_path / "auth.log"), sock
    return "/dev/null", None


@pytest.mark.parametrize(
    ("kind", "says"),
    [("fifo", "is a named pipe (FIFO)"), ("socket", "is a socket"), ("chardev", "is a character device")],
)
def test_oracle_refuses_a_log_that_is_not_a_regular_file_in_one_line(
    tmp_path: Path, kind: str, says: str
) -> None:
    path, keep = _special(kind, tmp_path)
    env = {**os.environ, "PILOTCTL": "/nonexistent/pilotctl"}
    proc = subprocess.run(
        [sys.executable, "-m", "pilot_tui", "oracle", "--headless", "--peer", "nobody", "--log", path,
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=15, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"pilot-tui oracle: --log {path}: {says}, not a regular file"]
    del keep


# --------------------------------------------------------------------------------------------- globs


@MODES
async def test_glob_picks_up_new_files_and_ignores_rotated_ones(tmp_path: Path, opts: TailOptions) -> None:
    write(tmp_path / "auth.log", "")
    write(tmp_path / "auth.log.1", "rotated\n")
    (tmp_path / "auth.log.2.gz").write_bytes(b"\x1f\x8b\x08\x00gzip")
    write(tmp_path / "auth.log-20240101", "dateext\n")
    async with Tail([tmp_path / "*.log*"], opts=opts) as t:
        await t.until(lambda: bool(t.batches), "start")
        assert [s.path for s in t.tailer.stats()] == [str(tmp_path / "auth.log")]
        write(tmp_path / "web.log", "w1\n")  # born after start: read from 0
        await t.lines_are(["w1"])
        write(tmp_path / "auth.log", "a1\n")
        write(tmp_path / "web.log.3.gz", "ignored\n")
        await t.lines_are(["w1", "a1"])
        assert sorted(s.path for s in t.tailer.stats()) == [
            str(tmp_path / "auth.log"),
            str(tmp_path / "web.log"),
        ]


async def test_glob_rotation_to_a_matching_name_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1\na2\n")
    async with Tail([tmp_path / "*.log"], from_start=True) as t:
        await t.lines_are(["a1", "a2"])
        log.rename(tmp_path / "app-old.log")  # matches *.log and is no "rotated" name
        write(tmp_path / "app-old.log", "a3\n")
        write(log, "b1\n")
        await t.until(
            lambda: len(t.tailer.stats()) == 2, "the renamed file to be followed under its new name"
        )
        write(tmp_path / "app-old.log", "a4\n")
        await t.until(lambda: {"a3", "a4", "b1"} <= set(t.lines), "all lines")
        await asyncio.sleep(0.2)
        assert sorted(t.lines) == ["a1", "a2", "a3", "a4", "b1"]


async def test_glob_without_matches_shows_waiting(tmp_path: Path) -> None:
    async with Tail([tmp_path / "*.log"]) as t:
        await t.until(lambda: bool(t.tailer.stats()), "stats")
        assert [s.state for s in t.tailer.stats()] == [STATE_WAITING]


# --------------------------------------------------------------------------------------------- restarts


async def test_restart_resumes_without_loss_or_repeat(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("a", 3))
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["a1", "a2", "a3"])
        stored = dict(t.positions)
    write(log, lines("a", 3, start=4))  # written while the oracle is down
    async with Tail([log], stored) as t:  # default start-at-end must not apply: there is a position
        await t.lines_are(["a4", "a5", "a6"])
        write(log, "a7\n")
        await t.lines_are(["a4", "a5", "a6", "a7"])


async def test_crash_before_persisting_rereads_never_skips(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log]) as t:
        await t.until(lambda: bool(t.batches), "start")
        write(log, "a1\n")
        await t.lines_are(["a1"])
        committed = dict(t.positions)  # the engine committed up to a1 ...
        write(log, "a2\n")
        await t.lines_are(["a1", "a2"])  # ... then processed a2 but died before its commit
    async with Tail([log], committed) as t:
        await t.lines_are(["a2"])


async def test_restart_after_rotation_while_stopped_drains_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["a1"])
        stored = dict(t.positions)
    write(log, "a2\n")
    log.rename(tmp_path / "auth.log.1")
    write(log, "b1\n")
    async with Tail([log], stored) as t:
        await t.lines_are(["a2", "b1"])
        assert t.stat(log).state == STATE_FOLLOWING


async def test_different_file_moved_into_place_is_read_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("a", 3))
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["a1", "a2", "a3"])
        stored = dict(t.positions)
    other = tmp_path / "staging"
    write(other, "x1\nx2\nx3\nx4\n")  # longer than the stored offset, so size alone would not tell
    os.replace(other, log)
    async with Tail([log], stored) as t:
        await t.lines_are(["x1", "x2", "x3", "x4"])


async def test_same_inode_new_content_is_read_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("a", 3))
    async with Tail([log], from_start=True) as t:
        await t.lines_are(["a1", "a2", "a3"])
        stored = dict(t.positions)
    ino = log.stat().st_ino
    write(log, "z1\nz2\nz3\nz4\n", mode="w")  # truncated and refilled in place while stopped (inode kept)
    assert log.stat().st_ino == ino
    async with Tail([log], stored) as t:
        await t.lines_are(["z1", "z2", "z3", "z4"])


async def test_malformed_stored_position_is_ignored(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    async with Tail([log], {file_key(log): {"v": 1, "offset": "nope"}}) as t:
        await t.until(lambda: bool(t.batches), "start")
        write(log, "a2\n")
        await t.lines_are(["a2"])


# --------------------------------------------------------------------------------------------- modes & stats


async def test_watchdog_notification_beats_the_poll_timer(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "")
    async with Tail([log], opts=TailOptions(poll_interval=60.0, use_watchdog=True)) as t:
        await t.until(lambda: bool(t.batches), "start")
        write(log, "fast\n")
        await t.lines_are(["fast"], timeout=3.0)


async def test_unreadable_file_is_an_error_state_then_recovers(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    log = tmp_path / "auth.log"
    write(log, "a1\n")
    log.chmod(0)
    async with Tail([log], from_start=True) as t:
        await t.until(lambda: t.stat(log).state.startswith("error: permission denied"), "error state")
        log.chmod(0o600)
        await t.lines_are(["a1"])


async def test_stats_report_size_offset_inode_rate(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, lines("a", 50))
    async with Tail([log], from_start=True) as t:
        await t.until(lambda: len(t.lines) == 50, "lines")
        s = t.stat(log)
        size = log.stat().st_size
        assert (s.size, s.offset, s.inode, s.lines_total) == (size, size, log.stat().st_ino, 50)
        assert s.lines_per_s > 0 and s.key == file_key(log)


async def test_directory_in_place_of_the_file_is_an_error_state(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.mkdir()
    async with Tail([log]) as t:
        await t.until(lambda: t.stat(log).state.startswith("error: is a directory"), "error state")
        log.rmdir()
        write(log, "")
        await t.until(lambda: t.stat(log).state == STATE_FOLLOWING, "recovery")
        write(log, "a1\n")
        await t.lines_are(["a1"])
