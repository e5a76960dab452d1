"""The orchestrator's inbox receiver on pilot-sim: send-message arrivals are stored once, with the sender's
address, and pruned from the daemon's inbox once stored; at rest it does not keep listing the inbox."""

from __future__ import annotations

import asyncio
import sys
import time
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


class CountingPilotctl(Pilotctl):
    """The real driver, noting the flags of every inbox listing it runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.listings: list[tuple[str, ...]] = []

    async def inbox_listing(self, *flags: str):  # type: ignore[no-untyped-def]
        self.listings.append(flags)
        return await super().inbox_listing(*flags)


async def test_an_idle_orchestrator_does_not_keep_listing_its_inbox(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # measured on real 1.18 daemons: the watcher took its own reads of the inbox files for new mail and listed the
    # whole inbox (--full) back to back — ~1.1 cores with 860 messages, while nothing happened
    nodes = sim_nodes("oracle-x", "orch-y", trust=[("oracle-x", "orch-y")])
    orch = nodes["orch-y"]
    store = EventStore(tmp_path / "o.db")
    sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
    events = [make_event("198.51.100.7", "port_scan", "medium", sensor="edge-1", seq=i) for i in range(20)]
    for event in events:
        await sender.send_message("orch-y", encode_batch([event]))
    pilot = CountingPilotctl(SIM, env=orch.env)
    config = OrchestratorConfig(stream=False, inbox_poll_s=0.2, inbox_prune_every_s=3600)
    task = asyncio.create_task(OrchestratorEngine(pilot, store, config).run())
    try:
        await wait_for(lambda: store.total() == 20, "inbox ingested")
        await asyncio.sleep(0.5)
        before = len(pilot.listings)
        await asyncio.sleep(2.0)
        assert len(pilot.listings) == before, pilot.listings[before:before + 5]
        # and a new message still lands at once, without a full re-read of the inbox
        began = time.monotonic()
        late = make_event("198.51.100.8", "port_scan", "medium", sensor="edge-1", seq=99)
        await sender.send_message("orch-y", encode_batch([late]))
        await wait_for(lambda: store.get(late.id) is not None, "the new message stored", timeout=5.0)
        assert time.monotonic() - began < 3.0
    finally:
        await stop_tasks(task)
    assert all("--since" in f or "--full" not in f for f in pilot.listings)  # never every body again
