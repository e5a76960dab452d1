"""Executor policy, state file and plumbing: target rules, own addresses, pruning, subscriptions, headless core."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from test_executor import Clock, make, request
from test_executor_support import ORCH_ADDR, FakePilot

from pilot_tui.engines import executor_policy as policy
from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines.firewall import Argv, Firewall, FirewallError
from pilot_tui.engines.updates import Notice, UpdateBus
from pilot_tui.store.blocks import Block, BlockStore, Record

pytestmark = pytest.mark.timeout(20)


def test_check_target_allows_ordinary_addresses() -> None:
    allow = policy.parse_allowlist(["10.0.0.0/8"])
    for ip in ("203.0.113.7", "192.168.1.50", "2001:db8::7", "100.64.0.1"):
        assert policy.check_target(ip, allow, own=()) is None
    refusal = policy.check_target("10.9.9.9", allow, own=())
    assert refusal is not None and refusal.reason == "allowlisted" and "10.0.0.0/8" in refusal.detail
    assert policy.check_duration(0, 10) is not None and policy.check_duration(10, 10) is None


def test_own_addresses_is_best_effort_and_never_raises() -> None:
    found = policy.own_addresses({"address": "0:0000.0000.0003", "public_endpoint": "198.51.100.4:37736",
                                  "endpoint6": "[2001:db8::4]:9000", "peer_list": "203.0.113.99"})
    assert {"198.51.100.4", "2001:db8::4"} <= found
    assert "203.0.113.99" not in found  # peers are not us
    assert all(isinstance(ip, str) for ip in found)


def test_proc_parsers(tmp_path: Path) -> None:
    (tmp_path / "if_inet6").write_text("20010db8000000000000000000000004 02 40 00 80 eth0\n")
    (tmp_path / "fib_trie").write_text("Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.9\n"
                                       "        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\n")
    assert policy._proc_addresses(tmp_path) == {"2001:0db8:0000:0000:0000:0000:0000:0004", "192.0.2.9"}


def test_split_obey() -> None:
    assert policy.split_obey(["0:0000.0000.00AB", "local-threat-orchestrator"]) == (
        {"0:0000.0000.00ab"}, {"local-threat-orchestrator"})
    with pytest.raises(ValueError):
        policy.split_obey(["bad host"])


def test_store_prune_keeps_marks_of_messages_still_in_the_inbox(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "x.db")
    for mid in ("gone", "still-there"):
        store.mark_processed(mid, at=100.0)
    store.record(Record(at=100.0, kind="request", status="applied", request_id="r", answer=b"{}"))
    store.prune(before=200.0, keep={"still-there"})
    assert not store.is_processed("gone") and store.is_processed("still-there") and store.answer("r") is None
    store.record(Record(at=1.0, kind="request", status="applied", put_block=Block("1.2.3.4", "nft", "r", ORCH_ADDR,
                                                                                 "m", 1.0, 50.0)))
    assert store.next_expiry() == 50.0 and store.next_expiry(exclude={"1.2.3.4"}) is None
    store.close()


async def test_failed_expiry_is_retried_later_not_in_a_busy_loop(tmp_path: Path) -> None:
    calls: list[list[Argv]] = []
    fail = True

    async def runner(argvs: list[Argv], timeout: float) -> None:
        calls.append(list(argvs))
        if fail and "delete" in argvs[0]:
            raise FirewallError("nft delete failed: Operation not permitted", argv=argvs[0], returncode=1,
                                stderr="Operation not permitted")

    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock, firewall=Firewall("nft", runner=runner))
    await engine.prepare()
    pilot.deliver(ORCH_ADDR, request(at=clock.now, duration_s=10).encode())
    await engine.process_pending()
    clock.now += 11
    assert await engine.expire_due() == 0
    attempts = len(calls)
    assert await engine.expire_due() == 0 and len(calls) == attempts  # waits for the retry time
    assert [u.ok for u in updates if isinstance(u, xu.BlockExpired)] == [False]
    fail = False
    clock.now += 31
    assert await engine.expire_due() == 1 and engine.store.active_blocks() == []


async def test_subscription_is_bounded_and_reports_drops() -> None:
    bus = UpdateBus()
    sub = xu.Subscription(bus, maxsize=3)
    for i in range(5):
        bus.emit(Notice(at=float(i), level="info", message=str(i)))
    first = await asyncio.wait_for(sub.__anext__(), 1)
    assert isinstance(first, xu.UpdatesDropped) and first.count == 2
    assert [u.message for u in [await sub.__anext__() for _ in range(3)]] == ["2", "3", "4"]  # type: ignore[attr-defined]
    sub.close()
    bus.emit(Notice(at=9.0, level="info", message="after"))
    assert sub.get_nowait() is None


async def test_headless_log_line_of_an_update(tmp_path: Path) -> None:
    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    pilot.deliver(ORCH_ADDR, request().encode())
    await engine.process_pending()
    line = next(u for u in updates if isinstance(u, xu.ActionApplied)).to_dict()
    assert line["type"] == "ActionApplied" and line["status"] == "applied" and line["ip"] == "203.0.113.7"
    state = engine.state().to_dict()
    assert state["type"] == "ExecutorState" and state["inbox"]["state"] == "starting"


def test_watcher_asks_pilotctl_for_more_than_its_default_ten() -> None:
    seen_flags: list[tuple[str, ...]] = []

    class Spy(FakePilot):
        async def inbox_listing(self, *flags: str):  # type: ignore[no-untyped-def]
            seen_flags.append(flags)
            return await super().inbox_listing(*flags)

    from pilot_tui.pilot.inbox import InboxWatcher

    asyncio.run(InboxWatcher(Spy(), use_watchdog=False).poll_once())
    assert seen_flags == [("--limit", "0")]  # 0 = all (pilotctl's default is the newest 10); previews, no bodies


def test_executor_modules_import_no_textual() -> None:
    code = ("import sys, pilot_tui.engines.executor, pilot_tui.pilot.inbox, pilot_tui.engines.firewall; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


async def test_blocks_on_record_are_restored_on_start(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)
    await engine.prepare()
    pilot.deliver(ORCH_ADDR, request(at=clock.now, duration_s=600).encode())
    await engine.process_pending()
    await engine.close()
    clock.now += 100
    engine2, _, _ = make(tmp_path, pilot, clock=clock)
    await engine2.prepare()
    assert engine2.firewall.recorded[-1] == ["nft", "add", "element", "inet", "pilot_tui", "blocklist",
                                             "{ 203.0.113.7 timeout 560s }"]  # the 500 s left + grace
    await engine2.close()


async def test_iptables_restore_checks_before_inserting() -> None:
    ran: list[Argv] = []
    present = True

    async def runner(argvs: list[Argv], timeout: float) -> None:
        ran.extend(argvs)
        if "-C" in argvs[0] and not present:
            raise FirewallError("iptables -w -C failed", argv=argvs[0], returncode=1, stderr="Bad rule")

    fw_ = Firewall("iptables", runner=runner)
    await fw_.restore("203.0.113.7", 60)
    assert [a[2] for a in ran] == ["-C"]
    present = False
    ran.clear()
    await fw_.restore("203.0.113.7", 60)
    assert [a[2] for a in ran] == ["-C", "-I"]


async def test_nft_setup_is_redone_when_the_table_vanished() -> None:
    ran: list[Argv] = []
    table = True

    async def runner(argvs: list[Argv], timeout: float) -> None:
        ran.extend(argvs)
        if not table and argvs[0][1:3] == ["add", "element"]:
            raise FirewallError("nft add failed", argv=argvs[0], returncode=1,
                                stderr="Error: No such file or directory")

    nft = Firewall("nft", runner=runner)
    await nft.block("203.0.113.7", 60)
    table = False
    ran.clear()

    async def recreate(argvs: list[Argv], timeout: float) -> None:
        nonlocal table
        if argvs[0][1:3] == ["add", "table"]:
            table = True
        await runner(argvs, timeout)

    nft.runner = recreate
    await nft.block("198.51.100.1", 60)
    assert ran[0][1:3] == ["add", "element"] and ran[1] == ["nft", "add", "table", "inet", "pilot_tui"]
