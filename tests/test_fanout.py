"""Fan-out: an orchestrator publishes what it stores on a broker's event stream; followers subscribe (pilot-sim)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks, wait_for

from pilot_tui.cli import main
from pilot_tui.engines import fanout
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.sim.cluster import restart_node, stop_node
from pilot_tui.store.events import EventStore

SIM = str(Path(sys.executable).with_name("pilot-sim"))
pytestmark = pytest.mark.timeout(90)


def batch(seed: int, n: int) -> list[Any]:
    return [make_event(f"203.0.113.{seed}", "brute_force_ssh", "high", sensor=f"web-{seed}", seq=i)
            for i in range(1, n + 1)]


async def test_followers_see_what_the_orchestrator_stores(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("orch-y", "broker-b", "analyst-z", trust=[("orch-y", "broker-b"), ("analyst-z", "broker-b")])
    orch = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"),
                              OrchestratorConfig(stream=False, inbox=False, publish_to="broker-b"))
    follower = OrchestratorEngine(Pilotctl(SIM, env=nodes["analyst-z"].env), EventStore(tmp_path / "f.db"),
                                  OrchestratorConfig(stream=False, inbox=False, follow="broker-b"))
    tasks = [asyncio.create_task(orch.run()), asyncio.create_task(follower.run())]
    try:
        # the stream keeps nothing: resend a probe until the subscription is in place, as a live view would
        probe = batch(1, 1)
        deadline = time.monotonic() + 20
        while follower.store.total() == 0:
            assert time.monotonic() < deadline, "the follower never saw a published event"
            orch.ingest_payload(encode_batch(probe), sender="", transport="stream")
            probe = [make_event("203.0.113.1", "brute_force_ssh", "high", sensor="probe", seq=len(probe) + 1)]
            await asyncio.sleep(0.3)
        before = follower.store.total()
        # 400 events of ~350 bytes: more than one publish (each holds at most 60 KB)
        events = batch(7, 400)
        orch.ingest_payload(encode_batch(events), sender="", transport="stream")
        orch.ingest_payload(encode_batch(events[:10]), sender="", transport="stream")  # duplicates: not republished
        await wait_for(lambda: follower.store.total() == before + 400, "all 400 events reached the follower")
        stored = follower.store.get(events[-1].id)
        assert stored is not None and stored.transport == "subscribe" and stored.event == events[-1]
        assert orch.publisher is not None
        await wait_for(lambda: orch.publisher.queued == 0, "the publisher saw its last publish succeed")  # type: ignore[union-attr]
        assert orch.publisher.sent == orch.store.total()
        assert "sent" in orch.receivers["publish"].detail and orch.receivers["publish"].state == "running"
        assert follower.receivers["follow"].kind == "subscribe" and follower.receivers["follow"].last_message_at
        assert follower.store.quarantine_count() == 0
        # triage made on the orchestrator reaches the follower, in order, saying who and through which broker
        orch.config.analyst = "alice"
        orch.acknowledge([events[0].id], "seen it")
        assert orch.triage_source("203.0.113.7", "false_positive", "our scanner") == 399
        await wait_for(lambda: follower.store.get(events[-1].id).state == "false_positive", "shared triage")  # type: ignore[union-attr]
        first = follower.store.get(events[0].id)
        assert first is not None and (first.state, first.note, first.state_by) == ("acknowledged", "seen it",
                                                                                   "alice via broker-b")
        assert follower.store.get(events[5].id).note == "our scanner"  # type: ignore[union-attr]
        # a mitigation's state changes and outcome reach followers too (here the executor cannot be reached)
        orch.config.exec_node = "exec-gone"
        request_id = await orch.mitigate(events[0].id)
        await wait_for(lambda: (follower.store.mitigation(request_id) or {}).get("status") == "failed"
                       and follower.store.get(events[0].id).state == "new", "mitigation outcome shared")  # type: ignore[union-attr]
        mirrored = follower.store.get(events[0].id)
        assert mirrored is not None and mirrored.state == "new" and mirrored.mitigation
        assert mirrored.mitigation["status"] == "failed" and mirrored.mitigation["request_id"] == request_id
        # what a follower triages stays there
        follower.reopen([events[1].id])
        await asyncio.sleep(0.5)
        assert orch.store.get(events[1].id).state == "false_positive"  # type: ignore[union-attr]
        # a follower validates like the orchestrator: a hostile publisher's junk is quarantined, not shown
        # (even when signed by the orchestrator's own key, as a buggy orchestrator might)
        hostile = Pilotctl(SIM, env=nodes["orch-y"].env)
        sign = orch.publisher.signer.wrap
        junk = await hostile.publish("broker-b", fanout.DEFAULT_TOPIC, sign(b"[b]x[/b]\n").decode())
        assert junk["topic"] == fanout.DEFAULT_TOPIC
        fake = '{"schema":"pilot-tui.triage/1","ids":["x y"],"state":"acknowledged","note":null,"by":"eve"}'
        await hostile.publish("broker-b", fanout.DEFAULT_TOPIC, sign(fake.encode()).decode())
        await wait_for(lambda: follower.store.quarantine_count() == 2, "junk quarantined")
        assert follower.store.quarantine_by_reason() == {"bad_json": 1, "bad_shared": 1}
        assert follower.store.total() == before + 400
    finally:
        await stop_tasks(*tasks)


async def test_unsent_events_wait_while_the_broker_is_down(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("orch-y", "broker-b", trust=[("orch-y", "broker-b")])
    stop_node(nodes["broker-b"])
    orch = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"),
                              OrchestratorConfig(stream=False, inbox=False, publish_to="broker-b"))
    task = asyncio.create_task(orch.run())
    try:
        orch.ingest_payload(encode_batch(batch(3, 5)), sender="", transport="stream")
        await wait_for(lambda: orch.receivers.get("publish") is not None
                       and orch.receivers["publish"].state == "restarting", "publish failure shown")
        assert orch.publisher is not None and orch.publisher.queued == 5 and orch.publisher.sent == 0
        assert "broker-b" in orch.receivers["publish"].detail or "connection" in orch.receivers["publish"].detail
        restart_node(nodes["broker-b"])
        await wait_for(lambda: orch.publisher.sent == 5, "queued events published once the broker is back", 30)
        assert orch.publisher.queued == 0
    finally:
        await stop_tasks(task)


def test_publisher_batches_in_order_and_drops_the_oldest_when_full(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    pub = fanout.Publisher(None, "broker-b", "t", lambda **kw: seen.append(kw))  # type: ignore[arg-type]
    monkeypatch.setattr(fanout, "MAX_QUEUED", 50)
    events = batch(9, 60)
    pub.offer(events)
    assert pub.queued == 50 and pub.dropped == 10
    assert "10 dropped" in pub.describe()
    taken = pub._take()
    assert taken == events[10:10 + len(taken)]  # oldest surviving first, in order
    assert len(encode_batch(taken)) <= fanout.MAX_PUBLISH_BYTES
    monkeypatch.setattr(fanout, "MAX_PUBLISH_BYTES", 1)
    assert len(pub._take()) == 1  # one event always goes, whatever the limit


def test_follow_cli_rejects_a_bad_broker_and_topic(capsys) -> None:  # type: ignore[no-untyped-def]
    for argv, message in ((["follow", "Bad Host"], "is not a Pilot hostname"),
                          (["follow", "broker-b", "--topic", "a b"], "is not a topic"),
                          (["orchestrator", "--publish", "x_y"], "is not a Pilot hostname")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1  # one clear line


async def test_subscribe_skips_an_oversized_event_and_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "pilotctl"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "sys.stdout.write('{\"data\":\"' + 'x' * (9 * 2**20) + '\",\"topic\":\"t\"}\\n')\n"
        "sys.stdout.write('{\"bytes\":2,\"data\":\"ok\",\"topic\":\"t\"}\\n')\n"
    )
    fake.chmod(0o755)
    pilot = Pilotctl(str(fake))
    got = [msg async for msg in pilot.subscribe("broker-b", "t")]
    assert got == [{"bytes": 2, "data": "ok", "topic": "t"}] and pilot.oversized_events == 1


def test_triage_messages_are_checked_before_they_touch_the_feed() -> None:
    note = fanout.TriageNote(("ev-1", "ev-2"), "acknowledged", "ok", "alice")
    assert fanout.parse_shared(note.to_json()) == note
    assert fanout.parse_shared(encode_batch(batch(1, 2))) is None  # events are not triage
    assert fanout.parse_shared(b'{"schema":"pilot-tui.triage/1"') is None  # not JSON: the event decoder says so
    base = {"schema": fanout.TRIAGE_SCHEMA, "ids": ["ev-1"], "state": "acknowledged", "note": None, "by": "a"}
    for change, reason in (({"ids": []}, "list of 1-"), ({"ids": ["ev-1"] * 1001}, "list of 1-"),
                           ({"ids": ["bad id"]}, "not an event id"), ({"state": "deleted"}, "unknown triage state"),
                           ({"note": "x" * 501}, "at most 500"), ({"by": ""}, "1-64"), ({"by": 7}, "1-64")):
        with pytest.raises(ValueError, match=reason):
            fanout.parse_shared(orjson.dumps({**base, **change}))
    shown = fanout.parse_shared(orjson.dumps({**base, "note": "\x1b[31mred", "by": "eve\x07"}))
    assert isinstance(shown, fanout.TriageNote)
    assert shown.note == "\x1b[31mred" and shown.by == "eve\x07"  # kept as sent: the screen escapes them, once
    outcome = fanout.OutcomeNote("req-1", "ev-1", "2001:db8::1", "applied", "nft: ok")
    assert fanout.parse_shared(outcome.to_json()) == outcome
    good = orjson.loads(outcome.to_json())
    for change, reason in (({"request_id": "a b"}, "request_id"), ({"event_id": "x/y"}, "event_id"),
                           ({"source_ip": "999.1.1.1"}, "not an IP"), ({"status": "deleted"}, "unknown outcome"),
                           ({"detail": "d" * 501}, "at most 500")):
        with pytest.raises(ValueError, match=reason):
            fanout.parse_shared(orjson.dumps({**good, **change}))


def test_an_incident_ack_is_split_and_kept_in_order_with_events() -> None:
    pub = fanout.Publisher(None, "broker-b", "t", lambda **kw: None)  # type: ignore[arg-type]
    events = batch(4, 3)
    pub.offer(events[:2])
    pub.offer_triage([f"ev-{i}" for i in range(2500)], "acknowledged", "n" * 600, "bob")
    pub.offer(events[2:])
    assert pub._take() == events[:2]
    for _ in range(2):
        pub._queue.popleft()
    notes = [pub._queue.popleft() for _ in range(3)]
    assert [len(n.ids) for n in notes] == [1000, 1000, 500] and all(len(n.note) == 500 for n in notes)
    assert all(len(n.to_json()) <= fanout.MAX_PUBLISH_BYTES for n in notes)
    assert pub._take() == events[2:]


async def test_a_full_queue_during_a_publish_never_loses_an_unsent_event(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sent: list[str] = []
    events = batch(6, 8)

    class SlowBroker:
        async def publish(self, broker: str, topic: str, data: str) -> dict[str, Any]:
            if not sent:  # the first publish is in flight while the queue overflows
                pub.offer(events[4:])
            sent.extend(line for line in orjson.loads(data)["body"].splitlines())  # (inside the signed envelope)
            return {}

    monkeypatch.setattr(fanout, "MAX_QUEUED", 4)
    pub = fanout.Publisher(SlowBroker(), "broker-b", "t", lambda **kw: None)  # type: ignore[arg-type]
    pub.offer(events[:4])
    task = asyncio.create_task(pub.run())
    try:
        await wait_for(lambda: pub.queued == 0, "queue drained", 5)
    finally:
        await stop_tasks(task)
    ids = [orjson.loads(line)["id"] for line in sent]
    assert ids == [e.id for e in events]  # the first four went in flight, the four newer ones after them
