"""Delivery logic without a network: payload framing, the ack reply, and how the sender settles rows."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
import pytest

from pilot_tui.backoff import Backoff
from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorEngine
from pilot_tui.engines.receiver import REPLY_MAX, build_ack, payload_complete, settle
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
    sent = lines[0] + b"\n" + bad + b"\n" + lines[1]
    ack = settle(conn.written.decode(), sent, [evs[0].id, "bad-1", evs[1].id])
    assert ack is not None and conn.closed
    assert ack.stored == [e.id for e in evs]
    assert ack.rejected == {"bad-1": "bad_ip"}
    again = FakeConn([payload])
    await engine._handle_conn(again)
    assert settle(again.written.decode(), payload, [e.id for e in evs]).duplicate == [e.id for e in evs]  # type: ignore[union-attr]
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
    """The reply of a receiver that got (and stored) every line but the last one."""
    lines = payload.strip().split(b"\n")[:-1]
    ids = [orjson.loads(line)["id"] for line in lines]
    from pilot_tui.store.events import IngestResult

    stored = [make_event("1.2.3.4", "x", "low", event_id=i) for i in ids]
    return build_ack(b"\n".join(lines), IngestResult(stored=stored, ids=ids)).decode()


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


class Draws(random.Random):
    """Jitter draws chosen by the test: each ``uniform`` returns the next fraction of its band."""

    def __init__(self, fractions: list[float]) -> None:
        super().__init__(0)
        self.fractions = list(fractions)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fractions.pop(0)


class DownThenUp:
    """A peer that refuses ``fail`` connects (after a short delay, so sends overlap), then stores everything."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.connects: list[float] = []

    async def connect(self, target, port, payload, *, timeout):  # type: ignore[no-untyped-def]
        self.connects.append(time.time())
        await asyncio.sleep(0.02)
        if len(self.connects) <= self.fail:
            raise errors.ConnectionFailed("dial timeout", exit_status=1)
        return ConnectResult(target, port, ack_every(payload), len(payload), 0.01)


def ack_every(payload: bytes) -> str:
    lines = payload.strip().split(b"\n")
    ids = [orjson.loads(line)["id"] for line in lines]
    from pilot_tui.store.events import IngestResult

    stored = [make_event("1.2.3.4", "x", "low", event_id=i) for i in ids]
    return build_ack(payload.strip(), IngestResult(stored=stored, ids=ids)).decode()


async def test_reported_retry_is_the_wait_the_sender_really_takes(outbox: Outbox) -> None:
    """Two batches fail together at the cap: the second draw is shorter, but sending stays held off until the
    first one's wait ends — and both failures say so, not the shorter figure."""
    driver = DownThenUp(fail=2)
    bus = u.UpdateBus()
    results: list[u.SendResult] = []
    bus.subscribe(lambda x: results.append(x) if isinstance(x, u.SendResult) else None)
    sender = Sender(driver, outbox, bus, peer="orch", batch_events=1, inflight=2,  # type: ignore[arg-type]
                    backoff_base=0.4, backoff_cap=0.4)
    sender.backoff = Backoff(0.4, 0.4, rng=Draws([1.0, 0.0]))  # waits of 0.4 s, then 0.2 s
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(300):
            if outbox.depth() == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    failed = [r for r in results if not r.ok]
    assert outbox.depth() == 0 and len(failed) == 2
    resumed = driver.connects[2]  # the first connect after the failures
    for r in failed:
        assert r.retry_in_s > 0.3  # the longer wait, also on the failure whose own draw was 0.2 s
        assert abs((r.at + r.retry_in_s) - resumed) < 0.1  # "retry in N s" is when it really retries


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
    engine.store.record_mitigation_target("req-1", EXEC)
    seen: list[u.Update] = []
    engine.bus.subscribe(seen.append)
    result = MitigationResult("req-1", ev.source_ip, "block", "applied", "dry-run", "blocked for 3600s")
    engine.mitigations.take_result(result, sender=EXEC)  # the --wait reply
    engine.mitigations.take_result(result, sender=EXEC)  # the same reply found again in the inbox
    assert [x.status for x in seen if isinstance(x, u.MitigationUpdate)] == ["applied"]
    assert engine.store.get(ev.id).state == "mitigated"  # type: ignore[union-attr]


