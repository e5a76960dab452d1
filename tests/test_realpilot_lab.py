"""Facts of the real network, checked on real ``pilot-daemon`` 1.18 nodes (``bench/lab.py``), that ``pilot-sim``
copies (``../shared/pilotctl-contract.md``).

Opt-in: needs root (a loopback-only network namespace), the ``pilotprotocol`` wheel and a rendezvous binary built
outside this project, given as ``PILOT_RENDEZVOUS=/path/to/rendezvous``. Without them every test here is skipped
with the reason, at once (CI has no rendezvous binary). Run::

    PILOT_RENDEZVOUS=/path/to/rendezvous pytest -m realpilot tests/test_realpilot_lab.py

One lab (two nodes, ``lab-oracle`` handshakes, ``lab-orch`` approves) serves the whole module: ~1 s to bring up.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.lab import RealLab  # noqa: E402

UNAVAILABLE = RealLab.unavailable()

pytestmark = [
    pytest.mark.realpilot,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"real-daemon lab: {UNAVAILABLE}"),
    pytest.mark.timeout(120),
]

REPLY_CUT = 1152
"""Measured on 1.18 (2026-12-04): ``pilotctl connect`` returns at most the first 1,152 bytes of a reply."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLab]:
    with RealLab(tmp_path_factory.mktemp("lab"), nodes=["lab-oracle", "lab-orch"],
                 trust=[("lab-oracle", "lab-orch")]) as real:
        yield real


def test_connect_to_unbound_port_is_connection_failed(lab: RealLab) -> None:
    oracle, orch = lab["lab-oracle"], lab["lab-orch"]
    for node in (oracle, orch):
        status = node.pilotctl("daemon", "status")
        assert status.ok and status.data["running"] and status.data["responsive"], status
        assert status.data["hostname"] == node.hostname and status.data["address"] == node.address
    res = oracle.pilotctl("connect", "lab-orch", "1000", "--message", "nobody here", "--timeout", "5s", timeout=30)
    assert res.returncode == 1, res
    assert res.error_code == "connection_failed", res
    assert res.envelope["message"] == f"cannot connect to {orch.address} port 1000"
    assert res.envelope["error"] == res.envelope["message"] and res.envelope.get("hint")
    assert res.stdout == ""  # the error envelope is on stderr
    assert res.seconds < 3, f"nobody bound must fail at once, took {res.seconds:.2f} s"


