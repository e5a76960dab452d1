"""The SDK twin (pilot_tui.sim.sdk): same API and blocking behaviour as pilotprotocol's Driver."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import threading
import time

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (pytest fixtures)

from pilot_tui.sim import sdk
from pilot_tui.sim.cluster import sim_command

pytestmark = pytest.mark.timeout(30)


def _serve_once(ln: sdk.Listener, replies: list[bytes]) -> threading.Thread:
    """A tiny stream server: read what arrives, answer with what it stored, close."""

    def run() -> None:
        while True:
            try:
                conn = ln.accept()
            except sdk.PilotError:
                return
            conn.set_read_deadline(time.time() + 2)
            data = conn.read(65536)
            replies.append(data)
            conn.write(b"stored " + str(len(data)).encode())
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sdk_server_replies_and_connect_returns_at_once(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "orch", trust=[("oracle", "orch")])
    a, b = nodes["oracle"], nodes["orch"]
    drv = sdk.Driver(b.socket)
    assert drv.info()["address"] == b.address
    ln = drv.listen(1000)
    got: list[bytes] = []
    server = _serve_once(ln, got)
    try:
        busy = b.run("--json", "recv", "1000", "--timeout", "1s")  # one port table for SDK and recv
        assert json.loads(busy.stderr)["message"] == "listen: bind: daemon: port 1000 already bound"
        with pytest.raises(sdk.PilotError):
            drv.listen(1000)
        timings = []
        for _ in range(3):
            start = time.monotonic()
            proc = a.run("--json", "connect", "orch", "1000", input='{"id":1}\n')
            timings.append(time.monotonic() - start)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["data"]["response"] == "stored 8"
        assert min(timings) < 0.5  # the whole subprocess, well under a second (vs. a recv timer)
        plain = a.run("connect", "orch", "1000", "--message", "hi")
        assert plain.returncode == 0 and plain.stdout == "stored 2\n"
        assert got[0] == b'{"id":1}'
    finally:
        ln.close()  # from this thread: ends the server's blocked accept()
        server.join(timeout=5)
        drv.close()
    assert not server.is_alive()
    assert b.run("--json", "recv", "1000", "--count", "0").returncode == 0  # unbound again


def test_sdk_read_deadline_eof_and_dial(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("a", "b", trust=[("a", "b")])
    a, b = nodes["a"], nodes["b"]
    drv_b, drv_a = b.driver(), a.driver()
    ln = drv_b.listen(7000)
    try:
        conn_out = drv_a.dial(f"{b.address}:7000", timeout=5)
        conn_in = ln.accept()
        conn_in.set_read_deadline(time.time() + 0.2)
        start = time.monotonic()
        with pytest.raises(sdk.PilotError):
            conn_in.read()  # nothing sent: the deadline ends the read
        assert time.monotonic() - start < 2
        conn_in.set_read_deadline(None)
        assert conn_out.write(b"hello") == 5
        assert conn_in.read_full(5) == b"hello"
        conn_in.write(b"back")
        assert conn_out.read(10) == b"back"
        conn_out.close()
        assert conn_in.read() == b""  # EOF once the peer closed
        conn_in.close()
        with pytest.raises(sdk.PilotError):
            conn_in.read()
        with pytest.raises(sdk.PilotError):
            drv_a.dial(f"{b.address}:7001", timeout=2)  # nobody bound there
        with pytest.raises(sdk.PilotError):
            drv_a.dial(f"{a.address}:7000", timeout=2)  # a node cannot dial itself
    finally:
        ln.close()
        drv_a.close()
        drv_b.close()
    with pytest.raises(sdk.PilotError):
        sdk.Driver(b.socket + ".missing")


def test_sdk_listener_close_from_another_thread(sim_nodes) -> None:  # noqa: F811
    b = sim_nodes("b")["b"]
    drv = b.driver()
    ln = drv.listen(1000)
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            ln.accept()
        except sdk.PilotError as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.2)
    ln.close()
    thread.join(timeout=5)
    drv.close()
    assert not thread.is_alive() and len(errors) == 1


def test_sdk_twin_has_the_real_sdk_surface() -> None:
    """Same names and parameters as pilotprotocol.client (compared when the real SDK is installed)."""
    if importlib.util.find_spec("pilotprotocol") is None:
        pytest.skip("pilotprotocol not installed")
    from pilotprotocol import client as real

    for cls in ("Driver", "Listener", "Conn"):
        assert hasattr(sdk, cls)
    assert sdk.PilotError.__name__ == real.PilotError.__name__
    for cls, methods in {
        "Driver": (
            "__init__",
            "close",
            "info",
            "dial",
            "listen",
            "resolve_hostname",
            "handshake",
            "approve_handshake",
            "pending_handshakes",
            "trusted_peers",
            "send_message",
            "publish_event",
        ),
        "Listener": ("accept", "close"),
        "Conn": ("read", "read_full", "write", "close", "set_read_deadline"),
    }.items():
        for name in methods:
            mine = inspect.signature(getattr(getattr(sdk, cls), name))
            theirs = inspect.signature(getattr(getattr(real, cls), name))
            assert list(mine.parameters) == list(theirs.parameters), (cls, name)
            for p in mine.parameters.values():
                assert p.default == theirs.parameters[p.name].default, (cls, name, p.name)


def test_sdk_send_message_and_publish(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("a", "b", trust=[("a", "b")])
    a, b = nodes["a"], nodes["b"]
    with a.driver() as drv:
        result = drv.send_message("b", b'{"x":1}', "json")
        assert result == {"sent": 7, "type": "json", "target": b.address, "ack": "ACK JSON 7 bytes"}
        sub = subprocess.Popen(
            [*sim_command(), "--json", "subscribe", "a", "t", "--count", "1", "--timeout", "5s"],
            env=b.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 5
            while drv.info()["event_subscribers"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            with b.driver() as drv_b:
                drv_b.publish_event("a", "t", b"evt")
            out, _ = sub.communicate(timeout=10)
        finally:
            sub.kill()
    assert json.loads(out)["data"]["events"] == [{"bytes": 3, "data": "evt", "topic": "t"}]
    assert json.loads(next(b.inbox.glob("JSON-*.json")).read_text())["data"] == '{"x":1}'
