"""Issue 14 item 9: ``export --follow`` hands a shipper every stored event once, across restarts and kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pilot_tui.model import make_event
from pilot_tui.store.events import EventStore


def _store(state: Path) -> EventStore:
    state.mkdir(mode=0o700, exist_ok=True)
    return EventStore(state / "orchestrator.db")


def _add(store: EventStore, start: int, n: int) -> list[str]:
    events = [make_event(f"203.0.113.{i % 250 + 1}", "brute_force_ssh", "high", sensor="web-1", seq=i + 1,
                         evidence=[f"line {i}"]) for i in range(start, start + n)]
    store.ingest(events)
    return [e.id for e in events]


def _start(state: Path, *extra: str, stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pilot_tui", "export", "--format", "ndjson", "--follow",
                             "--state-dir", str(state), "--interval", "0.05", *extra],
                            stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def _wait_for(path: Path, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines")


def test_follow_writes_new_events_as_they_arrive_and_resumes(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "ecs.ndjson"
    store = _store(state)
    expected = _add(store, 0, 30)
    proc = _start(state, "--output", str(out))
    try:
        _wait_for(out, 30)
        expected += _add(store, 30, 20)  # stored while the export runs
        _wait_for(out, 50)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert _ids(out) == expected
    expected += _add(store, 50, 5)  # stored while it was stopped
    proc = _start(state, "--output", str(out))
    try:
        _wait_for(out, 55)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert _ids(out) == expected  # each once, in arrival order
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    store.close()


def test_a_batch_written_but_not_recorded_is_cut_back_not_duplicated(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out.ndjson"
    store = _store(state)
    expected = _add(store, 0, 10)
    proc = _start(state, "--output", str(out))
    _wait_for(out, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    # a kill after the write but before the cursor save leaves lines the cursor does not cover
    with out.open("ab") as f:
        f.write(out.read_bytes().splitlines(keepends=True)[-1] + b'{"id":"half a li')
    expected += _add(store, 10, 3)
    proc = _start(state, "--output", str(out))
    try:
        _wait_for(out, 13)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert _ids(out) == expected
    store.close()


def test_kill_9_at_any_moment_loses_and_repeats_nothing(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out.ndjson"
    store = _store(state)
    expected = _add(store, 0, 60000)  # 60 cursor batches, ~2 s of writing: most kills land mid-stream
    for delay in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65):
        proc = _start(state, "--output", str(out))
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=10)
    proc = _start(state, "--output", str(out))
    try:
        _wait_for(out, 60000, timeout=60)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert _ids(out) == expected
    store.close()


def test_stdout_reader_that_goes_away_ends_quietly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = _store(state)
    _add(store, 0, 3000)
    proc = _start(state, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert orjson.loads(first)["id"]
    proc.stdout.close()
    _add(store, 3000, 10)
    rc = proc.wait(timeout=15)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0 and "Traceback" not in err, err
    store.close()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--format", "csv", "--follow"], "--follow writes NDJSON or ECS"),
        (["--format", "ndjson", "--output", "x"], "--output and --cursor go with --follow"),
        (["--format", "ndjson", "--follow", "--since", "5m"], "--since does not go with --follow"),
    ],
)
def test_bad_combinations_are_one_line(tmp_path: Path, argv: list[str], needle: str) -> None:
    state = tmp_path / "state"
    _store(state).close()
    out = subprocess.run([sys.executable, "-m", "pilot_tui", "export", *argv, "--state-dir", str(state)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and needle in out.stderr


def test_damaged_cursor_is_refused_not_restarted(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out.ndjson"
    _store(state).close()
    Path(f"{out}.cursor").write_text("not json")
    res = subprocess.run([sys.executable, "-m", "pilot_tui", "export", "--format", "ecs", "--follow", "--output",
                          str(out), "--state-dir", str(state)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "cursor file" in res.stderr and "Traceback" not in res.stderr
    assert os.path.exists(f"{out}.cursor")
