"""The operator at the executor's console lifts and extends blocks: firewall, store, requester told, typed updates."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_executor import Clock, ask, make, of, replies, request
from test_executor_support import ORCH_ADDR, FakePilot

from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines import updates as u
from pilot_tui.engines.executor import OPERATOR
from pilot_tui.engines.firewall import Argv, Firewall, FirewallError

pytestmark = pytest.mark.timeout(20)


async def test_lift_removes_the_block_and_tells_the_requester_it_ended(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    mid = pilot.deliver(ORCH_ADDR, request(at=clock.now, duration_s=600).encode())
    await engine.process_pending()
    await engine.flush_replies()
    clock.now += 30
    result = await engine.lift_block("203.0.113.7")
    assert result.status == "applied" and "lifted early by the operator" in result.detail
    assert engine.store.active_blocks() == []
    assert engine.firewall.recorded[-1] == ["nft", "delete", "element", "inet", "pilot_tui", "blocklist",
                                            "{ 203.0.113.7 }"]
    [applied] = [u for u in of(updates, xu.ActionApplied) if u.sender == OPERATOR]
    assert (applied.action, applied.ip, applied.status) == ("unblock", "203.0.113.7", "applied")
    history = engine.store.history(1)[0]
    assert (history["kind"], history["sender"], history["action"]) == ("operator", OPERATOR, "unblock")
    # the orchestrator that asked learns the block is over, as a reply to its request (the answer it expects)
    await engine.flush_replies()
    target, reply_to, body = replies(pilot)[-1]
    assert (target, reply_to, body["status"]) == (ORCH_ADDR, mid, "expired")
    assert "lifted early" in body["detail"]
    # nothing left to expire later: no second "expired" for the same block
    clock.now += 10_000
    assert await engine.expire_due() == 0


async def test_lift_of_an_address_not_blocked_is_one_clear_error(tmp_path: Path) -> None:
    engine, _, _ = make(tmp_path)
    await engine.prepare()
    with pytest.raises(ValueError, match="198.51.100.1 is not blocked by this executor"):
        await engine.lift_block("198.51.100.1")


async def test_extend_moves_the_expiry_in_the_firewall_and_the_store(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    await ask(engine, pilot, request(at=clock.now, duration_s=600).encode())
    sent = len(pilot.sent)
    result = await engine.extend_block("203.0.113.7", 3600)
    expires = clock.now + 600 + 3600
    assert engine.store.get_block("203.0.113.7").expires_at == expires  # type: ignore[union-attr]
    assert result.status == "applied" and result.detail.startswith("expiry extended to ")
    assert result.detail.count("extended") == 1
    assert engine.firewall.recorded[-1] == ["nft", "add", "element", "inet", "pilot_tui", "blocklist",
                                            "{ 203.0.113.7 timeout 4260s }"]  # + the backend's 60 s grace
    assert [u.action for u in of(updates, xu.ActionApplied) if u.sender == OPERATOR] == ["extend"]
    await engine.flush_replies()
    assert len(pilot.sent) == sent  # the requester is told when the block ends, not on every extension


async def test_extend_past_the_maximum_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)  # max_duration_s 86400
    await engine.prepare()
    await ask(engine, pilot, request(at=clock.now, duration_s=600).encode())
    before = engine.store.get_block("203.0.113.7")
    with pytest.raises(ValueError, match="more than the executor's maximum of 86400s"):
        await engine.extend_block("203.0.113.7", 86400)
    assert engine.store.get_block("203.0.113.7") == before


async def test_a_firewall_failure_keeps_the_block_on_record(tmp_path: Path) -> None:
    calls: list[list[Argv]] = []

    async def runner(argvs: list[Argv], timeout: float) -> None:
        calls.append(argvs)
        if any("-D" in a for a in argvs):
            raise FirewallError("iptables -w -D failed: Operation not permitted", argv=argvs[0], returncode=4)

    engine, pilot, updates = make(tmp_path, firewall=Firewall("iptables", runner=runner), pilot=FakePilot())
    await engine.prepare()
    await ask(engine, pilot, request().encode())
    result = await engine.lift_block("203.0.113.7")
    assert result.status == "failed" and "Operation not permitted" in result.detail
    assert [b.ip for b in engine.store.active_blocks()] == ["203.0.113.7"]
    assert [u.ip for u in of(updates, xu.ActionFailed)] == ["203.0.113.7"]


def test_block_state_words(tmp_path: Path) -> None:
    engine, _, _ = make(tmp_path)
    from pilot_tui.store.blocks import Block

    mine = Block("203.0.113.7", "dry-run", "r", ORCH_ADDR, "m", 0.0, 10.0)
    assert engine.block_state(mine) == "in force"
    assert engine.block_state(Block("203.0.113.8", "nft", "r", ORCH_ADDR, "m", 0.0, 10.0)) == "not applied"


async def test_peer_names_are_the_pinned_obey_hostnames(tmp_path: Path) -> None:
    pilot = FakePilot(hosts={"local-threat-orchestrator": ORCH_ADDR})
    engine, _, _ = make(tmp_path, pilot=pilot, obey=["local-threat-orchestrator"])
    await engine.prepare()
    assert engine.peer_names() == {ORCH_ADDR: "local-threat-orchestrator"}


async def test_a_lift_while_the_state_file_fails_is_recorded_once_it_works(tmp_path: Path) -> None:
    import sqlite3

    from test_faults import faulty

    from pilot_tui.store.db import StoreFault

    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    await ask(engine, pilot, request().encode())
    conn = faulty(engine.store)
    conn.fault = (sqlite3.OperationalError, "database or disk is full")
    with pytest.raises(StoreFault):
        await engine.lift_block("203.0.113.7")
    assert engine.firewall.recorded[-1][1] == "delete"  # the firewall acted
    assert any(isinstance(x, u.Notice) and "state file failing" in x.message for x in updates)
    conn.fault = None
    # the next operator action records what is owed first: the block is gone, the requester's answer queued
    with pytest.raises(ValueError, match="is not blocked"):
        await engine.lift_block("203.0.113.7")
    assert engine.store.active_blocks() == []
    await engine.flush_replies()
    assert replies(pilot)[-1][2]["status"] == "expired"
