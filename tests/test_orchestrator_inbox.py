"""The orchestrator's inbox receiver on pilot-sim: send-message arrivals are stored once, with the sender's
address, and pruned from the daemon's inbox once stored."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks, wait_for

from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.events import EventStore

SIM = str(Path(sys.executable).with_name("pilot-sim"))
pytestmark = pytest.mark.timeout(60)


async def test_inbox_messages_stored_once_and_pruned(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("oracle-x", "orch-y", trust=[("oracle-x", "orch-y")])
    orch = nodes["orch-y"]
    store = EventStore(tmp_path / "o.db")
    keep = OrchestratorConfig(stream=False, inbox_poll_s=0.2, inbox_prune_every_s=3600)
    sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
    events = [make_event("198.51.100.7", "port_scan", "medium", sensor="edge-1", seq=i) for i in range(3)]
    await sender.send_message("orch-y", encode_batch(events))
    await sender.send_message("orch-y", encode_batch(events))  # a resend: dedup by id
    await sender.send_message("orch-y", b"[bold red]not json\x1b[31m")
    task = asyncio.create_task(OrchestratorEngine(Pilotctl(SIM, env=orch.env), store, keep).run())
    try:
        await wait_for(lambda: store.quarantine_count() >= 1 and store.total() >= 3, "inbox ingested")
        assert {store.get(e.id).sender for e in events} == {nodes["oracle-x"].address}  # type: ignore[union-attr]
    finally:
        await stop_tasks(task)
    assert len(list(orch.inbox.glob("*.json"))) == 3
    # a restart reads the same inbox and ingests nothing twice (the bad message is not quarantined again)
    task = asyncio.create_task(OrchestratorEngine(Pilotctl(SIM, env=orch.env), store, keep).run())
    await asyncio.sleep(1.5)
    await stop_tasks(task)
    assert store.total() == 3 and store.quarantine_count() == 1 and store.quarantine_by_reason() == {"bad_json": 1}
    # pruning clears what is stored and old enough
    prune = OrchestratorConfig(stream=False, inbox_poll_s=0.2, inbox_keep_s=0.5, inbox_prune_every_s=0.3)
    task = asyncio.create_task(OrchestratorEngine(Pilotctl(SIM, env=orch.env), store, prune).run())
    try:
        await wait_for(lambda: not any(orch.inbox.glob("*.json")), "inbox pruned")
    finally:
        await stop_tasks(task)
    assert store.total() == 3
