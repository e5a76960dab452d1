"""Firewall backends: the argv each one builds (IPv4 and IPv6), dry-run recording, and the runner's error path."""

from __future__ import annotations

import sys

import pytest

from pilot_tui.engines import firewall as fw
from pilot_tui.engines.firewall import Argv, Firewall, FirewallError, run_argvs

pytestmark = pytest.mark.timeout(20)

V4, V6 = "203.0.113.7", "2001:db8::7"


def test_nft_setup_is_idempotent_and_drops_both_families() -> None:
    setup = fw.nft_setup_argv()
    assert setup[0] == ["nft", "add", "table", "inet", "pilot_tui"]
    assert ["nft", "add", "set", "inet", "pilot_tui", "blocklist", "{ type ipv4_addr; flags timeout; }"] in setup
    assert ["nft", "add", "set", "inet", "pilot_tui", "blocklist6", "{ type ipv6_addr; flags timeout; }"] in setup
    # the chain is flushed before its rules are added, so a restart never stacks duplicate rules
    flush = setup.index(["nft", "flush", "chain", "inet", "pilot_tui", "input"])
    assert setup[flush + 1:] == [
        ["nft", "add", "rule", "inet", "pilot_tui", "input", "ip", "saddr", "@blocklist", "drop"],
        ["nft", "add", "rule", "inet", "pilot_tui", "input", "ip6", "saddr", "@blocklist6", "drop"],
    ]
    assert all(a[0] == "nft" and a[1] in ("add", "flush") for a in setup)


@pytest.mark.parametrize(("ip", "setname"), [(V4, "blocklist"), (V6, "blocklist6")])
def test_nft_element_argv(ip: str, setname: str) -> None:
    assert fw.nft_block_argv(ip, 3600) == [
        ["nft", "add", "element", "inet", "pilot_tui", setname, f"{{ {ip} timeout {3600 + fw.NFT_GRACE_S}s }}"]]
    assert fw.nft_unblock_argv(ip) == [["nft", "delete", "element", "inet", "pilot_tui", setname, f"{{ {ip} }}"]]


@pytest.mark.parametrize(("ip", "tool"), [(V4, "iptables"), (V6, "ip6tables")])
def test_iptables_argv(ip: str, tool: str) -> None:
    rule = ["INPUT", "-s", ip, "-j", "DROP", "-m", "comment", "--comment", "pilot-tui"]
    assert fw.iptables_block_argv(ip) == [[tool, "-w", "-I", *rule]]
    assert fw.iptables_unblock_argv(ip) == [[tool, "-w", "-D", *rule]]


def test_ufw_argv() -> None:
    assert fw.ufw_block_argv(V4) == [["ufw", "insert", "1", "deny", "from", V4, "comment", "pilot-tui"]]
    assert fw.ufw_block_argv(V6) == [["ufw", "prepend", "deny", "from", V6, "comment", "pilot-tui"]]
    assert fw.ufw_unblock_argv(V4) == [["ufw", "delete", "deny", "from", V4]]
    assert fw.ufw_unblock_argv(V6) == [["ufw", "delete", "deny", "from", V6]]


async def test_dry_run_records_and_runs_nothing() -> None:
    ran: list[list[Argv]] = []

    async def runner(argvs: list[Argv], timeout: float) -> None:
        ran.append(argvs)

    dry = Firewall("dry-run", runner=runner)
    first = await dry.block(V4, 60)
    assert first == fw.nft_setup_argv() + fw.nft_block_argv(V4, 60)
    assert await dry.block(V6, 60) == fw.nft_block_argv(V6, 60)  # setup only on first use
    assert await dry.unblock(V4) == fw.nft_unblock_argv(V4)
    assert dry.recorded == first + fw.nft_block_argv(V6, 60) + fw.nft_unblock_argv(V4)
    assert ran == []
    assert await Firewall("dry-run", simulate="ufw").block(V4, 60) == fw.ufw_block_argv(V4)


@pytest.mark.parametrize("name", ["nft", "iptables", "ufw"])
async def test_real_backends_hand_their_argv_to_the_runner(name: str) -> None:
    ran: list[Argv] = []

    async def runner(argvs: list[Argv], timeout: float) -> None:
        ran.extend(argvs)

    backend = Firewall(name, runner=runner)
    await backend.block(V6, 10)
    await backend.unblock(V6)
    assert ran == backend.block_argv(V6, 10) + backend.unblock_argv(V6) or name == "nft"
    assert all(isinstance(part, str) for argv in ran for part in argv) and backend.recorded == []
    extend = backend.extend_argv(V6, 10)
    assert (extend != []) == (name == "nft")  # only nft keeps an expiry in the kernel


async def test_unblock_of_a_missing_rule_counts_as_done() -> None:
    async def runner(argvs: list[Argv], timeout: float) -> None:
        raise FirewallError("nft delete element failed", argv=argvs[0], returncode=1,
                            stderr="Error: Could not process rule: No such file or directory")

    assert await Firewall("nft", runner=runner).unblock(V4) == fw.nft_unblock_argv(V4)

    async def denied(argvs: list[Argv], timeout: float) -> None:
        raise FirewallError("denied", argv=argvs[0], returncode=1, stderr="Operation not permitted")

    with pytest.raises(FirewallError):
        await Firewall("nft", runner=denied).unblock(V4)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown firewall backend"):
        Firewall("pf")
    with pytest.raises(ValueError, match="simulate"):
        Firewall("dry-run", simulate="dry-run")


async def test_runner_reports_stderr_and_missing_binaries() -> None:
    # the runner itself, exercised with the Python interpreter instead of a firewall tool
    await run_argvs([[sys.executable, "-c", "pass"]])
    with pytest.raises(FirewallError) as info:
        await run_argvs([[sys.executable, "-c", "import sys; sys.stderr.write('Bad rule (does a matching rule "
                          "exist in that chain?)\\n'); sys.exit(1)"]])
    assert info.value.returncode == 1 and info.value.absent and "Bad rule" in str(info.value)
    with pytest.raises(FirewallError, match="cannot run"):
        await run_argvs([["/nonexistent/nft", "list", "ruleset"]])
    with pytest.raises(FirewallError, match="did not finish"):
        await run_argvs([[sys.executable, "-c", "import time; time.sleep(5)"]], timeout=0.2)
