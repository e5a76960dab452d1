"""Whom the executor obeys and for how long a request stands (issue 12, items 3 and 5), over the fake driver.

Item 3: ``--obey HOSTNAME`` used to obey whoever held that hostname at the time — a daemon restarted with
``--hostname orch`` took over. Now the hostname is pinned to the address it first resolved to, across restarts, and a
different resolution is refused loudly. Item 5: a daemon keeps unread inbox messages for ever, so an executor on a fresh
state dir used to apply every old block request it found; now a request carries ``issued_at``/``valid_s`` and an old
one is refused as stale, with nothing run.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_executor import Clock, ask, make, of, replies, request
from test_executor_support import ORCH_ADDR, STRANGER_ADDR, FakePilot

from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines.mitigation import MitigationRequest, utc_iso
from pilot_tui.engines.updates import Notice
from pilot_tui.ui.widgets.executor_panels import executor_status_text

pytestmark = pytest.mark.timeout(20)

ORCH = "local-threat-orchestrator"


# -- item 3: the obeyed node is pinned ---------------------------------------------------------------------------


async def test_a_node_that_takes_over_the_obeyed_hostname_is_refused_and_shown(tmp_path: Path) -> None:
    clock = Clock()
    pilot = FakePilot(hosts={ORCH: ORCH_ADDR})
    engine, pilot, updates = make(tmp_path, pilot, obey=[ORCH], clock=clock)
    await engine.prepare()
    assert engine.state().obey_pins == ((ORCH, ORCH_ADDR),)
    assert f"{ORCH}={ORCH_ADDR}" in executor_status_text(engine.state(), clock.now).plain

    pilot.hosts[ORCH] = STRANGER_ADDR  # the orchestrator's daemon stopped; another node restarted as "orch"
    clock.now += 31  # past the re-resolution rate limit: the old code re-resolved here and obeyed the newcomer
    body = await ask(engine, pilot, request(at=clock.now).encode(), sender=STRANGER_ADDR)
    assert body["status"] == "refused" and body["detail"].startswith("not_obeyed:")
    assert f"now holds the hostname {ORCH}" in body["detail"] and ORCH_ADDR in body["detail"]
    assert engine.firewall.recorded == [] and engine.store.active_blocks() == []

    [conflict] = of(updates, xu.ObeyPinConflict)
    assert (conflict.hostname, conflict.pinned, conflict.now, conflict.now_node_id) == (ORCH, ORCH_ADDR,
                                                                                          STRANGER_ADDR, 9)
    assert any(n.level == "error" and STRANGER_ADDR in n.message for n in of(updates, Notice))
    status = executor_status_text(engine.state(), clock.now).plain
    assert "OBEY PIN CONFLICT" in status and STRANGER_ADDR in status and f"--obey {STRANGER_ADDR}" in status

    # the real orchestrator, at its pinned address, is still obeyed
    assert (await ask(engine, pilot, request(at=clock.now).encode()))["status"] == "applied"
    await engine.close()


async def test_the_pin_survives_a_restart_and_a_changed_resolution_is_refused_at_start(tmp_path: Path) -> None:
    clock = Clock()
    pilot = FakePilot(hosts={ORCH: ORCH_ADDR})
    engine, pilot, _ = make(tmp_path, pilot, obey=[ORCH], clock=clock)
    await engine.prepare()
    await engine.close()

    pilot.hosts[ORCH] = STRANGER_ADDR
    engine2, _, updates = make(tmp_path, pilot, obey=[ORCH], clock=clock)
    await engine2.prepare()
    assert engine2.state().obey_addresses == (ORCH_ADDR,)
    assert [c.now for c in of(updates, xu.ObeyPinConflict)] == [STRANGER_ADDR]
    assert any(STRANGER_ADDR in c for c in engine2.state().obey_conflicts)
    refused = await ask(engine2, pilot, request(at=clock.now).encode(), sender=STRANGER_ADDR)
    assert refused["status"] == "refused" and engine2.store.active_blocks() == []
    assert (await ask(engine2, pilot, request(at=clock.now).encode()))["status"] == "applied"
    await engine2.close()


async def test_a_hostname_unresolved_at_start_is_pinned_on_first_resolution(tmp_path: Path) -> None:
    clock = Clock()
    pilot = FakePilot(hosts={})
    engine, pilot, _ = make(tmp_path, pilot, obey=[ORCH], clock=clock)
    await engine.prepare()
    assert engine.state().obey_unresolved == (ORCH,) and engine.state().obey_pins == ()
    pilot.hosts[ORCH] = ORCH_ADDR
    clock.now += 31
    assert (await ask(engine, pilot, request(at=clock.now).encode()))["status"] == "applied"
    pilot.hosts[ORCH] = STRANGER_ADDR
    clock.now += 31
    assert (await ask(engine, pilot, request(at=clock.now).encode(), sender=STRANGER_ADDR))["status"] == "refused"
    assert engine.state().obey_pins == ((ORCH, ORCH_ADDR),)
    await engine.close()


# -- item 5: stale requests ----------------------------------------------------------------------------------------


async def test_an_old_request_left_in_the_inbox_is_refused_as_stale_and_nothing_is_applied(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)  # a fresh state dir, an inbox that still holds old asks
    old = request(at=clock.now - 7200, duration_s=3600)
    unversioned = orjson.dumps({"schema": "pilot-tui.mitigate/1", "request_id": "r-old", "action": "block",
                                "ip": "198.51.100.7"})
    mid_old = pilot.deliver(ORCH_ADDR, old.encode())
    mid_unversioned = pilot.deliver(ORCH_ADDR, unversioned)
    await engine.prepare()
    await engine.process_pending()
    await engine.flush_replies()
    assert engine.firewall.recorded == [] and engine.store.active_blocks() == []
    answers = {reply_to: body for _, reply_to, body in replies(pilot)}
    assert answers[mid_old]["status"] == "refused" and answers[mid_old]["request_id"] == old.request_id
    assert answers[mid_old]["detail"].startswith("stale:") and "7200s ago" in answers[mid_old]["detail"]
    assert answers[mid_unversioned]["status"] == "refused"
    assert answers[mid_unversioned]["detail"].startswith("stale:") and "issued_at" in answers[mid_unversioned]["detail"]
    assert [r.reason for r in of(updates, xu.RequestRefused)] == ["stale", "stale"]
    assert of(updates, xu.ActionApplied) == []


async def test_validity_window_and_clock_skew(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, _ = make(tmp_path, clock=clock)
    await engine.prepare()
    late = MitigationRequest.new("block", "203.0.113.7", valid_s=60, now=clock.now - 61)
    assert (await ask(engine, pilot, late.encode()))["detail"].startswith("stale:")
    future = MitigationRequest.new("block", "203.0.113.8", now=clock.now + 600)
    assert "future" in (await ask(engine, pilot, future.encode()))["detail"]
    assert engine.firewall.recorded == []
    skewed = MitigationRequest.new("block", "203.0.113.9", now=clock.now + 30)  # a sender clock 30 s ahead
    body = await ask(engine, pilot, skewed.encode())
    assert body["status"] == "applied" and "dry-run" in body["detail"]
    just_in_time = MitigationRequest.new("block", "203.0.113.10", valid_s=60, now=clock.now - 59)
    assert (await ask(engine, pilot, just_in_time.encode()))["status"] == "applied"
    assert [b.ip for b in engine.store.active_blocks()] == ["203.0.113.10", "203.0.113.9"]


async def test_a_request_already_answered_is_not_run_again_even_after_it_went_stale(tmp_path: Path) -> None:
    clock = Clock()
    engine, pilot, updates = make(tmp_path, clock=clock)
    await engine.prepare()
    req = request(at=clock.now)
    first = await ask(engine, pilot, req.encode())
    n = len(engine.firewall.recorded)
    clock.now += 3600  # the orchestrator resends the same ask (same request_id) long after
    again = await ask(engine, pilot, req.encode())
    assert first == again and first["status"] == "applied" and len(engine.firewall.recorded) == n
    assert len(of(updates, xu.DuplicateRequest)) == 1 and len(of(updates, xu.ActionApplied)) == 1


def test_new_requests_say_when_they_were_issued() -> None:
    req = MitigationRequest.new("block", "203.0.113.7", now=1_800_000_000.0)
    assert (req.issued_at, req.valid_s) == (utc_iso(1_800_000_000.0), 300)
