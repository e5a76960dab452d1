"""`pilot-tui demo`'s wiring without the screen: the three emulated nodes, the story and the real engines produce
events at the orchestrator, and a mitigation reaches the executor (dry-run) and comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from task_helpers import stop_tasks

from pilot_tui.commands.demo import demo_world

pytestmark = pytest.mark.timeout(90)


async def test_demo_story_flows_to_the_feed_and_mitigation_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with demo_world(tmp_path) as world:
        pids = [world.cluster[name].pid for name in ("gcp-log-oracle", "local-threat-orchestrator", "aws-exec-node")]
        assert all(pids)
        tasks = [asyncio.create_task(coro) for coro in (
            world.orchestrator.run(), world.oracle.run(), world.executor.run(), world.story(speed=8.0)())]
        try:
            deadline = time.monotonic() + 45
            while world.orchestrator.store.total() < 3:
                assert time.monotonic() < deadline, "no events reached the orchestrator"
                await asyncio.sleep(0.2)
            first = world.orchestrator.store.ids()[0]
            await world.orchestrator.mitigate(first)
            while (world.orchestrator.store.get(first).state != "mitigated"):  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the executor's answer did not come back"
                await asyncio.sleep(0.2)
            assert world.executor.store.active_blocks(), "the executor recorded the (dry-run) block"
            stored = world.orchestrator.store.get(first)
            assert stored is not None and stored.event.sensor == "gcp-log-oracle"
            assert stored.mitigation and stored.mitigation["status"] in ("applied", "already_applied")
        finally:
            await stop_tasks(*tasks)
            await world.executor.close()
    time.sleep(0.5)
    for pid in pids:  # leaving the demo stops every emulated node (gone, or a zombie nobody reaped yet)
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text()
