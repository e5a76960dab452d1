"""Issue 12 item 6: the executor's store must agree with the firewall it actually uses, and the block duration is
settable. Real firewall commands never run here: a fake nft records every argv and answers ``nft -j list set`` from
the elements it was told to add (or from what a test puts there)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_executor import Clock, ask, make, request
from test_executor_support import FakePilot

from pilot_tui import config
from pilot_tui.cli import build_parser
from pilot_tui.commands import executor as executor_cmd
from pilot_tui.engines import firewall as fw
from pilot_tui.engines.firewall import Argv, Firewall, FirewallError
from pilot_tui.engines.updates import Notice

pytestmark = pytest.mark.timeout(20)

IP = "203.0.113.7"
ADD = ["nft", "add", "element", "inet", "pilot_tui", "blocklist"]


class FakeNft:
    """A kernel nft set in memory: ``add``/``delete element`` change it, ``nft -j list set`` reports it."""

    def __init__(self, live: Sequence[str] = (), *, broken: str | None = None) -> None:
        self.live = set(live)
        self.ran: list[Argv] = []
        self.broken = broken

    async def __call__(self, argvs: Sequence[Argv], timeout: float) -> str | None:
        out: str | None = None
        for argv in argvs:
            self.ran.append(list(argv))
            if argv[:3] == ["nft", "-j", "list"]:
                if self.broken:
                    raise FirewallError(f"cannot run nft: {self.broken}", argv=list(argv))
                elems = [{"elem": {"val": ip, "timeout": 3660}} for ip in sorted(self.live) if
                         (":" in ip) == (argv[-1] == fw.NFT_SET6)]
                body: dict[str, Any] = {"family": "inet", "name": argv[-1], "table": "pilot_tui"}
                if elems:
                    body["elem"] = elems
                out = orjson.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, {"set": body}]}).decode()
            elif argv[1:3] == ["add", "element"]:
                self.live.add(argv[-1].strip("{} ").split()[0])
            elif argv[1:3] == ["delete", "element"]:
                self.live.discard(argv[-1].strip("{} ").split()[0])
        return out

    def adds(self) -> list[Argv]:
        return [a for a in self.ran if a[:6] == ADD]


async def dry_run_block(tmp_path: Path, clock: Clock, pilot: FakePilot) -> None:
    """What the user did first: block IP with the default dry-run backend on this state dir."""
    engine, _, _ = make(tmp_path, pilot, clock=clock)
    await engine.prepare()
    first = await ask(engine, pilot, request(IP, at=clock.now, duration_s=600).encode())
    assert first["status"] == "applied" and first["backend"] == "dry-run"
    await engine.close()


async def test_a_dry_run_block_is_applied_for_real_after_switching_to_nft(tmp_path: Path) -> None:
    """The repro: dry-run then ``--backend nft`` on the same state dir; re-blocking must reach the kernel set."""
    clock, pilot = Clock(), FakePilot()
    await dry_run_block(tmp_path, clock, pilot)
    nft = FakeNft()  # the kernel set never got the address
    engine, _, _ = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await engine.prepare()
    clock.now += 60
    again = await ask(engine, pilot, request(IP, at=clock.now, duration_s=600).encode())
    assert again["status"] == "applied", again
    assert again["backend"] == "nft" and "dry-run" in again["detail"]
    assert [a[-1] for a in nft.adds()] == [f"{{ {IP} timeout 660s }}"]
    assert IP in nft.live
    row = engine.store.get_block(IP)
    assert row is not None and row.backend == "nft"  # the row now records the backend that really applied it
    await engine.close()


async def test_start_reconciles_the_store_with_the_live_set(tmp_path: Path) -> None:
    """At start: a row of another backend is marked not applied, an nft row missing from the set is put back, and
    one notice says how many were reconciled."""
    clock, pilot = Clock(), FakePilot()
    await dry_run_block(tmp_path, clock, pilot)
    nft = FakeNft()
    first, _, _ = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await first.prepare()
    assert (await ask(first, pilot, request("198.51.100.9", at=clock.now, duration_s=600).encode()))["status"] == \
        "applied"
    await first.close()

    nft.live.clear()  # a reboot emptied the kernel set
    nft.ran.clear()
    engine, _, updates = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await engine.prepare()
    notices = [u.message for u in updates if isinstance(u, Notice) and "reconciled" in u.message]
    assert notices == ["reconciled 2 block(s) on record with the live nft firewall: 1 restored, 1 not applied by nft "
                       "(applied on the next request)"]
    assert nft.live == {"198.51.100.9"}  # restored; the dry-run row was never put into the kernel on its own
    assert IP not in nft.live
    assert [a for a in nft.ran if a[:3] == ["nft", "-j", "list"]]  # the live set was asked
    clock.now += 10
    again = await ask(engine, pilot, request(IP, at=clock.now, duration_s=600).encode())
    assert again["status"] == "applied" and IP in nft.live
    await engine.close()


async def test_already_applied_only_when_the_live_set_has_it_and_says_extended_once(tmp_path: Path) -> None:
    clock, pilot = Clock(), FakePilot()
    nft = FakeNft()
    engine, _, _ = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await engine.prepare()
    assert (await ask(engine, pilot, request(IP, at=clock.now, duration_s=600).encode()))["status"] == "applied"
    clock.now += 100
    longer = await ask(engine, pilot, request(IP, at=clock.now, duration_s=3600).encode())
    assert longer["status"] == "already_applied"
    assert longer["detail"].startswith("expiry extended to ")
    assert longer["detail"].count("extended") == 1 and "already blocked" not in longer["detail"]

    nft.live.clear()  # someone flushed the set behind our back: the row is no proof any more
    clock.now += 10
    gone = await ask(engine, pilot, request(IP, at=clock.now, duration_s=3600).encode())
    assert gone["status"] == "applied" and "missing from the live nft firewall" in gone["detail"]
    assert IP in nft.live
    await engine.close()


async def test_an_unreadable_firewall_is_said_once_and_blocks_are_reapplied_not_claimed(tmp_path: Path) -> None:
    clock, pilot = Clock(), FakePilot()
    nft = FakeNft()
    engine, _, _ = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await engine.prepare()
    await ask(engine, pilot, request(IP, at=clock.now, duration_s=600).encode())
    await engine.close()

    nft.broken = "Operation not permitted"
    engine, _, updates = make(tmp_path, pilot, clock=clock, firewall=Firewall("nft", runner=nft))
    await engine.prepare()
    errors = [u.message for u in updates if isinstance(u, Notice) and u.level == "error"]
    assert len(errors) == 1 and errors[0].startswith("cannot read the live nft firewall")
    assert "unverified" in errors[0]
    clock.now += 10
    again = await ask(engine, pilot, request(IP, at=clock.now, duration_s=3600).encode())
    assert again["status"] == "applied" and "could not be read" in again["detail"]
    await engine.close()


def test_list_parsers_read_what_each_backend_prints() -> None:
    assert fw.parse_iptables_rules("-P INPUT ACCEPT\n-A INPUT -s 203.0.113.7/32 -m comment --comment pilot-tui -j "
                                   "DROP\n-A INPUT -s 10.0.0.0/8 -j DROP\n-A INPUT -s 198.51.100.1/32 -j ACCEPT\n") \
        == {IP}
    assert fw.parse_ufw_status("Status: active\n\nTo                         Action      From\n"
                               "--                         ------      ----\n"
                               "Anywhere                   DENY IN     203.0.113.7                # pilot-tui\n"
                               "Anywhere (v6)              DENY        2001:db8::7                # pilot-tui\n"
                               "22/tcp                     ALLOW       Anywhere\n") == {IP, "2001:db8::7"}


@pytest.mark.parametrize(("name", "answer", "query"), [
    ("iptables", "-A INPUT -s 203.0.113.7/32 -m comment --comment pilot-tui -j DROP\n", ["iptables", "-w", "-S", "INPUT"]),
    ("ufw", "Anywhere                   DENY        203.0.113.7\n", ["ufw", "status"]),
])
async def test_iptables_and_ufw_are_asked_through_the_runner(name: str, answer: str, query: Argv) -> None:
    ran: list[Argv] = []

    async def runner(argvs: Sequence[Argv], timeout: float) -> str:
        ran.extend(argvs)
        return answer if argvs[0][0] in ("iptables", "ufw") else ""

    backend = Firewall(name, runner=runner)
    assert await backend.contains(IP) and not await backend.contains("198.51.100.9")
    assert query in ran


# -- the block duration ----------------------------------------------------------------------------------------


def test_block_duration_flag_and_config(tmp_path: Path) -> None:
    sim = str(Path(sys.executable).with_name("pilot-sim"))
    args = build_parser().parse_args(["executor", "--headless", "--state-dir", str(tmp_path), "--pilotctl", sim,
                                      "--block-duration", "10m"])
    assert args.block_duration == 600
    engine = executor_cmd.build_engine(args)
    assert engine.default_duration_s == 600
    engine.store.close()

    cfg = tmp_path / "pilot-tui.toml"
    cfg.write_text('[executor]\nblock_duration = "2h"\n')
    args = config.apply(build_parser().parse_args(["executor", "--config", str(cfg), "--state-dir", str(tmp_path),
                                                   "--pilotctl", sim]), "executor")
    engine = executor_cmd.build_engine(args)
    assert engine.default_duration_s == 7200
    engine.store.close()
    args = build_parser().parse_args(["executor", "--state-dir", str(tmp_path), "--pilotctl", sim])
    engine = executor_cmd.build_engine(args)
    assert engine.default_duration_s == 3600  # unchanged default: 1h
    engine.store.close()
    with pytest.raises(ValueError, match="block_duration"):
        executor_cmd.block_duration_s("soon")


async def test_a_ten_minute_block_duration_expires_after_600_seconds(tmp_path: Path) -> None:
    clock, pilot = Clock(), FakePilot()
    engine, _, _ = make(tmp_path, pilot, clock=clock, default_duration_s=600)
    await engine.prepare()
    reply = await ask(engine, pilot, request(IP, at=clock.now).encode())  # the request names no duration
    assert reply["status"] == "applied" and "600s" in reply["detail"]
    row = engine.store.get_block(IP)
    assert row is not None and row.expires_at == clock.now + 600
    clock.now += 599
    assert await engine.expire_due() == 0
    clock.now += 1
    assert await engine.expire_due() == 1 and engine.store.get_block(IP) is None
    await engine.close()
