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
            # the executor's operator lifts the block: the orchestrator learns it ended (and quarantines nothing)
            request_id = stored.mitigation["request_id"]
            await world.executor.lift_block(stored.event.source_ip)
            while (world.orchestrator.store.mitigation(request_id) or {}).get("status") != "expired":
                assert time.monotonic() < deadline, "the orchestrator never heard the block was lifted"
                await asyncio.sleep(0.2)
            assert "lifted early by the operator" in world.orchestrator.store.mitigation(request_id)["detail"]
            assert "unexpected_result" not in world.orchestrator.store.quarantine_by_reason()
        finally:
            await stop_tasks(*tasks)
            await world.executor.close()
    time.sleep(0.5)
    for pid in pids:  # leaving the demo stops every emulated node (gone, or a zombie nobody reaped yet)
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text()


async def test_the_story_fills_every_panel_attackers_quarantine_and_trust(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sped up 4×: several attackers in the feed, the hostile payload in the quarantine, a handshake pending."""
    with demo_world(tmp_path) as world:
        tasks = [asyncio.create_task(coro) for coro in (
            world.orchestrator.run(), world.oracle.run(), world.executor.run(), world.story(speed=4.0)())]
        try:
            deadline = time.monotonic() + 45
            while True:
                rows = world.orchestrator.store.conn.execute("SELECT DISTINCT source_ip FROM events").fetchall()
                pending = await world.orchestrator.pending_handshakes()
                if (len(rows) >= 3 and world.orchestrator.store.quarantine_count() >= 1 and pending):
                    break
                assert time.monotonic() < deadline, (rows, world.orchestrator.store.quarantine_count(), pending)
                await asyncio.sleep(0.3)
            assert any("edge-proxy-4" in str(p.get("justification")) for p in pending)
            assert world.orchestrator.store.quarantine_by_reason()
        finally:
            await stop_tasks(*tasks)
            await world.executor.close()


def test_keep_dir_leaves_a_store_export_reads(tmp_path: Path) -> None:
    import subprocess
    import sys

    kept = tmp_path / "kept"
    kept.mkdir(mode=0o700)
    with demo_world(kept, walk_ons=False) as world:
        from ui_sample import sample_events

        [(sender, event)] = list(sample_events(1))
        world.orchestrator.store.ingest([event], sender=sender, transport="stream")
    assert not (kept / "sim").exists() and (kept / "orchestrator.db").exists()
    out = subprocess.run([sys.executable, "-m", "pilot_tui", "export", "--state-dir", str(kept), "--format", "ndjson"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1
