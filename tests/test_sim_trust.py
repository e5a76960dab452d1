"""pilot-sim's trust and ``ping`` against what the real pilotctl 1.18 does (contract: "Trust and state", 2026-12-04).

The real daemon keeps ``"mutual": false`` in the APPROVER's trust entry after ``approve`` (the requester's says
true), a reverse handshake from the approver leaves no pending request, and traffic flows both ways anyway.
``ping``'s output and exit codes follow pilotctl's ``cmdPing``: the ok envelope on stdout even when every probe
failed (exit 1 then), refusals before any probe as the usual stderr envelope.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (pytest fixtures)

from pilot_tui.sim.cluster import stop_node

pytestmark = pytest.mark.timeout(60)


def _err(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_approver_sees_mutual_false_yet_traffic_flows_both_ways(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("asker", "approver")
    a, b = nodes["asker"], nodes["approver"]
    assert a.json("handshake", "approver", "need to send alerts")["status"] == "sent"
    assert b.json("approve", str(a.node_id)) == {"node_id": a.node_id, "status": "approved"}

    [on_a] = a.json("trust")["trusted"]
    [on_b] = b.json("trust")["trusted"]
    assert (on_a["node_id"], on_a["mutual"]) == (b.node_id, True)  # the requester learnt of the approval
    assert (on_b["node_id"], on_b["mutual"]) == (a.node_id, False)  # the approver's own record stays false
    assert "one-way" in b.run("trust").stdout  # what pilotctl's plain listing tags such a row with

    # a reverse handshake from the approver sends nothing: no pending request shows on the requester
    assert b.json("handshake", "asker", "make it mutual")["status"] == "already_trusted"
    time.sleep(0.2)
    assert a.json("pending") == {"pending": []}
    assert b.json("trust")["trusted"][0]["mutual"] is False

    # ... and traffic flows both ways all the same
    for me, peer in ((a, "approver"), (b, "asker")):
        sent = me.run("--json", "send-message", peer, "--data", f"hello from {me.hostname}")
        assert sent.returncode == 0, sent.stderr  # acknowledged by the peer's daemon
        probe = me.run("--json", "ping", peer, "--count", "1")
        assert probe.returncode == 0, probe.stderr
        assert "error" not in json.loads(probe.stdout)["data"]["results"][0]


def test_handshake_answered_by_handshake_is_mutual_on_both_sides(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("left", "right")
    a, b = nodes["left"], nodes["right"]
    a.json("handshake", "right")
    b.json("handshake", "left")  # the daemon auto-approves a request it has one outstanding for
    assert a.json("trust")["trusted"][0]["mutual"] is True
    assert b.json("trust")["trusted"][0]["mutual"] is True
    assert a.json("pending") == b.json("pending") == {"pending": []}


def test_ping_envelopes_and_exit_codes(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("src", "dst", "stranger", trust=[("src", "dst")])
    a, b, c = nodes["src"], nodes["dst"], nodes["stranger"]

    ok = a.run("--json", "ping", "dst", "--count", "2", "--timeout", "5s")
    assert ok.returncode == 0 and ok.stderr == ""
    data = json.loads(ok.stdout)["data"]
    assert set(data) == {"results", "target", "timeout", "to"}
    assert data["target"] == data["to"] == b.address and data["timeout"] is False
    assert [sorted(r) for r in data["results"]] == [["bytes", "rtt_ms", "seq"]] * 2
    assert [r["seq"] for r in data["results"]] == [0, 1] and data["results"][0]["bytes"] == len("ping-0")

    plain = a.run("ping", "dst", "--count", "1")
    lines = plain.stdout.splitlines()
    assert plain.returncode == 0 and lines[0] == f"PING {b.address}" and lines[1].startswith("seq=0 bytes=6 time=")

    # no trust: refused client-side before any probe, like connect
    refused = c.run("--json", "ping", "src", "--count", "1")
    assert refused.returncode == 1 and refused.stdout == ""
    assert _err(refused) == {
        "code": "trust_required",
        "error": f"refusing tunnel to private node {a.address} without trust",
        "hint": f"run: pilotctl handshake {a.address}",
        "message": f"refusing tunnel to private node {a.address} without trust",
        "status": "error",
    }
    unknown = a.run("--json", "ping", "nobody", "--count", "1")
    assert unknown.returncode == 1 and _err(unknown)["code"] == "not_found"

    # every probe failed: the ok envelope on stdout, exit 1, nothing on stderr
    stop_node(b)
    down = a.run("--json", "ping", b.address, "--count", "1")
    assert down.returncode == 1 and down.stderr == ""
    env = json.loads(down.stdout)
    assert env["status"] == "ok" and env["data"]["timeout"] is False
    assert sorted(env["data"]["results"][0]) == ["error", "seq"]

    # the echo port is the daemon's own: nobody can bind it
    taken = a.run("--json", "recv", "7", "--timeout", "1s")
    assert taken.returncode == 1 and "port 7 already bound" in _err(taken)["message"]
