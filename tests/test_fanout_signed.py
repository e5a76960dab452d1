"""Followers show only what the orchestrator they follow signed (issue 12 item 2), on pilot-sim.

Anyone who can publish on the broker topic used to be able to rewrite every follower's feed: an unsigned triage note
for a real critical event made it a false positive "alice via broker". Now each published message is signed with the
orchestrator's Ed25519 key, followers pin that key (``--key`` or trust on first use, kept in the state dir), and the
rest is quarantined with the reason.
"""

from __future__ import annotations

import asyncio
import stat
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401
from task_helpers import stop_tasks, wait_for

from pilot_tui import paths
from pilot_tui.cli import build_parser
from pilot_tui.commands import follow as follow_cmd
from pilot_tui.commands import orchestrator as orchestrator_cmd
from pilot_tui.engines import fanout
from pilot_tui.engines import updates as u
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.model import encode_batch, make_event
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.events import EventStore

SIM = str(Path(sys.executable).with_name("pilot-sim"))
pytestmark = pytest.mark.timeout(90)
TOPIC = fanout.DEFAULT_TOPIC


async def until_following(orch: OrchestratorEngine, follower: OrchestratorEngine, seed: int) -> None:
    """Resend a probe until the follower's subscription is in place (the event stream keeps nothing)."""
    deadline = time.monotonic() + 20
    seq = 0
    while follower.store.total() == 0:
        assert time.monotonic() < deadline, "the follower never saw a published event"
        seq += 1
        probe = make_event(f"198.51.100.{seed}", "port_scan", "low", sensor="probe", seq=seq)
        orch.ingest_payload(encode_batch([probe]), sender="", transport="stream")
        await asyncio.sleep(0.3)


def forged_triage(event_id: str) -> bytes:
    return orjson.dumps({"schema": fanout.TRIAGE_SCHEMA, "ids": [event_id], "state": "false_positive",
                         "note": None, "by": "alice"})