EXEC, EVIL = "0:0000.0000.0003", "0:0000.0000.0009"


def test_only_the_exec_node_can_settle_an_outstanding_request_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 item 1: a trusted peer sent a result with a request id read off the feed (and a made-up one) and the
    events were marked mitigated "by executor"."""
    from pilot_tui.engines.mitigation import MitigationResult

    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    ev = events(1)[0]
    engine.store.ingest([ev])
    engine.store.set_state([ev.id], "mitigating")
    engine.store.record_mitigation("req-1", ev.id, ev.source_ip, "sent", "waiting")
    engine.store.record_mitigation_target("req-1", EXEC)
    notices: list[str] = []
    engine.bus.subscribe(lambda x: notices.append(x.message) if isinstance(x, u.Notice) else None)

    def result(rid: str, status: str = "applied", ip: str = ev.source_ip) -> MitigationResult:
        return MitigationResult(rid, ip, "block", status, "dry-run", "blocked")  # type: ignore[arg-type]

    engine.mitigations.take_result(result("req-1"), sender=EVIL)  # the right request id, the wrong node
    engine.mitigations.take_result(result("made-up"), sender=EVIL)
    engine.mitigations.take_result(result("made-up"), sender=EXEC)  # not even the exec node invents requests
    engine.mitigations.take_result(result("req-1", ip="198.51.100.1"), sender=EXEC)  # for another address
    assert engine.store.get(ev.id).state == "mitigating"  # type: ignore[union-attr]
    assert engine.store.mitigation("req-1")["status"] == "sent"  # type: ignore[index]
    assert engine.store.quarantine_count() == 4 and len(notices) == 4
    assert "went to 0:0000.0000.0003" in notices[0] and "never sent" in notices[1]
    engine.mitigations.take_result(result("req-1"), sender=EXEC)  # the real answer
    assert engine.store.get(ev.id).state == "mitigated"  # type: ignore[union-attr]
    engine.mitigations.take_result(result("req-1", "refused"), sender=EXEC)  # settled already: no second outcome
    assert engine.store.mitigation("req-1")["status"] == "applied"  # type: ignore[index]
    engine.mitigations.take_result(result("req-1", "expired"), sender=EXEC)  # a block's later expiry is a real next step
    assert engine.store.mitigation("req-1")["status"] == "expired"  # type: ignore[index]
    assert engine.store.quarantine_count() == 5


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


# -- the compact acknowledgement (real connect passes on at most 1,152 bytes of a reply) ---------------------------


def _ingest(tmp_path, payload: bytes):  # type: ignore[no-untyped-def]
    from pilot_tui.model import decode_payload

    store = EventStore(tmp_path / "ack.db")
    decoded = decode_payload(payload)
    return store.ingest(decoded.events, decoded.rejected)


@pytest.mark.parametrize("n", [1, 27, 40, 1000, 5000])
def test_ack_of_any_batch_fits_one_real_reply_and_settles_every_line(tmp_path, n: int) -> None:  # type: ignore[no-untyped-def]
    evs = events(n)
    payload = encode_batch(evs)
    reply = build_ack(payload, _ingest(tmp_path, payload))
    assert len(reply) <= REPLY_MAX < 1152
    got = settle(reply.decode(), payload, [e.id for e in evs])
    assert got is not None and got.stored == [e.id for e in evs] and not got.duplicate and not got.rejected


def test_ack_of_a_pathological_mix_stays_small_and_covers_a_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Alternating good and refused lines: the reply still fits, settles a prefix exactly, the rest is resent."""
    evs = events(300)
    lines = []
    for i, e in enumerate(evs):
        lines.append(e.to_json())
        lines.append(orjson.dumps({"source_ip": "bad", "anomaly": "x", "severity": "low", "id": f"bad-{i}"}))
    payload = b"\n".join(lines)
    ids = [i for e in evs for i in (e.id, None)]
    ids = [x if x is not None else f"bad-{k // 2}" for k, x in enumerate(ids)]
    reply = build_ack(payload, _ingest(tmp_path, payload))
    assert len(reply) <= REPLY_MAX
    got = settle(reply.decode(), payload, ids)
    assert got is not None
    covered = len(got.stored) + len(got.rejected)
    assert 10 < covered < len(ids)
    assert got.stored == [ids[k] for k in range(0, covered, 2)]
    assert set(got.rejected) == {ids[k] for k in range(1, covered, 2)}
    assert all(reason == "bad_ip" for reason in got.rejected.values())


