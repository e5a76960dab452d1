"""The executor engine over a fake driver: refusals, dry-run, idempotency, extension, expiry, replies."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from task_helpers import stop_tasks
from test_executor_support import EXECUTOR_ADDR, ORCH_ADDR, STRANGER_ADDR, FakePilot

from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines.executor import ExecutorEngine
from pilot_tui.engines.firewall import Argv, Firewall, FirewallError
from pilot_tui.engines.mitigation import MitigationRequest, parse_result
from pilot_tui.engines.updates import Update
from pilot_tui.pilot.errors import ConnectionFailed

pytestmark = pytest.mark.timeout(20)

OWN_IP = "198.51.100.10"


class Clock:
    """A settable wall clock (Unix seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, pilot: FakePilot | None = None, **kw: Any) -> tuple[ExecutorEngine, FakePilot, list[Update]]:
    pilot = pilot or FakePilot()
    options: dict[str, Any] = {"obey": [ORCH_ADDR], "allowlist": ["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.55"],
                               "max_duration_s": 86400, "default_duration_s": 600, "use_watchdog": False,
                               "poll_interval": 0.02, "discover_own_ips": False, "own_ips": [OWN_IP]}
    options.update(kw)
    engine = ExecutorEngine(pilot, tmp_path / "executor.db", **options)
    updates: list[Update] = []
    engine.add_listener(updates.append)
    return engine, pilot, updates


def request(ip: str = "203.0.113.7", action: str = "block", *, at: float | None = None, **kw: Any) -> MitigationRequest:
    """A request issued ``at`` (the engine's clock when the test sets one; the wall clock otherwise)."""
    return MitigationRequest.new(action, ip, now=at, **kw)  # type: ignore[arg-type]


def replies(pilot: FakePilot) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(s["target"], s["reply_to"], orjson.loads(s["data"])) for s in pilot.sent]


async def ask(engine: ExecutorEngine, pilot: FakePilot, data: bytes | str, sender: str = ORCH_ADDR) -> dict[str, Any]:
    """Deliver one message, let the engine handle it and send its reply; return that reply."""
    mid = pilot.deliver(sender, data)
    await engine.process_pending()
    await engine.flush_replies()
    target, reply_to, body = replies(pilot)[-1]
    assert (target, reply_to) == (sender, mid)
    return body


def of(updates: list[Update], kind: type) -> list[Any]:
    return [u for u in updates if isinstance(u, kind)]


# -- refusals ----------------------------------------------------------------------------------------------------


async def test_sender_not_obeyed_is_refused_and_told(tmp_path: Path) -> None:
    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    req = request()
    body = await ask(engine, pilot, req.encode(), sender=STRANGER_ADDR)
    assert body["status"] == "refused" and body["request_id"] == req.request_id and body["ip"] == req.ip
    assert "not in this executor's --obey list" in body["detail"]
    assert of(updates, xu.RequestRefused)[0].reason == "not_obeyed"
    assert engine.firewall.recorded == [] and engine.store.active_blocks() == []


async def test_empty_obey_refuses_everything_and_says_how_to_fix(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path, obey=[])
    await engine.prepare()
    body = await ask(engine, pilot, request().encode())
    assert body["status"] == "refused" and "--obey" in body["detail"] and "obeys no orchestrator" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "bad_json"),
        (b"[1, 2]", "not_object"),
        (b'{"schema": "pilot-tui.mitigate/9", "request_id": "r1", "action": "block", "ip": "203.0.113.7"}',
         "bad_schema"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "nuke", "ip": "203.0.113.7"}',
         "bad_value"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "block"}', "missing_field"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "block", "ip": "999.1.1.1"}', "bad_ip"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "block", "ip": "1.2.3.4; rm -rf /"}',
         "bad_ip"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "block", "ip": "203.0.113.0/24"}',
         "bad_ip"),
        (b'{"schema": "pilot-tui.mitigate/1", "request_id": "r1", "action": "block", "ip": "1.2.3.4",'
         b' "duration_s": "1h"}', "wrong_type"),
    ],
)
async def test_bad_messages_are_refused_with_the_reason(tmp_path: Path, payload: bytes, reason: str) -> None:
    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    body = await ask(engine, pilot, payload)
    assert body["status"] == "refused" and body["detail"].startswith(f"{reason}:")
    assert of(updates, xu.RequestRefused)[0].reason == reason
    if b'"r1"' in payload:
        assert body["request_id"] == "r1"  # salvaged so the orchestrator can match the refusal
    assert engine.firewall.recorded == []


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("10.1.2.3", "allowlisted"),
        ("192.0.2.55", "allowlisted"),
        ("2001:db8:ffff::1", "allowlisted"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "broadcast"),
        (OWN_IP, "own_address"),
        (f"::ffff:{OWN_IP}", "own_address"),
    ],
)
async def test_targets_that_must_not_be_blocked_are_refused(tmp_path: Path, ip: str, reason: str) -> None:
    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    body = await ask(engine, pilot, request(ip).encode())
    assert body["status"] == "refused" and body["detail"].startswith(f"{reason}:"), body
    assert engine.firewall.recorded == [] and engine.store.active_blocks() == []


