"""Issue 12/13: an unsafe or unusable state directory ends in one clear line, never a traceback or a followed link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pilot_tui.cli import main

MODES: dict[str, list[str]] = {
    "orchestrator": ["orchestrator", "--headless", "--pilotctl", "/bin/true"],
    "executor": ["executor", "--headless", "--pilotctl", "/bin/true"],
    "export": ["export", "--format", "ndjson"],
}


def _oracle_args(tmp_path: Path) -> list[str]:
    log = tmp_path / "auth.log"
    log.write_text("")
    return ["oracle", "--headless", "--pilotctl", "/bin/true", "--peer", "orch", "--log", str(log)]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["orchestrator", "executor", "oracle"])
def test_symlinked_db_is_refused_and_victim_untouched(tmp_path: Path, mode: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    (state / f"{mode}.db").symlink_to(victim)
    argv = _oracle_args(tmp_path) if mode == "oracle" else MODES[mode]
    rc, lines = _run([*argv, "--state-dir", str(state)], capsys)
    assert rc == 1
    assert len(lines) == 1 and "symbolic link" in lines[0], lines
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert victim.read_text() == "precious\n"


def test_dangling_link_creates_nothing_at_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.db"
    (state / "orchestrator.db").symlink_to(target)
    rc, lines = _run([*MODES["orchestrator"], "--state-dir", str(state)], capsys)
    assert rc == 1 and len(lines) == 1 and "symbolic link" in lines[0]
    assert not target.exists()


def test_symlinked_wal_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("x")
    (state / "executor.db-wal").symlink_to(victim)
    rc, lines = _run([*MODES["executor"], "--state-dir", str(state)], capsys)
    assert rc == 1 and len(lines) == 1 and "executor.db-wal" in lines[0]
    assert victim.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root")
def test_world_writable_dir_of_another_user_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    os.chown(state, 12345, -1)
    rc, lines = _run([*MODES["orchestrator"], "--state-dir", str(state)], capsys)
    assert rc == 1 and len(lines) == 1 and "owned by uid 12345" in lines[0]
    assert list(state.iterdir()) == []


def test_world_writable_own_dir_is_refused_with_a_chmod_hint(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    rc, lines = _run([*MODES["executor"], "--state-dir", str(state)], capsys)
    assert rc == 1 and len(lines) == 1 and f"chmod 700 {state}" in lines[0]
    assert list(state.iterdir()) == []


@pytest.mark.parametrize("mode", ["orchestrator", "executor", "oracle", "export", "follow"])
def test_state_dir_that_cannot_be_created_is_one_line(tmp_path: Path, mode: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    state = blocker / "state"  # mkdir fails even for root: its parent is a regular file
    if mode == "oracle":
        argv = _oracle_args(tmp_path)
    elif mode == "follow":
        argv = ["follow", "broker", "--headless", "--pilotctl", "/bin/true"]
    else:
        argv = MODES[mode]
    rc, lines = _run([*argv, "--state-dir", str(state)], capsys)
    assert rc == 1
    assert len(lines) == 1 and str(state) in lines[0], lines


def _cli(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pilot_tui", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("mode", ["export", "orchestrator"])
def test_garbage_database_is_one_line(tmp_path: Path, mode: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "orchestrator.db"
    db.write_bytes(os.urandom(8192))
    db.chmod(0o600)
    argv = MODES["export"] if mode == "export" else MODES["orchestrator"]
    out = _cli(*argv, "--state-dir", str(state))
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "corrupt" in lines[0] and str(db) in lines[0]


def test_export_of_a_page_corrupted_database_ends_in_one_line(tmp_path: Path) -> None:
    from pilot_tui.model import make_event
    from pilot_tui.store.events import EventStore

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "orchestrator.db"
    store = EventStore(db)
    store.ingest([make_event(f"203.0.113.{i % 200 + 1}", "brute_force_ssh", "high", sensor="web-1", seq=i,
                             evidence=["x" * 200]) for i in range(400)])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray(db.read_bytes())
    page = 4096
    for off in range(page * (len(raw) // page // 2), len(raw), page):
        raw[off:off + 64] = os.urandom(64)  # scribble over the second half's page headers
    db.write_bytes(bytes(raw))
    out = _cli(*MODES["export"], "--state-dir", str(state))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert len([line for line in out.stderr.splitlines() if line.strip()]) == 1
