"""End to end through pilot-sim: the analyst presses ``m`` in the feed, confirms, a real executor engine on an
emulated node applies the block (dry-run) and answers, and the outcome shows on the row and in the executor view.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sim_fixtures = pytest.importorskip("sim_fixtures")

from ui_sample import fill_orchestrator, screen_text  # noqa: E402

from pilot_tui.engines.executor import ExecutorEngine  # noqa: E402
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine  # noqa: E402
from pilot_tui.pilot.driver import Pilotctl  # noqa: E402
from pilot_tui.store.events import EventStore  # noqa: E402
from pilot_tui.ui.app import make_app  # noqa: E402
from pilot_tui.ui.widgets.feed_table import FeedTable  # noqa: E402

pytestmark = pytest.mark.timeout(60)
sim_cluster = sim_fixtures.sim_cluster
sim_nodes = sim_fixtures.sim_nodes

ORCH, EXEC = "local-threat-orchestrator", "aws-exec-node"


def sim_binary() -> str:
    found = Path(sys.executable).parent / "pilot-sim"
    return str(found) if found.exists() else shutil.which("pilot-sim") or "pilot-sim"


async def test_mitigate_through_a_pilot_sim_executor(sim_nodes: Callable[..., Any], tmp_path: Path) -> None:
    nodes = sim_nodes(ORCH, EXEC, trust=[(ORCH, EXEC)])
    store = EventStore(tmp_path / "events.db")
    fill_orchestrator(store, 120)
    orchestrator = OrchestratorEngine(
        Pilotctl(sim_binary(), env=nodes[ORCH].env), store,
        OrchestratorConfig(stream=False, inbox=False, exec_node=EXEC, analyst="analyst"))
    executor = ExecutorEngine(Pilotctl(sim_binary(), env=nodes[EXEC].env), tmp_path / "executor.db",
                              obey=[ORCH], poll_interval=0.2, discover_own_ips=False)
    app = make_app(orchestrator=orchestrator, executor=executor)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FeedTable)
        target = table.current
        assert target is not None
        # "m" asks for confirmation; "y" sends the request to the executor node in a worker
        await pilot.press("m", "y")
        intents = [w for w in app.workers if w.group.startswith("intent:")]
        await app.workers.wait_for_complete(intents)
        for _ in range(50):  # the reply may also arrive a little later
            if store.get(target.event.id).state == "mitigated":
                break
            await pilot.pause(0.1)
        app.pump()
        await pilot.pause()
        assert store.get(target.event.id).state == "mitigated"
        row = next(line for line in screen_text(app).splitlines() if target.event.source_ip in line)
        assert "blocked" in row
        assert executor.store.get_block(target.event.source_ip) is not None
        # "2" shows the executor view: the applied block, its expiry and the dry-run banner
        await pilot.press("2")
        app.pump()
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "DRY-RUN" in text and target.event.source_ip in text and "applied" in text
    await executor.close()
    store.close()
