"""A starting oracle says at once what it watches and how its peer stands (files, journal, daemon, trust, probe),
as notices — JSON lines when headless — and its status line never waits on a first send to leave ``unknown``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from ui_sample import StubPilot, sample_oracle

from pilot_tui.commands.doctor import announce_start, journal_problem, watched_files
from pilot_tui.engines import updates as u
from pilot_tui.pilot.driver import DaemonStatus

pytestmark = pytest.mark.timeout(60)


def test_watched_files_say_found_missing_and_unmatched(tmp_path: Path) -> None:
    (tmp_path / "auth.log").write_text("x\n")
    got = dict(watched_files([str(tmp_path / "auth.log"), str(tmp_path / "gone.log"), str(tmp_path / "*.gz")]))
    assert got == {str(tmp_path / "auth.log"): "found", str(tmp_path / "gone.log"): "missing, waiting for it",
                   str(tmp_path / "*.gz"): "no match yet"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_log_is_named(tmp_path: Path) -> None:
    secret = tmp_path / "secret.log"
    secret.write_text("x\n")
    secret.chmod(0)
    assert watched_files([str(secret)])[0][1].startswith("unreadable")


def test_journal_problem_names_what_is_missing(tmp_path: Path) -> None:
    assert "not found" in (journal_problem("no-such-journalctl-here") or "")
    absent = [str(tmp_path / "var-log-journal"), str(tmp_path / "run-log-journal")]
    assert "no systemd journal on this host" in (journal_problem(sys.executable, absent) or "")
    empty = tmp_path / "var-log-journal"
    (empty / "0123abcd").mkdir(parents=True)
    assert "no journal files under" in (journal_problem(sys.executable, [str(empty)]) or "")
    (empty / "0123abcd" / "system.journal").write_bytes(b"LPKSHHRH")
    assert journal_problem(sys.executable, [str(empty)]) is None


class DownPilot(StubPilot):
    async def daemon_status(self) -> DaemonStatus:  # type: ignore[override]
        return DaemonStatus(False, False, None, None, None, None, None, {})


async def test_a_stopped_daemon_is_said_at_once_and_shown_as_daemon_down(tmp_path: Path) -> None:
    engine = sample_oracle(str(tmp_path), pilot=DownPilot())
    seen: list[Any] = []
    engine.bus.subscribe(seen.append)
    assert engine.sender.peer_state == "unknown"
    await announce_start(engine, [str(tmp_path / "auth.log")], None)
    notices = [x.message for x in seen if isinstance(x, u.Notice)]
    assert notices[0] == f"watching {tmp_path / 'auth.log'} (missing, waiting for it)"
    assert "daemon is not running" in notices[-1] and "pilotctl daemon start" in notices[-1]
    assert engine.sender.peer_state == "daemon-down"
    assert [x.state for x in seen if isinstance(x, u.PeerState)] == ["daemon-down"]


async def test_a_send_result_wins_over_the_start_check(tmp_path: Path) -> None:
    engine = sample_oracle(str(tmp_path), pilot=DownPilot())
    engine.sender._set_peer("reachable", "a send went through")  # the sender spoke first
    await announce_start(engine, [], None)
    assert engine.sender.peer_state == "reachable"


def test_headless_oracle_prints_files_and_peer_within_seconds(tmp_path: Path) -> None:
    """No daemon, a missing log: both said on stdout at once (it used to print nothing for 25 s)."""
    sim = Path(sys.executable).with_name("pilot-sim")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(tmp_path), "PILOT_SOCKET": str(tmp_path / "none.sock")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilot_tui", "oracle", "--headless", "--peer", "local-threat-orchestrator",
         "--log", str(tmp_path / "auth.log"), "--state-dir", str(state), "--pilotctl", str(sim)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any(x.get("type") == "PeerState" for x in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(orjson.loads(line))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    messages = [x.get("message", "") for x in lines if x.get("type") == "Notice"]
    assert any("auth.log (missing, waiting for it)" in m for m in messages), lines
    assert any(x.get("type") == "PeerState" and x["state"] == "daemon-down" for x in lines), lines


async def test_r_while_paused_says_why_nothing_is_sent_and_sends_once_resumed(tmp_path: Path) -> None:
    from pilot_tui.ui.app import make_app

    engine = sample_oracle(str(tmp_path))  # 12 events pending
    app = make_app(oracle=engine, start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("p", "r")
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
        assert messages[-1] == "sending is paused: nothing is sent until you resume it (p)"
        await pilot.press("p", "r")
        await pilot.pause()
        assert [str(n.message) for n in app._notifications][-1] == "sending 12 pending event(s) now"