async def test_duration_out_of_range_is_refused(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path)
    await engine.prepare()
    body = await ask(engine, pilot, request(duration_s=86401).encode())
    assert body["status"] == "refused" and body["detail"].startswith("bad_duration:")
    body = await ask(engine, pilot, b'{"schema":"pilot-tui.mitigate/1","request_id":"z","action":"block",'
                                    b'"ip":"203.0.113.9","duration_s":0}')
    assert body["status"] == "refused"


def test_bad_configuration_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allowlist entry"):
        make(tmp_path, allowlist=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="--obey entry"):
        make(tmp_path, obey=["Not A Host!"])
    with pytest.raises(ValueError, match="backend"):
        make(tmp_path, backend="pf")
    with pytest.raises(ValueError, match="default duration"):
        make(tmp_path, default_duration_s=10**6)


# -- applying ----------------------------------------------------------------------------------------------------


async def test_dry_run_records_the_nft_commands_and_answers_applied(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    req = request(at=clock.now, duration_s=3600, event_id="ev-1", reason="brute_force_ssh", requested_by="analyst")
    body = await ask(engine, pilot, req.encode())
    assert body["schema"] == "pilot-tui.mitigate-result/1"
    assert body["status"] == "applied" and body["backend"] == "dry-run" and body["executor"] == "aws-exec-node"
    assert "dry-run" in body["detail"]
    assert parse_result(orjson.dumps(body)).expires_at == "2027-01-15T09:00:00.000Z"  # clock.now + 3600
    recorded = engine.firewall.recorded
    assert recorded[0] == ["nft", "add", "table", "inet", "pilot_tui"]
    assert recorded[-1] == ["nft", "add", "element", "inet", "pilot_tui", "blocklist", "{ 203.0.113.7 timeout 3660s }"]
    [block] = engine.store.active_blocks()
    assert (block.ip, block.expires_at, block.event_id, block.sender) == ("203.0.113.7", clock.now + 3600, "ev-1",
                                                                          ORCH_ADDR)
    [applied] = of(updates, xu.ActionApplied)
    assert applied.status == "applied" and applied.argv == tuple(tuple(a) for a in recorded)
    assert [u.ok for u in of(updates, xu.ReplySent)] == [True]
    assert engine.store.history(5)[0]["status"] == "applied"


async def test_default_duration_is_used_when_the_request_has_none(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)
    await engine.prepare()
    await ask(engine, pilot, request(at=clock.now).encode())
    assert engine.store.active_blocks()[0].expires_at == clock.now + 600


async def test_same_request_id_twice_gives_the_same_answer_and_one_action(tmp_path: Path) -> None:
    engine, pilot, updates = make(tmp_path)
    await engine.prepare()
    req = request()
    first = await ask(engine, pilot, req.encode())
    n = len(engine.firewall.recorded)
    second = await ask(engine, pilot, req.encode())
    assert first == second and first["status"] == "applied"
    assert len(engine.firewall.recorded) == n and len(of(updates, xu.ActionApplied)) == 1
    assert len(of(updates, xu.DuplicateRequest)) == 1
    # the same request id from somebody else is not replayed to them
    engine.obey_addresses.add(STRANGER_ADDR)
    other = await ask(engine, pilot, req.encode(), sender=STRANGER_ADDR)
    assert other["status"] == "refused" and "already used" in other["detail"]


async def test_a_message_is_processed_once_even_across_restarts(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path)
    await engine.prepare()
    pilot.deliver(ORCH_ADDR, request().encode())
    assert len(await engine.process_pending()) == 1
    await engine.close()
    engine2, _, _ = make(tmp_path, pilot)
    await engine2.prepare()
    assert await engine2.process_pending() == []
    await engine2.close()


async def test_block_of_a_blocked_ip_is_already_applied_and_extends_expiry(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)
    await engine.prepare()
    await ask(engine, pilot, request(at=clock.now, duration_s=600).encode())
    n = len(engine.firewall.recorded)
    clock.now += 100
    shorter = await ask(engine, pilot, request(at=clock.now, duration_s=60).encode())
    # the status says "already blocked" (the UI prints "already blocked — <detail>"): the detail must not repeat it
    assert shorter["status"] == "already_applied" and shorter["detail"].startswith("expiry unchanged: blocked until")
    assert len(engine.firewall.recorded) == n
    longer = await ask(engine, pilot, request(at=clock.now, duration_s=3600).encode())
    assert longer["status"] == "already_applied" and "extended" in longer["detail"]
    assert engine.store.active_blocks()[0].expires_at == clock.now + 3600
    assert engine.firewall.recorded[n:] == [
        ["nft", "delete", "element", "inet", "pilot_tui", "blocklist", "{ 203.0.113.7 }"],
        ["nft", "add", "element", "inet", "pilot_tui", "blocklist", "{ 203.0.113.7 timeout 3660s }"],
    ]


async def test_unblock(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path)
    await engine.prepare()
    nothing = await ask(engine, pilot, request("2001:db8::7", "unblock").encode())
    assert nothing["status"] == "already_applied" and "not blocked" in nothing["detail"]
    await ask(engine, pilot, request("2001:db8::7").encode())
    assert engine.firewall.recorded[-1][5] == "blocklist6"
    done = await ask(engine, pilot, request("2001:db8::7", "unblock").encode())
    assert done["status"] == "applied" and done["expires_at"] is None
    assert engine.firewall.recorded[-1] == ["nft", "delete", "element", "inet", "pilot_tui", "blocklist6",
                                            "{ 2001:db8::7 }"]
    assert engine.store.active_blocks() == []


async def test_results_and_own_messages_get_no_answer(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path)
    await engine.prepare()
    result = b'{"schema":"pilot-tui.mitigate-result/1","request_id":"x","status":"applied"}'
    pilot.deliver(STRANGER_ADDR, result)
    pilot.deliver(EXECUTOR_ADDR, request().encode())
    assert await engine.process_pending() == [None, None]
    await engine.flush_replies()
    assert pilot.sent == [] and await engine.process_pending() == []


async def test_obey_by_hostname_is_resolved_with_find_and_retried(tmp_path: Path) -> None:
    clock = Clock()
    pilot = FakePilot(hosts={})
    engine, pilot, _ = make(tmp_path, pilot, obey=["local-threat-orchestrator"], clock=clock)
    await engine.prepare()
    assert engine.state().obey_unresolved == ("local-threat-orchestrator",)
    assert (await ask(engine, pilot, request(at=clock.now).encode()))["status"] == "refused"
    pilot.hosts["local-threat-orchestrator"] = ORCH_ADDR
    clock.now += 31  # re-resolution is rate limited
    assert (await ask(engine, pilot, request(at=clock.now).encode()))["status"] == "applied"
    assert engine.state().obey_addresses == (ORCH_ADDR,)


async def test_backend_failure_is_reported_and_not_cached(tmp_path: Path) -> None:
    calls: list[list[Argv]] = []
    broken = True

    async def runner(argvs: list[Argv], timeout: float) -> None:
        calls.append(list(argvs))
        if broken:
            raise FirewallError("iptables -w -I failed: Permission denied (you must be root)", argv=argvs[0],
                                returncode=4, stderr="Permission denied (you must be root)")

    engine, pilot, updates = make(tmp_path, firewall=Firewall("iptables", runner=runner))
    await engine.prepare()
    req = request()
    failed = await ask(engine, pilot, req.encode())
    assert failed["status"] == "failed" and "Permission denied" in failed["detail"] and failed["backend"] == "iptables"
    assert engine.store.active_blocks() == [] and of(updates, xu.ActionFailed)
    broken = False
    again = await ask(engine, pilot, req.encode())  # same request id: tried again, since it had failed
    assert again["status"] == "applied"
    assert calls[-1] == [["iptables", "-w", "-I", "INPUT", "-s", "203.0.113.7", "-j", "DROP", "-m", "comment",
                          "--comment", "pilot-tui"]]


async def test_reply_is_retried_until_the_orchestrator_is_reachable(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    pilot.fail_next("send_message", ConnectionFailed("cannot connect"))
    pilot.deliver(ORCH_ADDR, request(at=clock.now).encode())
    await engine.process_pending()
    assert await engine.flush_replies() == 0 and engine.store.pending_replies() == 1
    assert await engine.flush_replies() == 0  # backing off
    clock.now += 5
    assert await engine.flush_replies() == 1 and engine.store.pending_replies() == 0
    assert [u.ok for u in of(updates, xu.ReplySent)] == [False, True]


def test_state_file_is_private(tmp_path: Path) -> None:
    engine, _, _ = make(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "executor.db").st_mode) == 0o600


# -- expiry ------------------------------------------------------------------------------------------------------


async def test_expiry_removes_the_block_and_tells_the_requester(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    mid = pilot.deliver(ORCH_ADDR, request(at=clock.now, duration_s=60).encode())
    await engine.process_pending()
    clock.now += 59
    assert await engine.expire_due() == 0
    clock.now += 2
    assert await engine.expire_due() == 1
    assert engine.store.active_blocks() == []
    assert engine.firewall.recorded[-1] == ["nft", "delete", "element", "inet", "pilot_tui", "blocklist",
                                            "{ 203.0.113.7 }"]
    [expired] = of(updates, xu.BlockExpired)
    assert expired.ok and expired.ip == "203.0.113.7"
    await engine.flush_replies()
    target, reply_to, body = replies(pilot)[-1]
    assert (target, reply_to, body["status"]) == (ORCH_ADDR, mid, "expired")


async def test_blocks_that_expired_while_down_are_removed_on_start(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)
    await engine.prepare()
    await ask(engine, pilot, request(at=clock.now, duration_s=60).encode())
    await engine.close()
    clock.now += 3600
    engine2, _, updates = make(tmp_path, pilot, clock=clock)
    await engine2.prepare()
    assert engine2.store.active_blocks() == [] and of(updates, xu.BlockExpired)[0].ok


async def test_run_expires_on_a_real_timer_and_replies(tmp_path: Path) -> None:
    engine, pilot, _ = make(tmp_path, expiry_tick=0.2)
    sub = engine.subscribe()
    task = asyncio.create_task(engine.run())
    try:
        pilot.deliver(ORCH_ADDR, request(duration_s=1).encode())

        async def until(pred: Callable[[Update], bool]) -> Update:
            async for update in sub:
                if pred(update):
                    return update
            raise AssertionError("subscription ended")

        applied = await asyncio.wait_for(until(lambda u: isinstance(u, xu.ActionApplied)), 3)
        assert isinstance(applied, xu.ActionApplied) and applied.status == "applied"
        await asyncio.wait_for(until(lambda u: isinstance(u, xu.BlockExpired)), 4)
        await asyncio.wait_for(until(lambda u: isinstance(u, xu.ReplySent) and u.status == "expired"), 3)
    finally:
        await stop_tasks(task)
        await asyncio.gather(task, return_exceptions=True)
        sub.close()
        await engine.close()
    assert [r[2]["status"] for r in replies(pilot)] == ["applied", "expired"]
    assert engine.watcher.status.state == "closed"