async def test_forged_triage_and_events_are_quarantined_not_shown(sim_nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("orch-y", "broker-b", "analyst-z", "evil-e",
                      trust=[("orch-y", "broker-b"), ("analyst-z", "broker-b"), ("evil-e", "broker-b")])
    orch = OrchestratorEngine(Pilotctl(SIM, env=nodes["orch-y"].env), EventStore(tmp_path / "o.db"),
                              OrchestratorConfig(stream=False, inbox=False, publish_to="broker-b", analyst="alice"))
    follower = OrchestratorEngine(Pilotctl(SIM, env=nodes["analyst-z"].env), EventStore(tmp_path / "f.db"),
                                  OrchestratorConfig(stream=False, inbox=False, follow="broker-b"))
    notices: list[str] = []
    follower.bus.subscribe(lambda up: notices.append(up.message) if isinstance(up, u.Notice) else None)
    evil = Pilotctl(SIM, env=nodes["evil-e"].env)
    tasks = [asyncio.create_task(orch.run()), asyncio.create_task(follower.run())]
    try:
        await until_following(orch, follower, 1)
        assert orch.publisher is not None
        fp = orch.publisher.signer.fingerprint
        # trust on first use: the orchestrator's key got pinned, and the follower said so
        assert any(f"pinned orchestrator key {fp}" in n and "check it" in n for n in notices)
        critical = make_event("203.0.113.66", "ransomware_beacon", "critical", sensor="db-1", seq=1)
        orch.ingest_payload(encode_batch([critical]), sender="", transport="stream")
        await wait_for(lambda: follower.store.get(critical.id) is not None, "the critical event reached the follower")

        # (a) the repro: an unsigned triage note for the real critical event
        await evil.publish("broker-b", TOPIC, forged_triage(critical.id).decode())
        await wait_for(lambda: follower.store.quarantine_count() == 1, "unsigned note quarantined")
        # (b) evil signs with its own key: the signature is fine, the key is not the pinned one
        evil_key = fanout.Signer.ephemeral()
        await evil.publish("broker-b", TOPIC, evil_key.wrap(forged_triage(critical.id)).decode())
        fake_event = make_event("192.0.2.9", "brute_force_ssh", "critical", sensor="evil", seq=1)
        await evil.publish("broker-b", TOPIC, evil_key.wrap(encode_batch([fake_event])).decode())
        # a genuine envelope whose body was swapped: the orchestrator's key, but not its signature
        genuine = orjson.loads(orch.publisher.signer.wrap(b'{"x":1}'))
        genuine["body"] = forged_triage(critical.id).decode()
        await evil.publish("broker-b", TOPIC, orjson.dumps(genuine).decode())
        await wait_for(lambda: follower.store.quarantine_count() == 4, "forgeries quarantined")
        assert follower.store.quarantine_by_reason() == {"unsigned": 1, "wrong_key": 2, "bad_signature": 1}
        shown = follower.store.get(critical.id)
        assert shown is not None and shown.state == "new" and not shown.state_by  # not "alice via broker-b"
        assert follower.store.get(fake_event.id) is None

        # (c) what the orchestrator itself signs is still applied
        orch.triage_source("203.0.113.66", "acknowledged", "on it")
        await wait_for(lambda: follower.store.get(critical.id).state == "acknowledged", "genuine triage applied")  # type: ignore[union-attr]
        assert follower.store.get(critical.id).state_by == "alice via broker-b"  # type: ignore[union-attr]
    finally:
        await stop_tasks(*tasks)


def follow_args(state_dir: Path, *extra: str) -> Any:
    return build_parser().parse_args(["follow", "broker-b", "--headless", "--state-dir", str(state_dir),
                                      "--pilotctl", SIM, *extra])


async def test_the_pinned_key_survives_a_restart_and_another_key_is_refused(sim_nodes, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    nodes = sim_nodes("orch-y", "broker-b", "analyst-z",
                      trust=[("orch-y", "broker-b"), ("analyst-z", "broker-b")])
    orch_dir, follow_dir = tmp_path / "orch-state", tmp_path / "follow-state"

    def orchestrator() -> OrchestratorEngine:
        args = build_parser().parse_args(["orchestrator", "--headless", "--publish", "broker-b", "--state-dir",
                                          str(orch_dir), "--pilotctl", SIM])
        engine = orchestrator_cmd.build_engine(args)
        engine.pilotctl = Pilotctl(SIM, env=nodes["orch-y"].env)
        engine.publisher._pilotctl = engine.pilotctl  # type: ignore[union-attr]
        engine.config.stream = engine.config.inbox = False
        return engine

    def follower() -> OrchestratorEngine:
        engine = follow_cmd.build_engine(follow_args(follow_dir))
        engine.pilotctl = Pilotctl(SIM, env=nodes["analyst-z"].env)
        return engine

    orch = orchestrator()
    assert orch.publisher is not None
    fp = orch.publisher.signer.fingerprint
    assert fp in capsys.readouterr().err  # the orchestrator prints the fingerprint followers check
    key_file = paths.signing_key_path(orch_dir)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert orchestrator().publisher.signer.fingerprint == fp  # type: ignore[union-attr]  # same key on restart
    first = follower()
    assert "no orchestrator key pinned yet" in capsys.readouterr().err
    tasks = [asyncio.create_task(orch.run()), asyncio.create_task(first.run())]
    try:
        await until_following(orch, first, 2)
    finally:
        await stop_tasks(*tasks)
    pin_file = paths.pinned_key_path(follow_dir)
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    orch.store.close()
    first.store.close()

    # the follower restarts: it remembers the key, and an orchestrator with another key is refused
    key_file.unlink()
    impostor = orchestrator()
    assert impostor.publisher is not None and impostor.publisher.signer.fingerprint != fp
    second = follower()
    assert f"accepting only what orchestrator key {fp} signed" in capsys.readouterr().err
    before = second.store.total()
    tasks = [asyncio.create_task(impostor.run()), asyncio.create_task(second.run())]
    try:
        deadline = time.monotonic() + 20
        seq = 0
        while second.store.quarantine_count() == 0:
            assert time.monotonic() < deadline, "the follower never saw the impostor's publish"
            seq += 1
            event = make_event("198.51.100.3", "port_scan", "low", sensor="impostor", seq=seq)
            impostor.ingest_payload(encode_batch([event]), sender="", transport="stream")
            await asyncio.sleep(0.3)
        assert set(second.store.quarantine_by_reason()) == {"wrong_key"}
        assert second.store.total() == before
    finally:
        await stop_tasks(*tasks)
        impostor.store.close()
        second.store.close()


def test_key_pins_and_cli_key_flag(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    orch_key, other = fanout.Signer.ephemeral(), fanout.Signer.ephemeral()
    note = fanout.TriageNote(("ev-1",), "acknowledged", None, "alice").to_json()
    # --key with the full public key: pinned before any message arrives, and kept
    state = tmp_path / "s1"
    engine = follow_cmd.build_engine(follow_args(state, "--key", orch_key.public_b64))
    pin: fanout.KeyPin = engine.follow_pin  # type: ignore[attr-defined]
    assert pin.open(orch_key.wrap(note)) == note
    with pytest.raises(fanout.Unverified) as refused:
        pin.open(other.wrap(note))
    assert refused.value.reason == "wrong_key" and other.fingerprint in refused.value.detail
    assert fanout.KeyPin(file=paths.pinned_key_path(state)).pinned == orch_key.public
    engine.store.close()
    # --key with a fingerprint: another signer is refused even as the first one seen
    engine = follow_cmd.build_engine(follow_args(tmp_path / "s2", "--key", orch_key.fingerprint))
    pin = engine.follow_pin  # type: ignore[attr-defined]
    with pytest.raises(fanout.Unverified, match="not by the pinned"):
        pin.open(other.wrap(note))
    assert pin.open(orch_key.wrap(note)) == note and pin.pinned == orch_key.public
    engine.store.close()
    # a typo is an error, not a silent fall-back to trust on first use
    with pytest.raises(Exception, match="neither a key fingerprint"):
        follow_cmd.build_engine(follow_args(tmp_path / "s3", "--key", "abc"))
    assert follow_cmd.run(follow_args(tmp_path / "s4", "--key", "abc")) == 1
    assert "neither a key fingerprint" in capsys.readouterr().err