def test_ack_for_other_lines_or_cut_short_is_refused() -> None:
    from pilot_tui.engines.receiver import BadAck
    from pilot_tui.store.events import IngestResult

    evs = events(5)
    payload = encode_batch(evs)
    ids = [e.id for e in evs]
    reply = build_ack(payload, IngestResult(stored=evs, ids=ids)).decode()
    other = encode_batch(events(5))
    with pytest.raises(BadAck, match="digest"):
        settle(reply, other, [orjson.loads(x)["id"] for x in other.split()])
    with pytest.raises(BadAck, match="cut or corrupt"):
        settle(reply[:40], payload, ids)
    assert settle("", payload, ids) is None  # silence
    assert settle("thanks!", payload, ids) is None  # a seed receiver's free text


async def test_unreadable_replies_are_resent_and_never_taken_for_silence(outbox: Outbox) -> None:
    """Before: a reply cut at 1,152 bytes counted as "silent"; three made the peer a reply-less seed receiver and the
    rows ended 'unconfirmed'. Now it is a bad_ack: rows stay pending, the peer is never marked silent."""

    def cut(payload: bytes) -> str:
        return ('{"schema":"pilot-tui.ack/1","stored":["' + "x" * 2000)[:1152]

    sender = Sender(FakeDriver([cut] * 5 + [ack_all_but_last]), outbox, u.UpdateBus(), peer="orch")  # type: ignore[arg-type]
    for _ in range(5):
        assert not await sender.send_rows(outbox.pending())
    assert not sender.peer_silent and outbox.depth() == 3
    assert outbox.counts().get("delivered", 0) == 0
    assert await sender.send_rows(outbox.pending()) and outbox.depth() == 1


