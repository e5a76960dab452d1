"""The feed says in words when nothing can arrive: a banner for a stopped daemon (with the fix and the full reason),
none for a receiver's single blip, and it goes away once the receivers run again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ui_sample import sample_orchestrator, screen_text

from pilot_tui.engines import updates as u
from pilot_tui.ui.app import make_app
from pilot_tui.ui.widgets.receiver_banner import ReceiverBanner, receiver_banner_text

pytestmark = pytest.mark.timeout(60)

REASON = "not_running: daemon is not running (socket /tmp/pilot.sock) (hint: start it with: pilotctl daemon start)"


def state(name: str, st: str, detail: str = "", restarts: int = 0) -> u.ReceiverState:
    return u.ReceiverState(at=time.time(), name=name, kind="sdk", state=st, detail=detail, restarts=restarts)


def test_banner_text_by_case() -> None:
    assert receiver_banner_text({"stream": state("stream", "running")}) is None
    assert receiver_banner_text({"stream": state("stream", "restarting", "connection reset", 1)}) is None  # a blip
    down = receiver_banner_text({"stream": state("stream", "restarting", REASON, 7)})
    assert down is not None and down.plain.startswith(" PILOT DAEMON DOWN ")
    assert REASON in down.plain and "retried 7×" in down.plain
    stuck = receiver_banner_text({"inbox": state("inbox", "error", "permission denied: ~/.pilot/inbox")})
    assert stuck is not None and "RECEIVER FAILING" in stuck.plain and "permission denied" in stuck.plain


async def test_the_feed_shows_the_banner_while_the_daemon_is_down(tmp_path: Path) -> None:
    orch = sample_orchestrator(str(tmp_path / "events.db"), 50)
    orch.receivers = {"stream": state("stream", "running"), "inbox": state("inbox", "running")}
    app = make_app(orchestrator=orch, start_engines=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        banner = app.screen.query_one(ReceiverBanner)
        assert not banner.display
        orch.receivers = {"stream": state("stream", "restarting", REASON, 7),
                          "inbox": state("inbox", "restarting", REASON, 7)}
        await pilot.pause(0.7)
        assert banner.display
        text = screen_text(app)
        assert "PILOT DAEMON DOWN" in text and "pilotctl daemon start" in text
        orch.receivers = {"stream": state("stream", "running"), "inbox": state("inbox", "running")}
        await pilot.pause(0.7)
        assert not banner.display
