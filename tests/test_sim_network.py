"""pilot-sim nodes talking to each other: the contract's stream and trust behaviour, end to end.

Every test runs real daemons (one process per node) and the real command line, so bytes go
client -> daemon A -> daemon B -> receiver over Unix sockets.
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import time

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (pytest fixtures)

from pilot_tui.sim.cluster import SimNode, sim_command

pytestmark = pytest.mark.timeout(30)

SEED_EVENT = '{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}'


def _err(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def _popen(node: SimNode, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*sim_command(), *args], env=node.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_bound(node: SimNode, port: int) -> None:
    """Wait until ``port`` is bound on ``node`` (a second bind then fails)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if node.json("info")["ports"] > 2:
            return
        time.sleep(0.02)
    raise AssertionError(f"port {port} never got bound")


def test_acceptance_connect_waits_for_recv_timer(sim_nodes) -> None:  # noqa: F811
    """The issue's case: recv --count 1 --timeout 3s on B, the seed's echo | connect on A."""
    nodes = sim_nodes("log-oracle", "threat-orch", trust=[("log-oracle", "threat-orch")])
    a, b = nodes["log-oracle"], nodes["threat-orch"]
    recv = _popen(b, "recv", "1000", "--count", "1", "--timeout", "3s")
    try:
        _wait_bound(b, 1000)
        start = time.monotonic()
        conn = a.run("connect", "threat-orch", "1000", input=SEED_EVENT + "\n")
        elapsed = time.monotonic() - start
        out, err = recv.communicate(timeout=10)
    finally:
        recv.kill()
    assert conn.returncode == 0, conn.stderr
    assert 2.5 <= elapsed <= 5.0
    assert f"sent {len(SEED_EVENT)} bytes (no response)" in conn.stderr
    assert recv.returncode == 0
    assert out == SEED_EVENT + "\n"