async def test_reordered_batches_are_no_gap_but_a_lasting_hole_is(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Oracles keep several batches in flight, so seq 5-9 may be stored before 0-4: no alarm for that."""
    from pilot_tui.engines.orchestrator import OrchestratorConfig

    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"), OrchestratorConfig(gap_grace_s=0.2))  # type: ignore[arg-type]
    alerts: list[u.SensorAlert] = []
    engine.bus.subscribe(lambda x: alerts.append(x) if isinstance(x, u.SensorAlert) else None)
    evs = events(15)
    engine.ingest_payload(encode_batch(evs[0:1]), sender="", transport="stream")
    engine.ingest_payload(encode_batch(evs[5:10]), sender="", transport="stream")  # overtakes 1-4
    engine.ingest_payload(encode_batch(evs[1:5]), sender="", transport="stream")
    engine.ingest_payload(encode_batch(evs[12:15]), sender="", transport="stream")  # 10-11 never come
    await asyncio.sleep(0.4)
    assert [(a.kind, a.detail) for a in alerts] == [("gap", "seq 10-11 missing")]


def test_headless_orchestrator_logs_receiver_state_changes_only(capsys) -> None:  # type: ignore[no-untyped-def]
    """Before: one stderr line per inbox message (each refreshed the receiver's "last message" time)."""
    from pilot_tui.commands.orchestrator import headless_printer

    emit = headless_printer()
    running = u.ReceiverState(at=1, name="inbox", kind="inbox", state="running", detail="watching")
    for k in range(100):
        emit(u.ReceiverState(at=2 + k, name="inbox", kind="inbox", state="running", detail="watching",
                             last_message_at=2.0 + k))
    emit(running)
    emit(u.ReceiverState(at=200, name="inbox", kind="inbox", state="restarting", detail="daemon is not running"))
    emit(u.ReceiverState(at=201, name="stream", kind="sdk", state="running"))
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [(x["name"], x["state"]) for x in lines] == [("inbox", "running"), ("inbox", "restarting"),
                                                         ("stream", "running")]


async def test_stragglers_wait_for_the_send_in_flight_but_a_burst_overlaps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On real 1.18 every extra stream feeds the receiver's SYN rate limit: a few new events beside a send in flight
    wait for it (no second connect); a whole batch of backlog gets a connect of its own."""

    class SlowDriver(FakeDriver):
        def __init__(self) -> None:
            super().__init__([])
            self.active = self.peak = 0

        async def connect(self, target, port, payload, *, timeout):  # type: ignore[no-untyped-def]
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.2)
            self.active -= 1
            self.payloads.append(payload)
            lines = payload.strip().split(b"\n")
            ids = [orjson.loads(x)["id"] for x in lines]
            from pilot_tui.store.events import IngestResult

            stored = [make_event("1.2.3.4", "x", "low", event_id=i) for i in ids]
            return ConnectResult(target, port, build_ack(payload, IngestResult(stored=stored, ids=ids)).decode(),
                                 len(payload), 0.2)

    box = Outbox(tmp_path / "o.db")
    driver = SlowDriver()
    sender = Sender(driver, box, u.UpdateBus(), peer="orch", batch_events=50)  # type: ignore[arg-type]
    task = asyncio.create_task(sender.run())
    try:
        for i in range(5):  # sparse events while the first send is slow
            box.record([make_event("203.0.113.7", "x", "high", sensor="s", seq=i)], {})
            sender.wake()
            await asyncio.sleep(0.03)
        while box.depth():
            await asyncio.sleep(0.02)
        assert driver.peak == 1 and len(driver.payloads) == 2  # the first event, then the four that waited
        box.record([make_event("203.0.113.8", "x", "high", sensor="s", seq=100 + i) for i in range(200)], {})
        sender.wake()
        while box.depth():
            await asyncio.sleep(0.02)
        assert driver.peak >= 2  # a burst of four full batches overlaps
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_hanging_send_shows_the_peer_stalled_before_pilotctl_gives_up(outbox: Outbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Measured on 1.18: while the peer's daemon restarts, connect and send-message hang for seconds without an
    error, and the peer state used to stay "reachable" all along."""
    from pilot_tui.engines import sender as sender_mod

    monkeypatch.setattr(sender_mod, "STALL_S", 0.2)

    class Hanging(FakeDriver):
        async def connect(self, target, port, payload, *, timeout):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.6)
            return await super().connect(target, port, payload, timeout=timeout)

    bus = u.UpdateBus()
    seen: list[u.Update] = []
    bus.subscribe(seen.append)
    sender = Sender(Hanging([ack_all_but_last, ack_all_but_last]), outbox, bus, peer="orch")  # type: ignore[arg-type]
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(0.4)
        states = [x.state for x in seen if isinstance(x, u.PeerState)]
        assert states == ["stalled"] and not [x for x in seen if isinstance(x, u.SendResult)]
        for _ in range(100):
            if any(isinstance(x, u.SendResult) for x in seen):
                break
            await asyncio.sleep(0.02)
        assert [x.state for x in seen if isinstance(x, u.PeerState)][:2] == ["stalled", "reachable"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_batch_cut_off_mid_line_stores_its_whole_lines_and_quarantines_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Seen under load when the orchestrator stopped mid-read: the cut-off half line of a batch was quarantined as
    bad JSON. It is noise: the sender resends what the reply does not settle."""
    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    evs = events(3)
    payload = encode_batch(evs).rstrip(b"\n")
    cut = payload[: payload.rfind(b"\n") + 20]  # two whole lines and the start of the third, then EOF
    conn = FakeConn([cut])

    async def eof(size: int, timeout: float) -> bytes:
        return conn.chunks.pop(0) if conn.chunks else b""

    conn.read = eof  # type: ignore[method-assign]
    await engine._handle_conn(conn)
    assert engine.store.quarantine_count() == 0
    assert sorted(engine.store.ids()) == sorted(e.id for e in evs[:2])
    ack = settle(conn.written.decode(), payload, [e.id for e in evs])
    assert ack is not None and ack.stored == [e.id for e in evs[:2]]  # the third stays pending and is resent


def test_the_ack_of_a_flood_refused_whole_is_cheap_and_settles_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    payload = b"x\n" * 2_000_000
    result = _ingest(tmp_path, payload)
    reply = build_ack(payload, result)
    assert orjson.loads(reply)["lines"] == 0  # not split into its 2M lines (that took ~0.6 s) since none is settled
    got = settle(reply.decode(), payload, [str(k) for k in range(2_000_000)])
    assert got is not None and not got.stored and not got.rejected and not got.duplicate
