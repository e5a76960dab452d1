"""``pilot-tui executor --list / --unblock IP / --extend IP DURATION``: a headless executor's blocks, seen and lifted
from the command line on its state dir (dry-run backend), alone and beside a running executor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_executor import make, replies, request
from test_executor_support import ORCH_ADDR

from pilot_tui.cli import main
from pilot_tui.store.blocks import Block, BlockStore, Record

pytestmark = pytest.mark.timeout(30)

IP = "203.0.113.7"


def seed(state: Path, *blocks: tuple[str, float]) -> None:
    """Blocks on record as a dry-run executor leaves them: (address, seconds left)."""
    store = BlockStore(state / "executor.db")
    now = time.time()
    for ip, left in blocks:
        store.record(Record(at=now, kind="request", status="applied", action="block", ip=ip,
                            put_block=Block(ip, "dry-run", f"req-{ip}", ORCH_ADDR, f"msg-{ip}", now - 60, now + left,
                                            reason="ssh brute force")))
    store.close()


def on_record(state: Path) -> dict[str, Block]:
    store = BlockStore(state / "executor.db")
    try:
        return {b.ip: b for b in store.active_blocks()}
    finally:
        store.close()


def cli(state: Path, *args: str) -> list[str]:
    return ["executor", "--state-dir", str(state), *args]


def test_list_prints_a_table_of_the_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path, (IP, 1800), ("2001:db8:bad:1::17", 90))
    assert main(cli(tmp_path, "--list")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ADDRESS", "STATE", "EXPIRES", "IN", "ASKED", "BY", "BACKEND", "UNTIL", "SINCE",
                              "REASON"]
    # soonest expiry first, the full IPv6 address, who asked and how it stands
    assert out[1].startswith("2001:db8:bad:1::17 ") and "in force" in out[1] and ORCH_ADDR in out[1]
    assert out[2].startswith(f"{IP} ") and "dry-run" in out[2] and "ssh brute force" in out[2]


def test_list_json_and_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path, (IP, 1800))
    assert main(cli(tmp_path, "--list", "--json")) == 0
    doc = orjson.loads(capsys.readouterr().out)
    [row] = doc["blocks"]
    assert (doc["backend"], row["ip"], row["state"], row["asked_by"]) == ("dry-run", IP, "in force", ORCH_ADDR)
    assert 1700 < row["expires_in_s"] <= 1800
    assert main(cli(tmp_path, "--unblock", IP)) == 0
    capsys.readouterr()
    assert main(cli(tmp_path, "--list")) == 0
    assert capsys.readouterr().out.strip() == "no active blocks"
    assert main(cli(tmp_path, "--list", "--headless")) == 0
    assert orjson.loads(capsys.readouterr().out)["blocks"] == []


def test_unblock_lifts_and_queues_the_answer_to_the_requester(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path, (IP, 1800), ("198.51.100.9", 1800))
    assert main(cli(tmp_path, "--unblock", IP)) == 0
    assert capsys.readouterr().out.startswith(f"{IP}: lifted early by the operator")
    assert set(on_record(tmp_path)) == {"198.51.100.9"}
    store = BlockStore(tmp_path / "executor.db")
    try:
        [reply] = store.due_replies(time.time() + 1)
        assert (reply.target, reply.reply_to, orjson.loads(reply.payload)["status"]) == (ORCH_ADDR, f"msg-{IP}",
                                                                                          "expired")
        assert store.history(1)[0]["action"] == "unblock"
    finally:
        store.close()


def test_extend_moves_the_expiry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path, (IP, 600))
    before = on_record(tmp_path)[IP].expires_at
    assert main(cli(tmp_path, "--extend", IP, "2h", "--json")) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["status"] == "applied" and result["detail"].startswith("expiry extended to ")
    assert on_record(tmp_path)[IP].expires_at == pytest.approx(before + 7200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--unblock", "198.51.100.1"), "198.51.100.1 is not blocked by this executor"),
        (("--unblock", "not-an-ip"), "'not-an-ip' is not an IP address"),
        (("--extend", IP, "soon"), "'soon' is not a duration like 30s, 15m, 2h or 7d"),
        (("--extend", IP, "30d"), "more than the executor's maximum"),
        (("--extend", IP, "1h", "--backend", "nft"), "applied by dry-run, not nft"),
        (("--json",), "--json goes with --list, --unblock or --extend"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    seed(tmp_path, (IP, 600))
    before = on_record(tmp_path)
    assert main(cli(tmp_path, *args)) == 1
    err = capsys.readouterr().err
    assert err.startswith("pilot-tui executor: ") and message in err and len(err.splitlines()) == 1, err
    assert on_record(tmp_path) == before


def test_no_state_is_said_and_no_empty_state_file_is_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "never-ran"
    assert main(cli(state, "--list")) == 1
    assert "no executor state at" in capsys.readouterr().err
    assert not (state / "executor.db").exists()  # an empty one would list nothing and hide a wrong --state-dir


def test_only_one_action_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["executor", "--list", "--unblock", IP])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_as_a_command(tmp_path: Path) -> None:
    seed(tmp_path, (IP, 600))
    env = {**os.environ, "PILOT_TUI_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run([sys.executable, "-m", "pilot_tui.cli", *cli(tmp_path, "--unblock", IP)],
                          capture_output=True, text=True, timeout=20, env=env, check=False)
    assert (done.returncode, done.stderr) == (0, "") and done.stdout.startswith(f"{IP}: lifted early")


async def test_beside_a_running_executor(tmp_path: Path) -> None:
    """The running executor sends the answer a lift owes, and does not expire a block extended under it."""
    engine, pilot, _ = make(tmp_path, obey=[ORCH_ADDR], expiry_tick=0.1)
    await engine.prepare()
    pilot.deliver(ORCH_ADDR, request(IP, duration_s=1).encode())
    pilot.deliver(ORCH_ADDR, request("198.51.100.9", duration_s=600).encode())
    await engine.process_pending()
    await engine.flush_replies()
    sent = len(pilot.sent)
    runner = asyncio.create_task(engine.run())
    try:
        # another process's command (its own connection to the same state file), while this one runs
        assert await asyncio.to_thread(main, cli(tmp_path, "--extend", IP, "1h")) == 0
        assert await asyncio.to_thread(main, cli(tmp_path, "--unblock", "198.51.100.9")) == 0
        engine.replies.wake()
        deadline = time.monotonic() + 10
        while len(pilot.sent) == sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # past the block's original end: its expiry pass must find it not due
        told: list[tuple[str, Any]] = [(body["ip"], body["status"]) for _, _, body in replies(pilot)[sent:]]
        assert told == [("198.51.100.9", "expired")]  # the lift's answer, sent by the running executor
        assert set(b.ip for b in engine.query.active_blocks()) == {IP}
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await engine.close()


async def test_a_block_lifted_elsewhere_while_its_removal_failed_here_is_not_retried(tmp_path: Path) -> None:
    """The running executor's removal failed (retry in 30 s); another process lifted the block meanwhile: once the
    retry is due it finds the block gone and goes back to sleep instead of waking 20 times a second."""
    from test_executor import Clock
    from test_executor_support import FakePilot

    from pilot_tui.engines.executor import ExecutorEngine
    from pilot_tui.engines.firewall import Argv, Firewall, FirewallError

    async def cannot_delete(argvs: list[Argv], timeout: float) -> None:
        if any("-D" in a for a in argvs):
            raise FirewallError("iptables -w -D failed: Operation not permitted", argv=argvs[0], returncode=4)

    async def fine(argvs: list[Argv], timeout: float) -> None:
        return None

    clock = Clock()
    running, pilot, _ = make(tmp_path, firewall=Firewall("iptables", runner=cannot_delete), clock=clock,
                             expiry_tick=30.0)
    await running.prepare()
    pilot.deliver(ORCH_ADDR, request(IP, at=clock.now, duration_s=60).encode())
    await running.process_pending()
    clock.now += 61
    assert await running.expire_due() == 0  # removal failed: kept, retried in 30 s
    other = ExecutorEngine(FakePilot(), tmp_path / "executor.db", firewall=Firewall("iptables", runner=fine),
                           discover_own_ips=False)
    await other.lift_block(IP)
    other.store.close()
    clock.now += 31
    passes = 0
    expire_due = running.expire_due

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await expire_due()

    running.expire_due = counted  # type: ignore[method-assign]
    loop = asyncio.create_task(running._expiry_loop())
    await asyncio.sleep(0.6)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    await running.close()
    assert passes <= 2, f"{passes} expiry passes in 0.6 s for a block no longer on record"
