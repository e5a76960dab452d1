"""The feed with 50,000 stored events still answers keys: filter, detail, jump to the oldest, live arrivals.

The table is a window over the store, so nothing here should depend on the store size; the limits asserted are
generous (CI machines vary) — ``bench/ui_bench.py`` measures the real figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ui_sample import FixedClock, StubPilot, fill_orchestrator, sample_events, screen_text

from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.store.events import EventStore
from pilot_tui.ui.app import make_app
from pilot_tui.ui.widgets.event_detail import EventDetail
from pilot_tui.ui.widgets.feed_table import FeedTable

N = 50_000
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "events.db"
    store = EventStore(path)
    fill_orchestrator(store, N)
    store.close()
    return path


async def timed_press(pilot: Any, *keys: str) -> float:
    started = time.perf_counter()
    await pilot.press(*keys)
    return time.perf_counter() - started


async def test_feed_answers_keys_at_50k_events(big_store: Path) -> None:
    store = EventStore(big_store)
    engine = OrchestratorEngine(StubPilot(), store, OrchestratorConfig(stream=False, inbox=False,
                                                                       exec_node="aws-exec-node"))
    app = make_app(orchestrator=engine, clock=FixedClock())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FeedTable)
        assert table.window.total == N and f"{N:,} events" in screen_text(app)
        # End jumps to the oldest event, Home back to the newest: both are one window fetch
        assert await timed_press(pilot, "end") < 1.0
        assert table.current.event.id == "ev-7-000000"  # type: ignore[union-attr]
        assert await timed_press(pilot, "home") < 1.0
        assert table.current.event.id == f"ev-7-{N - 1:06d}"  # type: ignore[union-attr]
        # a free-text filter shows its first rows at once; the full count (a scan) arrives from a worker thread
        await pilot.press("slash", *"root")
        assert await timed_press(pilot, "enter") < 2.0
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "count"])
        await pilot.pause()
        assert not table.window.counting
        shown = table.window.total
        assert 0 < shown < N and f"showing {shown:,}" in screen_text(app)
        assert await timed_press(pilot, "pagedown", "pagedown", "end") < 2.0
        # Enter opens the detail of the event under the cursor
        assert await timed_press(pilot, "enter") < 1.0
        assert app.screen.query_one(EventDetail).display
        assert "root" in screen_text(app)
        await pilot.press("escape", "escape")
        assert table.window.total == N
        # new events arriving at 50k are counted incrementally, and the view stays where it was
        await pilot.press("down", "down")
        held = table.current.rowid  # type: ignore[union-attr]
        fresh = b"\n".join(e.to_json() for _, e in sample_events(100, seed=5))
        engine.ingest_payload(fresh, sender="0:0000.0000.0b20", transport="stream")
        started = time.perf_counter()
        app.pump()
        await pilot.pause()
        assert time.perf_counter() - started < 1.0
        assert table.window.total == N + 100 and f"{N + 100:,} events" in screen_text(app)
        assert table.current.rowid == held  # type: ignore[union-attr]
    store.close()
