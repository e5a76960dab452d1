"""Delivery logic without a network: payload framing, the ack reply, and how the sender settles rows."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.engines.receiver import build_ack, parse_ack, payload_complete
from pilot_tui.engines.sender import Sender, frame_batch
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot import errors
from pilot_tui.pilot.driver import ConnectResult, SendAck
from pilot_tui.pilot.stream import read_payload
from pilot_tui.store.events import EventStore
from pilot_tui.store.outbox import Outbox

SEED = b'{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}'


def events(n: int):  # type: ignore[no-untyped-def]
    return [make_event("203.0.113.7", "brute_force_ssh", "high", sensor="web-1", seq=i) for i in range(n)]


def test_payload_complete_knows_batches_and_seed_messages() -> None:
    batch = encode_batch(events(3)).rstrip(b"\n")  # connect drops the final newline
    assert payload_complete(batch)
    assert not payload_complete(batch[: batch.rfind(b"\n")])  # two of three lines
    assert not payload_complete(batch[:-5])  # last line cut mid-way
    assert payload_complete(SEED)
    assert not payload_complete(SEED[:-1])
    assert not payload_complete(SEED + b"\n" + SEED)  # unframed lines: wait for the idle gap


class FakeConn:
    """Delivers chunks with pauses, records the reply."""

    can_reply = True

    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.chunks = list(chunks)
        self.pause = pause
        self.written = b""
        self.closed = False

    async def read(self, size: int, timeout: float) -> bytes:
        if not self.chunks:
            await asyncio.sleep(timeout)
            raise TimeoutError
        await asyncio.sleep(self.pause)
        return self.chunks.pop(0)

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        self.closed = True


async def test_read_payload_stops_when_whole_not_at_timeout() -> None:
    payload = encode_batch(events(4)).rstrip(b"\n")
    conn = FakeConn([payload[:50], payload[50:200], payload[200:]])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    data, why = await read_payload(conn, payload_complete, idle_gap=2.0, total_timeout=5)
    assert data == payload and why == "complete"
    assert loop.time() - t0 < 0.5
    junk = FakeConn([b"not json at all"])
    data, why = await read_payload(junk, payload_complete, idle_gap=0.05, total_timeout=5)
    assert why == "idle" and data == b"not json at all"


async def test_orchestrator_replies_with_stored_duplicate_and_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    seen: list[u.Update] = []
    engine.bus.subscribe(seen.append)
    evs = events(2)
    bad = orjson.dumps({"source_ip": "not-an-ip", "anomaly": "x", "severity": "low", "id": "bad-1", "batch_size": 3})
    payload = encode_batch(evs).rstrip(b"\n")
    lines = payload.split(b"\n")
    conn = FakeConn([lines[0] + b"\n" + bad + b"\n" + lines[1]])
    await engine._handle_conn(conn)
    ack = parse_ack(conn.written.decode())
    assert ack is not None and conn.closed
    assert ack["stored"] == [e.id for e in evs]
    assert ack["rejected"] == [{"line": 1, "id": "bad-1", "reason": "bad_ip"}]
    again = FakeConn([payload])
    await engine._handle_conn(again)
    assert parse_ack(again.written.decode())["duplicate"] == [e.id for e in evs]  # type: ignore[index]
    assert engine.store.total() == 2 and engine.store.quarantine_count() == 1
    kinds = [type(x).__name__ for x in seen]
    assert "EventsStored" in kinds and "Quarantined" in kinds


class FakeDriver:
    def __init__(self, replies: list) -> None:  # type: ignore[type-arg]
        self.replies = list(replies)
        self.payloads: list[bytes] = []

    async def connect(self, target, port, payload, *, timeout):  # type: ignore[no-untyped-def]
        self.payloads.append(payload)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return ConnectResult(target, port, reply(payload) if callable(reply) else reply, len(payload), 0.01)

    async def send_message(self, target, data, *, msg_type="json", reply_to=None, wait=None):  # type: ignore[no-untyped-def]
        self.payloads.append(data)
        return SendAck("m" * 32, target, len(data), "ACK JSON", None, 0.01)


def ack_all_but_last(payload: bytes) -> str:
    ids = [orjson.loads(line)["id"] for line in payload.strip().split(b"\n")]
    from pilot_tui.store.events import IngestResult

    return build_ack(IngestResult(stored=[make_event("1.2.3.4", "x", "low", event_id=i) for i in ids[:-1]])).decode()


@pytest.fixture
def outbox(tmp_path) -> Outbox:  # type: ignore[no-untyped-def]
    box = Outbox(tmp_path / "oracle.db")
    box.record(events(3), {})
    return box


async def test_sender_marks_exactly_the_acknowledged_ids(outbox: Outbox) -> None:
    driver = FakeDriver([ack_all_but_last])
    bus = u.UpdateBus()
    results: list[u.Update] = []
    bus.subscribe(results.append)
    sender = Sender(driver, outbox, bus, peer="orch")  # type: ignore[arg-type]
    ok = await sender.send_rows(outbox.pending())
    assert ok and outbox.depth() == 1
    framed = [orjson.loads(line) for line in driver.payloads[0].strip().split(b"\n")]
    assert all(obj["batch_size"] == 3 for obj in framed)
    res = [r for r in results if isinstance(r, u.SendResult)][0]
    assert res.ack == "stored" and res.delivered == 2


async def test_sender_keeps_rows_on_error_and_reports_code_and_hint(outbox: Outbox) -> None:
    err = errors.TrustRequired("refusing tunnel to private node 0:0000.0000.0002 without trust",
                               hint="run: pilotctl handshake local-threat-orchestrator", exit_status=1)
    driver = FakeDriver([err, errors.Timeout("no response within 10s"), "", "", ""])
    bus = u.UpdateBus()
    seen: list[u.Update] = []
    bus.subscribe(seen.append)
    sender = Sender(driver, outbox, bus, peer="orch")  # type: ignore[arg-type]
    assert not await sender.send_rows(outbox.pending())
    assert outbox.depth() == 3 and sender.peer_state == "no-trust"
    fail = [r for r in seen if isinstance(r, u.SendResult)][0]
    assert fail.error_code == "trust_required" and "handshake" in fail.hint and fail.retry_in_s > 0
    assert not await sender.send_rows(outbox.pending())  # timeout: may have arrived, still pending
    assert outbox.depth() == 3 and sender.peer_state == "unreachable"
    # connect exits 0 without an ack: not stored as far as we know (an orchestrator dying mid-stream does that)
    assert not await sender.send_rows(outbox.pending())
    assert outbox.depth() == 3 and sender.peer_state == "reachable"
    no_ack = [r for r in seen if isinstance(r, u.SendResult)][-1]
    assert no_ack.error_code == "no_ack" and "resending" in no_ack.error
    assert not await sender.send_rows(outbox.pending())
    # the third silent answer in a row: a seed-style receiver that never replies; exit 0 is the best signal
    assert await sender.send_rows(outbox.pending())
    assert outbox.depth() == 0
    assert outbox.state_of(outbox.all_ids()[0]) == ("delivered", "unconfirmed")


async def test_silent_peer_is_remembered_and_forgotten_when_it_replies(outbox: Outbox) -> None:
    sender = Sender(FakeDriver(["", "", ""]), outbox, u.UpdateBus(), peer="orch", batch_events=1)  # type: ignore[arg-type]
    for _ in range(3):
        await sender.send_rows(outbox.pending(limit=1))
    assert sender.peer_silent and outbox.depth() == 2
    # a restarted oracle remembers: the next silent answer counts as delivered at once
    again = Sender(FakeDriver(["", ack_all_but_last]), outbox, u.UpdateBus(), peer="orch", batch_events=1)  # type: ignore[arg-type]
    assert again.peer_silent
    assert await again.send_rows(outbox.pending(limit=1)) and outbox.depth() == 1
    # the peer replies again (an orchestrator with an SDK receiver came back): silence is suspicious again
    assert await again.send_rows(outbox.pending(limit=2))
    assert not again.peer_silent and outbox.get_meta("silent-peer:orch") == "0"


async def test_message_transport_counts_daemon_ack(outbox: Outbox) -> None:
    sender = Sender(FakeDriver([]), outbox, u.UpdateBus(), peer="orch", transport="message")  # type: ignore[arg-type]
    assert await sender.send_rows(outbox.pending())
    assert outbox.depth() == 0
    assert outbox.state_of(outbox.all_ids()[1]) == ("delivered", "daemon-ack")


def test_backoff_grows_and_is_capped(outbox: Outbox) -> None:
    sender = Sender(FakeDriver([]), outbox, u.UpdateBus(), peer="orch", backoff_base=0.5, backoff_cap=8)  # type: ignore[arg-type]
    sender.failures = 1
    first = sender.next_backoff()
    sender.failures = 30
    capped = [sender.next_backoff() for _ in range(50)]
    assert 0.5 <= first <= 1.0
    assert all(4 <= b <= 8 for b in capped) and len(set(capped)) > 1  # jittered


def test_frame_batch_round_trips() -> None:
    from pilot_tui.model import decode_payload
    from pilot_tui.store.outbox import OutboxRow

    evs = events(2)
    rows = [OutboxRow(i, e.id, i, 0.0, e.to_json(), 0) for i, e in enumerate(evs)]
    decoded = decode_payload(frame_batch(rows))
    assert decoded.events == evs and decoded.batch_size == 2


def test_same_mitigation_result_twice_is_reported_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pilot_tui.engines.mitigation import MitigationResult

    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    ev = events(1)[0]
    engine.store.ingest([ev])
    engine.store.record_mitigation("req-1", ev.id, ev.source_ip, "sent", "waiting")
    seen: list[u.Update] = []
    engine.bus.subscribe(seen.append)
    result = MitigationResult("req-1", ev.source_ip, "block", "applied", "dry-run", "blocked for 3600s")
    engine._apply_result(result)  # the --wait reply
    engine._apply_result(result)  # the same reply found again in the inbox
    assert [x.status for x in seen if isinstance(x, u.MitigationUpdate)] == ["applied"]
    assert engine.store.get(ev.id).state == "mitigated"  # type: ignore[union-attr]


def test_triage_source_moves_only_the_new_events_of_that_ip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    seen: list[object] = []
    engine.bus.subscribe(seen.append)
    attacker = [make_event("203.0.113.9", "brute_force_ssh", "high", sensor="s", seq=i) for i in range(4)]
    bystander = make_event("198.51.100.1", "web_sqli", "high", sensor="s", seq=9)
    engine.ingest_payload(encode_batch([*attacker, bystander]), sender="", transport="stream")
    engine.store.set_state([attacker[0].id], "mitigating")
    assert engine.triage_source("203.0.113.9", "acknowledged", "known scanner") == 3
    states = {e.id: engine.store.get(e.id).state for e in [*attacker, bystander]}  # type: ignore[union-attr]
    assert states == {attacker[0].id: "mitigating", attacker[1].id: "acknowledged", attacker[2].id: "acknowledged",
                      attacker[3].id: "acknowledged", bystander.id: "new"}
    assert engine.store.get(attacker[1].id).note == "known scanner"  # type: ignore[union-attr]
    changes = [x for x in seen if isinstance(x, u.TriageChanged)]
    assert changes and set(changes[-1].ids) == {e.id for e in attacker[1:]}  # the UI hears which rows changed
    assert engine.triage_source("203.0.113.9", "acknowledged") == 0  # nothing new left
    with pytest.raises(ValueError, match="not 'mitigated'"):
        engine.triage_source("198.51.100.1", "mitigated")
