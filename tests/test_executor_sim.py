"""End to end over pilot-sim: an orchestrator-like node asks, the executor engine applies (dry-run) and answers.

What this shows about replies (pilot-sim follows pilotctl 1.18 here): the executor's ``send-message <sender>
--reply-to <message_id>`` lands in the **sender's inbox** as a record carrying ``reply_to``; a sender that used
``--wait`` gets that same record back in ``data.reply`` (``reply.data`` is the result JSON) — and the record also
stays in its inbox, so an orchestrator sees each result twice (``--wait`` and its inbox watcher) and must match
results by ``request_id``. Unprompted ``expired`` notices arrive the same way, replying to the original request.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sim_fixtures
from task_helpers import stop_tasks

from pilot_tui.engines.executor import ExecutorEngine
from pilot_tui.engines.mitigation import MitigationRequest, MitigationResult, parse_result
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.inbox import InboxWatcher
from pilot_tui.sim.cluster import SimNode, restart_node, stop_node

pytestmark = pytest.mark.timeout(90)  # the waits below add up to ~30 s on a loaded 2-core machine
sim_cluster = sim_fixtures.sim_cluster  # the fixtures, made visible to pytest in this module
sim_nodes = sim_fixtures.sim_nodes

ORCH, EXEC = "local-threat-orchestrator", "aws-exec-node"


def sim_binary() -> str:
    found = Path(sys.executable).parent / "pilot-sim"
    return str(found) if found.exists() else shutil.which("pilot-sim") or "pilot-sim"


def driver(node: SimNode) -> Pilotctl:
    return Pilotctl(sim_binary(), env=node.env)


async def result_in_inbox(watcher: InboxWatcher, request_id: str, status: str, timeout: float) -> MitigationResult:
    """The first result for ``request_id`` with ``status`` that reaches the watched inbox."""

    async def wait() -> MitigationResult:
        async with contextlib.aclosing(watcher.messages()) as stream:
            async for msg in stream:
                result = parse_result(msg.data)
                if result.request_id == request_id and result.status == status:
                    return result
        raise AssertionError("watcher ended")

    return await asyncio.wait_for(wait(), timeout)


async def test_request_applied_answered_by_wait_and_inbox_then_expired(
    sim_nodes: Callable[..., dict[str, SimNode]], tmp_path: Path
) -> None:
    nodes = sim_nodes(ORCH, EXEC, trust=[(ORCH, EXEC)])
    orch, exe = driver(nodes[ORCH]), driver(nodes[EXEC])
    engine = ExecutorEngine(exe, tmp_path / "executor.db", obey=[ORCH], poll_interval=0.2, expiry_tick=0.5,
                            discover_own_ips=False)
    task = asyncio.create_task(engine.run())
    orch_inbox = InboxWatcher(orch, poll_interval=0.1)
    try:
        # 1. --wait: the reply comes back in the ack
        req = MitigationRequest.new("block", "203.0.113.7", duration_s=2, reason="brute_force_ssh",
                                    requested_by="analyst")
        ack = await orch.send_message(EXEC, req.encode(), wait=8.0)
        assert ack.reply is not None and ack.reply["from"] == nodes[EXEC].address
        assert ack.reply["reply_to"] == ack.message_id
        result = parse_result(ack.reply["data"])
        assert (result.request_id, result.status, result.backend, result.executor) == (
            req.request_id, "applied", "dry-run", EXEC)
        assert engine.store.get_block("203.0.113.7") is not None
        assert engine.firewall.recorded[-1][:3] == ["nft", "add", "element"]

        # 2. the same reply also sits in the orchestrator's inbox
        seen = await result_in_inbox(orch_inbox, req.request_id, "applied", 15)
        assert seen == result

        # 3. the same request again, without --wait: same answer, no second action, delivered to the inbox
        actions = len(engine.firewall.recorded)
        await orch.send_message(EXEC, req.encode())
        again = await result_in_inbox(orch_inbox, req.request_id, "applied", 15)
        assert again == result and len(engine.firewall.recorded) == actions

        # 4. two seconds later the block expires and the orchestrator is told
        expired = await result_in_inbox(orch_inbox, req.request_id, "expired", 20)
        assert expired.ip == "203.0.113.7" and engine.store.active_blocks() == []
    finally:
        await orch_inbox.close()
        await stop_tasks(task)
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()


async def test_refusals_reach_the_sender(sim_nodes: Callable[..., dict[str, SimNode]], tmp_path: Path) -> None:
    nodes = sim_nodes(ORCH, EXEC, trust=[(ORCH, EXEC)])
    orch, exe = driver(nodes[ORCH]), driver(nodes[EXEC])
    engine = ExecutorEngine(exe, tmp_path / "executor.db", obey=[], poll_interval=0.2, discover_own_ips=False)
    task = asyncio.create_task(engine.run())
    try:
        req = MitigationRequest.new("block", "198.51.100.20")
        ack = await orch.send_message(EXEC, req.encode(), wait=8.0)
        assert ack.reply is not None
        refused = parse_result(ack.reply["data"])
        assert refused.status == "refused" and "--obey" in refused.detail
        engine.obey_addresses.add(nodes[ORCH].address)  # as if restarted with --obey
        loopback = MitigationRequest.new("block", "127.0.0.1")
        answer: dict[str, Any] = (await orch.send_message(EXEC, loopback.encode(), wait=8.0)).reply or {}
        assert parse_result(answer["data"]).detail.startswith("loopback:")
        assert engine.store.active_blocks() == []
    finally:
        await stop_tasks(task)
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()


async def test_hostname_takeover_and_stale_inbox_requests_are_refused(
    sim_nodes: Callable[..., dict[str, SimNode]], tmp_path: Path
) -> None:
    """Issue 12 items 3 and 5 on pilot-sim: the orchestrator's daemon stops, another node restarts with its hostname
    and asks for a block; and an old request still sits in the executor's inbox when it starts on a fresh state dir."""
    nodes = sim_nodes(ORCH, "evil-node", EXEC, trust=[(ORCH, EXEC), ("evil-node", EXEC)])
    orch, evil, exe = driver(nodes[ORCH]), driver(nodes["evil-node"]), driver(nodes[EXEC])
    stale = MitigationRequest.new("block", "198.51.100.44", now=time.time() - 7200)
    await orch.send_message(EXEC, stale.encode())  # sits in the inbox before any executor runs
    shift = [0.0]
    engine = ExecutorEngine(exe, tmp_path / "executor.db", obey=[ORCH], poll_interval=0.2, discover_own_ips=False,
                            clock=lambda: time.time() + shift[0])
    task = asyncio.create_task(engine.run())
    orch_inbox = InboxWatcher(orch, poll_interval=0.1)
    try:
        refused = await result_in_inbox(orch_inbox, stale.request_id, "refused", 15)
        assert refused.detail.startswith("stale:") and engine.store.get_block("198.51.100.44") is None
        await orch_inbox.close()
        assert engine.state().obey_pins == ((ORCH, nodes[ORCH].address),)

        stop_node(nodes[ORCH])
        nodes["evil-node"].hostname = ORCH
        restart_node(nodes["evil-node"])  # same identity (address), now holding the orchestrator's hostname
        assert (await evil.find(ORCH))["address"] == nodes["evil-node"].address
        shift[0] = 31.0  # past the executor's re-resolution rate limit
        req = MitigationRequest.new("block", "203.0.113.66")
        ack = await evil.send_message(EXEC, req.encode(), wait=8.0)
        assert ack.reply is not None
        answer = parse_result(ack.reply["data"])
        assert answer.status == "refused" and f"now holds the hostname {ORCH}" in answer.detail
        assert engine.store.active_blocks() == [] and engine.firewall.recorded == []
        assert engine.state().obey_addresses == (nodes[ORCH].address,) and engine.state().obey_conflicts
    finally:
        await orch_inbox.close()
        await stop_tasks(task)
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()
