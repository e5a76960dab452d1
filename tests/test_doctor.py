"""``pilot-tui doctor --peer``: trust judged the way pilotctl 1.18 lets traffic through, and a bounded probe.

On the real daemon the APPROVING node's trust entry says ``mutual: false`` after ``approve``, and traffic flows both
ways anyway; doctor must pass there, and when something is missing its hint must name the command and the node.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (pytest fixtures)

from pilot_tui.sim.cluster import SimNode, set_faults, stop_node

pytestmark = pytest.mark.timeout(90)

SIM_BIN = str(Path(sys.executable).with_name("pilot-sim"))


def doctor(node: SimNode, peer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``pilot-tui doctor --peer PEER`` run as ``node`` (its HOME / PILOT_SOCKET), pilotctl = pilot-sim."""
    return subprocess.run(
        [sys.executable, "-m", "pilot_tui", "doctor", "--peer", peer, "--pilotctl", SIM_BIN,
         "--state-dir", str(node.home / "doctor-state"), *extra],
        env=node.env, capture_output=True, text=True, timeout=60,
    )


def checks(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in orjson.loads(proc.stdout)["checks"]}


def line(proc: subprocess.CompletedProcess[str], name: str) -> str:
    """The check's line and its hint line (if any) from the text report."""
    lines = proc.stdout.splitlines()
    for i, text in enumerate(lines):
        if text[6:].startswith(f"{name} "):
            hint = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("hint:") else ""
            return f"{text}\n{hint}"
    raise AssertionError(f"no {name} line in:\n{proc.stdout}")


def test_doctor_passes_on_the_approving_node(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "orch", trust=[("oracle", "orch")])  # oracle asked, orch approved
    orch, oracle = nodes["orch"], nodes["oracle"]
    assert orch.json("trust")["trusted"][0]["mutual"] is False  # what 1.18 shows on the approver

    out = doctor(orch, "oracle")
    assert out.returncode == 0, out.stdout
    assert "FAIL" not in out.stdout
    trust = line(out, "trust")
    assert trust.startswith("ok    trust") and "approved by us" in trust and "mutual:false" in trust
    assert "normal" in trust and "approve this node" not in out.stdout
    assert line(out, "ping").startswith("ok    ping") and "reachable" in line(out, "ping")

    report = doctor(orch, "oracle", "--json")
    assert report.returncode == 0
    found = checks(report)
    assert orjson.loads(report.stdout)["ok"] is True
    assert found["trust"]["ok"] is True and "approved by us" in str(found["trust"]["detail"])
    assert found["ping"]["ok"] is True

    # the requester's side: mutual true, passes too
    back = doctor(oracle, "orch")
    assert back.returncode == 0 and "mutual trust with orch" in line(back, "trust")


def test_doctor_without_trust_names_the_handshake_command(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "orch")
    oracle, orch = nodes["oracle"], nodes["orch"]

    out = doctor(oracle, "orch")
    assert out.returncode == 1
    trust = line(out, "trust")
    assert trust.startswith("FAIL  trust")
    assert "pilotctl handshake orch" in trust and f"on orch: pilotctl approve {oracle.node_id}" in trust
    found = checks(doctor(oracle, "orch", "--json"))
    assert found["trust"]["ok"] is False and "pilotctl handshake orch" in str(found["trust"]["hint"])

    # once the oracle asked, the orchestrator's doctor says exactly what to approve, here
    oracle.json("handshake", "orch", "alerts")
    there = doctor(orch, "oracle")
    assert there.returncode == 1
    assert f"approve it here: pilotctl approve {oracle.node_id}" in line(there, "trust")
    orch.json("approve", str(oracle.node_id))
    assert doctor(orch, "oracle").returncode == 0  # the hint led somewhere
    assert doctor(oracle, "orch").returncode == 0


def test_doctor_probe_is_bounded(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "orch", trust=[("oracle", "orch")])
    oracle, orch = nodes["oracle"], nodes["orch"]

    # a peer that takes 30 s to accept a stream: pilotctl ping alone would wait 10 s per dial
    set_faults(orch, latency_ms=30_000)
    start = time.monotonic()
    slow = doctor(oracle, "orch")
    assert time.monotonic() - start < 9
    assert slow.returncode == 1
    assert line(slow, "trust").startswith("ok    trust")  # trusted, just not answering
    ping = line(slow, "ping")
    assert ping.startswith("FAIL  ping") and "did not answer within" in ping and "on orch: pilotctl daemon" in ping

    # a peer whose daemon is down: FAIL at once, with the same lead
    stop_node(orch)
    start = time.monotonic()
    down = doctor(oracle, "orch", "--json")
    assert time.monotonic() - start < 6
    assert down.returncode == 1
    found = checks(down)
    assert found["trust"]["ok"] is True and found["ping"]["ok"] is False
    assert "pilotctl daemon status" in str(found["ping"]["hint"])


def test_doctor_on_an_untrusted_public_peer_passes_and_changes_no_trust(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "agent", public=["agent"])
    oracle, agent = nodes["oracle"], nodes["agent"]
    out = doctor(oracle, "agent")
    assert out.returncode == 0, out.stdout
    assert "public node" in line(out, "trust") and line(out, "ping").startswith("ok    ping")
    assert agent.json("pending") == {"pending": []} and oracle.json("trust")["trusted"] == []


@pytest.mark.parametrize("binary", ["real", "sim"])
@pytest.mark.parametrize("auto_handshake", [True, False])
async def test_ping_argv_is_accepted_by_both_binaries(binary: str, auto_handshake: bool, tmp_path: Path) -> None:
    """The probe's argv parses on the real 1.18 binary as on pilot-sim: with no daemon both say not_running."""
    from pilot_tui.pilot import errors
    from pilot_tui.pilot.binary import packaged_pilotctl
    from pilot_tui.pilot.driver import Pilotctl

    path = str(packaged_pilotctl() or "") if binary == "real" else SIM_BIN
    if not path:
        pytest.skip("pilotprotocol (real pilotctl) not installed")
    env = {"HOME": str(tmp_path), "PILOT_SOCKET": str(tmp_path / "none.sock"), "PILOT_SIM_HOME": str(tmp_path / "n")}
    with pytest.raises(errors.NotRunning) as info:
        await Pilotctl(path, env=env, timeout=10).ping("orch", auto_handshake=auto_handshake)
    assert "pilotctl daemon start" in info.value.hint
