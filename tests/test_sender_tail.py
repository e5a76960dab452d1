"""Tail control on pilot-sim: a slow connect must not hold up the events behind it.

pilot-sim's ``slow_rate``/``slow_ms`` faults make a random fraction of dials slow (scaled up here — 20 % of dials,
1.5 s each — so a short run shows it). With hedging on (``PILOT_TUI_HEDGE=1``) the sender keeps several batches in
flight and sends a batch once more when it is unanswered well past the recent median; ids make the duplicate
harmless. (On real 1.18 daemons the tail has another cause, the receiver's SYN rate limit, which extra streams feed:
there hedging stays off and ``-syn-whitelist`` removes the tail; see ``bench/real_bench.py``.)
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks

from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.engines.sender import Sender
from pilot_tui.model import make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox

SIM = str(Path(sys.executable).with_name("pilot-sim"))
SLOW_S = 1.5
pytestmark = pytest.mark.timeout(120)


async def _run_once(nodes, tmp_path: Path, name: str, *, hedge: bool, n: int = 24) -> tuple[list[float], int]:  # type: ignore[no-untyped-def]
    """Send ``n`` events one every 0.1 s through a Sender to an orchestrator on the sim; each event's latency
    (recorded in the outbox → stored at the orchestrator, seconds) and how many sends were hedges."""
    store = EventStore(tmp_path / f"{name}-orch.db")
    engine = OrchestratorEngine(Pilotctl(SIM, env=nodes["tail-orch"].env), store, OrchestratorConfig(inbox=False))
    orch = asyncio.create_task(engine.run())
    outbox = Outbox(tmp_path / f"{name}-oracle.db")
    bus = u.UpdateBus()
    results: list[u.SendResult] = []
    bus.subscribe(lambda x: results.append(x) if isinstance(x, u.SendResult) else None)
    sender = Sender(Pilotctl(SIM, env=nodes["tail-oracle"].env), outbox, bus, peer="tail-orch", hedge=hedge,
                    inflight=4 if hedge else 1, connect_timeout=10)
    task = asyncio.create_task(sender.run())
    try:
        while engine.receivers.get("stream") is None or engine.receivers["stream"].state != "running":
            await asyncio.sleep(0.02)
        evs = [make_event(f"203.0.113.{i + 1}", "brute_force_ssh", "high", sensor=name, seq=i) for i in range(n + 1)]
        outbox.record(evs[:1], {})  # a warm-up send gives the sender its first timing
        sender.wake()
        deadline = time.monotonic() + 20
        while outbox.depth():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        results.clear()
        recorded: dict[str, float] = {}
        for event in evs[1:]:
            recorded[event.id] = time.time()
            outbox.record([event], {})
            sender.wake()
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while outbox.depth() or store.total() < n + 1:
            assert time.monotonic() < deadline, f"{outbox.depth()} still pending"
            await asyncio.sleep(0.05)
        assert sorted(store.ids()) == sorted(e.id for e in evs)  # every event once, hedges or not
        latencies = [store.get(i).received_at - t for i, t in recorded.items()]  # type: ignore[union-attr]
    finally:
        await stop_tasks(task, orch)
        outbox.close()
        store.close()
    return latencies, sum(r.hedged for r in results)


async def test_hedged_sends_cut_the_slow_tail(sim_nodes, tmp_path: Path) -> None:  # noqa: F811
    nodes = sim_nodes("tail-oracle", "tail-orch", trust=[("tail-oracle", "tail-orch")],
                      faults={"tail-orch": {"slow_rate": 0.2, "slow_ms": SLOW_S * 1000, "seed": 1}})
    plain, _ = await _run_once(nodes, tmp_path, "plain", hedge=False)
    hedged, hedges = await _run_once(nodes, tmp_path, "hedged", hedge=True)
    slow_plain = [x for x in plain if x >= 0.8]
    slow_hedged = [x for x in hedged if x >= 0.8]
    # one send at a time, no hedge: a slow dial holds its events and every event queued behind it
    # (seeds 1-6 gave 9-23 of 24 events over 0.8 s)
    assert len(slow_plain) >= 6, sorted(round(x, 2) for x in plain)
    # several in flight + hedging: an event waits that long only when its hedge is slow too (~1 in 25; seeds 1-6
    # gave 0-3)
    assert len(slow_hedged) <= min(3, len(slow_plain) // 3), sorted(round(x, 2) for x in hedged)
    assert hedges >= 1
