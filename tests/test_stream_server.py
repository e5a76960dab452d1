"""The Pilot layer's stream servers on pilot-sim: the replying server answers at once; the recv fallback cannot."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks

from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.engines.receiver import REPLY_MAX, is_ack, settle
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.stream import open_stream_listener
from pilot_tui.store.events import EventStore

SIM = str(Path(sys.executable).with_name("pilot-sim"))
pytestmark = pytest.mark.timeout(60)


async def serve(engine: OrchestratorEngine) -> asyncio.Task[None]:
    task = asyncio.create_task(engine.run())
    deadline = time.monotonic() + 10
    while engine.receivers.get("stream") is None or engine.receivers["stream"].state == "starting":
        assert time.monotonic() < deadline, "stream receiver did not start"
        await asyncio.sleep(0.02)
    return task


async def test_batch_connect_gets_stored_ids_well_under_a_second(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("oracle-x", "orch-y", trust=[("oracle-x", "orch-y")])
    engine = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"),
                                OrchestratorConfig(inbox=False))
    task = await serve(engine)
    try:
        assert engine.receivers["stream"].kind == "sim" and engine.receivers["stream"].state == "running"
        sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
        # 1,000 events: the old id-list acknowledgement (~40 KB) came back cut at 1,152 bytes and unreadable
        events = [make_event("203.0.113.7", "brute_force_ssh", "high", sensor="s", seq=i) for i in range(1000)]
        payload = encode_batch(events)
        result = await sender.connect("orch-y", 1000, payload, timeout=5)
        assert len(result.response.encode()) <= REPLY_MAX
        ack = settle(result.response, payload, [e.id for e in events])
        assert ack is not None and ack.stored == [e.id for e in events]
        again = await sender.connect("orch-y", 1000, payload, timeout=5)
        assert settle(again.response, payload, [e.id for e in events]).duplicate == [e.id for e in events]  # type: ignore[union-attr]
        assert result.elapsed < 2.0, f"connect took {result.elapsed:.2f}s"
        seed = b'{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}\n'
        seed_result = await sender.connect("orch-y", 1000, seed, timeout=5)
        assert is_ack(seed_result.response)
        assert settle(seed_result.response, seed, ["seed"]).stored == ["seed"]  # type: ignore[union-attr]
        assert engine.store.total() == 1001
    finally:
        await stop_tasks(task)


async def test_recv_fallback_stores_but_cannot_reply(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("oracle-x", "orch-y", trust=[("oracle-x", "orch-y")])
    engine = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"),
                                OrchestratorConfig(inbox=False, stream_backend="recv"))
    task = await serve(engine)
    try:
        state = engine.receivers["stream"]
        assert state.kind == "recv" and state.state == "degraded" and "cannot reply" in state.detail
        sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
        event = make_event("198.51.100.4", "web_sqli", "high")
        for _ in range(20):  # a connect landing between two recv runs fails: the sender retries
            try:
                result = await sender.connect("orch-y", 1000, encode_batch([event]), timeout=3)
                break
            except Exception:
                await asyncio.sleep(0.05)
        assert result.response == "" and result.elapsed > 0.5  # waited for recv's timer, no ack
        deadline = time.monotonic() + 5
        while engine.store.total() < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert engine.store.get(event.id) is not None
    finally:
        await stop_tasks(task)


async def test_port_in_use_is_reported_and_retried(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("orch-y")
    pilot = Pilotctl(SIM, env=nodes["orch-y"].env)
    first = await open_stream_listener(pilot, 1000, backend="sim")
    engine = OrchestratorEngine(pilot, EventStore(tmp_path / "o.db"), OrchestratorConfig(inbox=False))
    task = asyncio.create_task(engine.run())
    try:
        deadline = time.monotonic() + 10
        while (engine.receivers.get("stream") is None or engine.receivers["stream"].restarts < 1):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert "already bound" in engine.receivers["stream"].detail  # the analyst sees why
        await first.close()  # the port frees up: the supervisor binds it
        while engine.receivers["stream"].state != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await stop_tasks(task)


async def test_sim_connect_passes_on_at_most_1152_bytes_of_a_reply(sim_nodes) -> None:  # type: ignore[no-untyped-def]
    """Parity with real pilotctl 1.18: one read of the reply, at most its first 1,152 bytes (pilotctl-contract.md)."""
    nodes = sim_nodes("oracle-x", "orch-y", trust=[("oracle-x", "orch-y")])
    listener = await open_stream_listener(Pilotctl(SIM, env=nodes["orch-y"].env), 1000, backend="sim")

    async def answer(size: int) -> None:
        conn = await listener.accept()
        await conn.read(65536, 5)
        await conn.write(b"x" * (size - 1) + b"\n")
        await conn.close()

    try:
        sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
        for size, expected in ((1100, 1100), (1152, 1152), (1500, 1152), (40_000, 1152)):
            server = asyncio.create_task(answer(size))
            result = await sender.connect("orch-y", 1000, b'{"a":1}\n', timeout=5)
            await server
            assert len(result.response) == expected, size
    finally:
        await listener.close()
