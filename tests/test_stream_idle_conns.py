"""Idle connections must not starve the stream receiver (issue 12 item 7).

Peers that open port 1000 and send nothing used to hold every listener thread (each waiting up to 10 s for a first
byte), so genuine ``connect`` runs went unanswered. On pilot-sim: 100 silent SDK dials are held open, then a real
100-event ``connect`` must still be acknowledged within a second, and the silent ones must be closed by the
receiver once their first-byte deadline passes — with the receiver still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks

from pilot_tui.aiotime import within
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.engines.receiver import settle
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.sim import sdk
from pilot_tui.store.events import EventStore

SIM = str(Path(sys.executable).with_name("pilot-sim"))
IDLE = 100
pytestmark = pytest.mark.timeout(60)


async def serve(engine: OrchestratorEngine) -> asyncio.Task[None]:
    """Run the engine until its stream receiver has bound the port."""
    task = asyncio.create_task(engine.run())
    deadline = time.monotonic() + 10
    while engine.receivers.get("stream") is None or engine.receivers["stream"].state == "starting":
        assert time.monotonic() < deadline, "stream receiver did not start"
        await asyncio.sleep(0.02)
    return task


def open_idle(driver: sdk.Driver, address: str, count: int) -> list[sdk.Conn]:
    """Dial ``count`` streams to port 1000 that never send a byte (run in a thread: dials block)."""
    return [driver.dial(f"{address}:1000", timeout=5) for _ in range(count)]


def closed_by_peer(conns: list[sdk.Conn], by: float) -> int:
    """How many of ``conns`` the receiver closed (we read EOF) before unix time ``by``."""
    closed = 0
    for conn in conns:
        try:
            conn.set_read_deadline(max(by, time.time() + 0.01))
            if conn.read(1) == b"":
                closed += 1
        except sdk.PilotError:  # still open at the deadline
            pass
    return closed


async def test_idle_connections_do_not_starve_a_genuine_connect(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("idler", "oracle-x", "orch-y", trust=[("idler", "orch-y"), ("oracle-x", "orch-y")])
    config = OrchestratorConfig(inbox=False)
    engine = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"), config)
    task = await serve(engine)
    driver = sdk.Driver(nodes["idler"].socket)
    idle: list[sdk.Conn] = []
    try:
        dialed_at = time.time()
        idle = await within(asyncio.to_thread(open_idle, driver, nodes["orch-y"].address, IDLE), 30)
        await asyncio.sleep(0.3)  # let the receiver take them all in: they are now what it is busy with

        sender = Pilotctl(SIM, env=nodes["oracle-x"].env)
        events = [make_event("203.0.113.9", "port_scan", "medium", sensor="s", seq=i) for i in range(100)]
        payload = encode_batch(events)
        start = time.monotonic()
        try:
            result = await sender.connect("orch-y", 1000, payload, timeout=3)
            response = result.response
        except PilotError as exc:  # the old receiver never got to it: connect timed out
            response = f"<no reply: {exc}>"
        elapsed = time.monotonic() - start
        ack = settle(response, payload, [e.id for e in events])
        assert ack is not None, f"connect not acknowledged with {IDLE} idle connections open: {response!r}"
        assert ack.stored == [e.id for e in events]
        assert elapsed < 1.0, f"acknowledged only after {elapsed:.2f}s with {IDLE} idle connections open"

        # the silent ones are closed by the receiver once their first-byte deadline passes, not held for ever
        by = dialed_at + config.first_byte_timeout_s + 1.5
        closed = await within(asyncio.to_thread(closed_by_peer, idle, by), 30)
        assert closed == IDLE, f"only {closed} of {IDLE} idle connections closed by the receiver"
        state = engine.receivers["stream"]
        assert state.state == "running" and state.restarts == 0, state
        assert engine.store.total() == 100
    finally:
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
        driver.close()
        await stop_tasks(task)