def test_recv_json_envelope_and_bound_ports(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("a", "b", trust=[("a", "b")])
    a, b = nodes["a"], nodes["b"]
    recv = _popen(b, "--json", "recv", "1000", "--count", "2", "--timeout", "1s")
    try:
        _wait_bound(b, 1000)
        busy = b.run("--json", "recv", "1000", "--timeout", "1s")
        assert busy.returncode == 1
        assert _err(busy)["code"] == "connection_failed"
        assert _err(busy)["message"] == "listen: bind: daemon: port 1000 already bound"
        first = a.run("--json", "connect", "b", "1000", "--message", "one", "--timeout", "5s")
        out, _ = recv.communicate(timeout=10)
    finally:
        recv.kill()
    assert first.returncode == 0
    assert json.loads(first.stdout)["data"] == {
        "port": 1000,
        "response": "",
        "sent": "one",
        "target": b.address,
    }
    env = json.loads(out)
    assert env == {
        "data": {"messages": [{"bytes": 3, "data": "one", "port": 1000, "seq": 0}], "timeout": True},
        "status": "ok",
    }
    for port in ("1001", "1002"):
        assert (
            _err(b.run("--json", "recv", port))["message"]
            == f"listen: bind: daemon: port {port} already bound"
        )
    assert json.loads(b.run("--json", "recv", "1000", "--count", "0").stdout)["data"] == {
        "messages": None,
        "timeout": False,
    }


def test_trust_find_and_errors(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("alpha", "beta")
    a, b = nodes["alpha"], nodes["beta"]
    found = a.json("find", "beta")  # registered hostnames resolve without trust
    assert found == {"address": b.address, "hostname": "beta", "node_id": b.node_id, "public": False}
    assert b.address == "0:0000.0000.0002"

    untrusted = a.run("--json", "connect", "beta", "1000", "--message", "x")
    assert untrusted.returncode == 1
    assert _err(untrusted) == {
        "code": "trust_required",
        "error": f"refusing tunnel to private node {b.address} without trust",
        "hint": f"run: pilotctl handshake {b.address}",
        "message": f"refusing tunnel to private node {b.address} without trust",
        "status": "error",
    }
    for args in (
        ("send-message", "beta", "--data", "x"),
        ("publish", "beta", "t", "--data", "x"),
        ("subscribe", "beta", "t"),
    ):
        assert _err(a.run("--json", *args))["code"] == "trust_required"

    unknown = a.run("--json", "connect", "gamma", "1000", "--message", "x")
    assert _err(unknown)["code"] == "not_found"
    assert _err(unknown)["message"] == (
        'cannot resolve "gamma" — is the hostname correct and is there mutual trust? (see: pilotctl handshake)'
    )
    assert _err(a.run("--json", "find", "gamma"))["code"] == "not_found"

    assert a.json("handshake", "beta", "need to send alerts") == {"node_id": b.node_id, "status": "sent"}
    pending = b.json("pending")["pending"]
    assert len(pending) == 1
    assert pending[0]["node_id"] == a.node_id and pending[0]["justification"] == "need to send alerts"
    assert abs(pending[0]["received_at"] - time.time()) < 60
    assert a.json("pending") == {"pending": []}
    assert b.json("approve", str(a.node_id)) == {"node_id": a.node_id, "status": "approved"}
    assert b.json("pending") == {"pending": []}
    for me, peer, mutual in ((a, b, True), (b, a, False)):  # 1.18: the approver's entry says mutual: false
        trusted = me.json("trust")
        assert trusted["total"] == 1
        assert trusted["trusted"][0]["node_id"] == peer.node_id and trusted["trusted"][0]["mutual"] is mutual
    # approve with nothing pending still says success (and changes nothing)
    assert a.json("approve", "99") == {"node_id": 99, "status": "approved"}
    assert a.json("handshake", "beta")["status"] == "already_trusted"

    # trusted now: nobody bound on the port -> connection_failed at once
    start = time.monotonic()
    refused = a.run("--json", "connect", "beta", "1000", "--message", "x", "--timeout", "10s")
    assert time.monotonic() - start < 2
    assert _err(refused) == {
        "code": "connection_failed",
        "error": f"cannot connect to {b.address} port 1000",
        "hint": f"check that {b.address} is reachable: pilotctl ping {b.address}",
        "message": f"cannot connect to {b.address} port 1000",
        "status": "error",
    }
    bad_port = a.run("--json", "connect", "beta", "x", "--message", "m")
    assert _err(bad_port)["message"] == 'invalid port "x": strconv.ParseUint: parsing "x": invalid syntax'
    assert a.json("peers") == {"encrypted": 0, "peers": None, "total": 0} or a.json("peers")["total"] >= 0


def test_peers_is_null_when_empty(sim_nodes) -> None:  # noqa: F811
    a = sim_nodes("lonely")["lonely"]
    assert a.json("peers") == {"encrypted": 0, "peers": None, "total": 0}
    info = a.json("info")
    assert info["node_id"] == 1 and info["hostname"] == "lonely" and info["version"] == "1.18.0-sim"


def test_timeout_when_peer_neither_replies_nor_closes(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("a", "b", trust=[("a", "b")])
    a, b = nodes["a"], nodes["b"]
    drv = b.driver()
    ln = drv.listen(1000)
    try:
        start = time.monotonic()
        proc = a.run("--json", "connect", "b", "1000", "--message", "ping", "--timeout", "500ms")
        assert 0.4 <= time.monotonic() - start < 3
        assert proc.returncode == 1
        assert _err(proc) == {
            "code": "timeout",
            "error": "no response within 500ms",
            "hint": "increase with --timeout, or check if the target is listening on that port",
            "message": "no response within 500ms",
            "status": "error",
        }
        conn = ln.accept()  # ... and yet the data was delivered
        conn.set_read_deadline(time.time() + 2)
        assert conn.read(100) == b"ping"
        conn.close()
    finally:
        ln.close()
        drv.close()


def test_connect_stdin_rules(sim_nodes, tmp_path) -> None:  # noqa: F811
    nodes = sim_nodes("a", "b", trust=[("a", "b")])
    a, b = nodes["a"], nodes["b"]
    empty = a.run("--json", "connect", "b", "1000", input=b"")
    assert _err(empty)["code"] == "invalid_argument"
    assert _err(empty)["message"] == "no data on stdin — use --message or pipe data"
    blank = a.run("--json", "connect", "b", "1000", input=b"\n\r\n\n")
    assert _err(blank)["message"] == "no data on stdin — use --message or pipe data"
    with open(os.devnull, "rb") as devnull:  # /dev/null is a character device, like a terminal
        proc = subprocess.run(
            [*sim_command(), "--json", "connect", "b", "1000"],
            stdin=devnull,
            env=a.env,
            capture_output=True,
            text=True,
        )
    leader, follower = pty.openpty()  # a real terminal on stdin
    try:
        tty_proc = subprocess.run(
            [*sim_command(), "--json", "connect", "b", "1000"],
            stdin=follower,
            env=a.env,
            capture_output=True,
            text=True,
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert _err(tty_proc) == _err(proc)
    assert _err(proc) == {
        "code": "invalid_argument",
        "error": "--message is required (interactive mode not supported)",
        "hint": "use --message to send a single message, or pipe data via stdin",
        "message": "--message is required (interactive mode not supported)",
        "status": "error",
    }
    drv = b.driver()
    ln = drv.listen(1000)
    proc = subprocess.Popen(
        [*sim_command(), "--json", "connect", "b", "1000", "--timeout", "5s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=a.env,
        text=False,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"\n\r\nfirst\r\nsecond\n\nthird\n")
        proc.stdin.close()
        conn = ln.accept()
        conn.set_read_deadline(time.time() + 1)
        got = conn.read(1000)
        conn.write(b"ok")
        conn.close()
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait(timeout=10)
    finally:
        proc.kill()
        ln.close()
        drv.close()
    assert got == b"first\nsecond\n\nthird"  # CRLF->LF, leading blank lines and the final newline dropped
    assert json.loads(out)["data"] == {
        "port": 1000,
        "response": "ok",
        "sent": "first\nsecond\n\nthird",
        "target": b.address,
    }


def test_daemon_stop_then_not_running_and_stale_socket(sim_nodes) -> None:  # noqa: F811
    a = sim_nodes("a")["a"]
    status = a.json("daemon", "status")
    assert status["running"] is True and status["responsive"] is True and status["node_id"] == a.node_id
    stopped = a.json("daemon", "stop")
    assert stopped == {"pid": a.pid}
    assert not os.path.exists(a.socket)
    down = a.run("--json", "info")
    assert down.returncode == 1
    assert _err(down) == {
        "code": "not_running",
        "error": "daemon is not running",
        "hint": f"start the daemon with: pilotctl daemon start  (tried {a.socket})",
        "message": "daemon is not running",
        "status": "error",
    }
    status = a.run("--json", "daemon", "status")
    assert status.returncode == 0
    assert json.loads(status.stdout)["data"]["running"] is False
    assert json.loads(status.stdout)["data"]["responsive"] is False
    stale = socket.socket(socket.AF_UNIX)  # a socket file nobody listens on
    stale.bind(a.socket)
    stale.close()
    assert _err(a.run("--json", "connect", "x", "--message", "m"))["code"] == "not_running"
    assert _err(a.run("--json", "daemon", "stop"))["code"] == "not_running"
    restarted = a.json("daemon", "start", "--hostname", "a")  # replaces the stale socket, keeps the identity
    assert restarted["node_id"] == a.node_id and restarted["address"] == a.address


def test_daemon_start_rejects_bad_hostname_and_double_start(sim_nodes, tmp_path) -> None:  # noqa: F811
    a = sim_nodes("a")["a"]
    again = a.run("--json", "daemon", "start", "--hostname", "a")
    assert _err(again)["code"] == "already_exists"
    taken = subprocess.run(  # another node may not take a running node's hostname
        [*sim_command(), "--json", "daemon", "start", "--hostname", "a"],
        env={**a.env, "HOME": str(tmp_path), "PILOT_SOCKET": str(tmp_path / "x.sock")},
        capture_output=True,
        text=True,
    )
    assert taken.returncode == 1 and "already taken" in _err(taken)["message"]
    for bad in ("Upper", "-lead", "trail-", "a" * 64, "under_score"):
        proc = subprocess.run(
            [*sim_command(), "--json", "daemon", "start", f"--hostname={bad}"],
            env={**a.env, "HOME": str(tmp_path), "PILOT_SOCKET": str(tmp_path / "x.sock")},
            capture_output=True,
            text=True,
        )
        assert _err(proc)["code"] == "invalid_argument", bad