def _reply_text(size: int) -> bytes:
    """``size`` bytes of numbered lines, not ending in a newline (so no trimming can blur the length)."""
    text = "".join(f"reply line {i:04d} " + "x" * 40 + "\n" for i in range(size // 56 + 2))
    return text[:size - 1].encode() + b"$"


@pytest.mark.parametrize("size", [1083, 1152, 1153, 1500, 3000, 20000])
def test_connect_reply_is_cut_at_1152_bytes(lab: RealLab, size: int) -> None:
    """A reply written in one ``write`` by an SDK listener reaches ``connect`` whole up to 1,152 bytes; anything
    longer comes back as exactly its first 1,152 bytes (cut mid-line). ``pilot-sim`` must do the same."""
    full = _reply_text(size)
    assert len(full) == size
    with lab.reply_server("lab-orch", 1000, full) as server:
        res = lab["lab-oracle"].pilotctl("connect", "lab-orch", "1000", "--message", f"want {size}",
                                         "--timeout", "10s", timeout=30)
    assert res.ok, res
    assert server.received == [f"want {size}".encode()] and not server.errors
    response = res.data["response"]
    assert response == full[:REPLY_CUT].decode(), f"{size}-byte reply came back as {len(response)} bytes"
    assert len(response) == min(size, REPLY_CUT)
    assert res.data["sent"] == f"want {size}" and res.data["port"] == 1000
    assert res.data["target"] == lab["lab-orch"].address


def test_approver_trust_is_not_mutual_yet_traffic_flows_both_ways(lab: RealLab) -> None:
    oracle, orch = lab["lab-oracle"], lab["lab-orch"]
    on_orch = orch.pilotctl("trust")
    assert on_orch.ok, on_orch
    entry = next(t for t in on_orch.data["trusted"] if t["node_id"] == oracle.node_id)
    assert entry["mutual"] is False  # the approver's view in 1.18: not "no trust"
    on_oracle = oracle.pilotctl("trust")
    assert any(t["node_id"] == orch.node_id and t["mutual"] is True for t in on_oracle.data["trusted"]), on_oracle
    assert not (orch.pilotctl("pending").data.get("pending") or [])

    for sender, receiver in ((oracle, orch), (orch, oracle)):
        with lab.reply_server(receiver.hostname, 1000, b"stored") as server:
            res = sender.pilotctl("connect", receiver.hostname, "1000", "--message", f"from {sender.hostname}",
                                  "--timeout", "10s", timeout=30)
        assert res.ok and res.data["response"] == "stored", res
        assert server.received == [f"from {sender.hostname}".encode()]
        msg = sender.pilotctl("send-message", receiver.hostname, "--data", f"note from {sender.hostname}")
        assert msg.ok and msg.data["ack"].startswith("ACK TEXT"), msg
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            inbox = receiver.pilotctl("inbox", "--full").data.get("messages") or []
            mine = [m for m in inbox if m.get("message_id") == msg.data["message_id"]]
            if mine:
                break
            time.sleep(0.05)
        assert mine and mine[0]["from"] == sender.address, inbox


def test_restart_keeps_identity_and_delivery_resumes(lab: RealLab) -> None:
    """Last (it restarts ``lab-orch``): same node id after ``restart_daemon``, trust kept, and a connect is
    acknowledged again within a few tries (the first stream after a restart may stall while the tunnel re-keys)."""
    oracle, orch = lab["lab-oracle"], lab["lab-orch"]
    before = orch.node_id
    seconds = lab.restart_daemon("lab-orch")
    assert seconds < 10 and orch.node_id == before and orch.running()
    assert any(t["node_id"] == oracle.node_id for t in orch.pilotctl("trust").data["trusted"])
    acked = False
    with lab.reply_server("lab-orch", 1000, b"stored") as server:
        for _ in range(4):
            res = oracle.pilotctl("connect", "lab-orch", "1000", "--message", "after restart", "--timeout", "15s",
                                  timeout=30)
            if res.ok and res.data["response"] == "stored":
                acked = True
                break
    assert acked, (res, server.errors)


async def test_our_sender_settles_a_1000_event_batch_through_real_connect(lab: RealLab, tmp_path: Path) -> None:
    """The issue's repro: with an id-list acknowledgement, any batch over ~27 events came back cut at 1,152 bytes,
    unreadable, and ended ``unconfirmed``. The compact acknowledgement settles every row of a 1,000-event batch."""
    import asyncio

    from pilot_tui.engines import updates as u
    from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
    from pilot_tui.engines.sender import Sender
    from pilot_tui.model import make_event
    from pilot_tui.pilot.driver import Pilotctl
    from pilot_tui.store.events import EventStore
    from pilot_tui.store.outbox import Outbox

    oracle, orch = lab["lab-oracle"], lab["lab-orch"]
    engine = OrchestratorEngine(Pilotctl(str(orch.pilotctl_path), env=orch.full_env()),
                                EventStore(tmp_path / "orch.db"), OrchestratorConfig(inbox=False, stream_backend="sdk"))
    task = asyncio.create_task(engine.run())
    outbox = Outbox(tmp_path / "oracle.db")
    try:
        for _ in range(200):
            state = engine.receivers.get("stream")
            if state is not None and state.state == "running":
                break
            await asyncio.sleep(0.05)
        assert engine.receivers["stream"].kind == "sdk"
        outbox.record([make_event("203.0.113.7", "brute_force_ssh", "high", sensor="lab", seq=i)
                       for i in range(1000)], {})
        results: list[u.Update] = []
        bus = u.UpdateBus()
        bus.subscribe(results.append)
        sender = Sender(Pilotctl(str(oracle.pilotctl_path), env=oracle.full_env()), outbox, bus, peer="lab-orch")
        assert await sender.send_rows(outbox.pending(limit=1000, max_bytes=1 << 20))
        assert outbox.depth() == 0 and outbox.counts() == {"delivered": 1000}
        assert {outbox.state_of(i) for i in outbox.all_ids()} == {("delivered", "stored")}
        assert engine.store.total() == 1000
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        outbox.close()
        engine.store.close()
