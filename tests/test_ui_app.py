"""Drive the dashboard with keys (``App.run_test``) and check what the analyst sees.

Engines run for real over temp-dir stores; pilotctl is a :class:`ui_sample.StubPilot` (mitigation is
answered "applied" in dry-run, trust requests come from memory). Each test names the keys it presses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ui_sample import (
    EXEC_ADDR,
    SAMPLE_PENDING,
    FixedClock,
    StubPilot,
    fill_executor,
    sample_executor,
    sample_oracle,
    sample_orchestrator,
    sample_send_results,
    screen_text,
)

from pilot_tui.engines import updates as u
from pilot_tui.pilot.errors import TrustRequired
from pilot_tui.ui.app import PilotApp, make_app
from pilot_tui.ui.screens.feed import FeedScreen
from pilot_tui.ui.widgets.event_detail import EventDetail
from pilot_tui.ui.widgets.feed_table import FeedTable

pytestmark = pytest.mark.timeout(60)


async def settle(pilot: Any, delay: float | None = None) -> None:
    """Let UI workers (intents, reads) finish and the update pump run (it runs every 0.1 s; here it is run at once)."""
    app: PilotApp = pilot.app
    ui_workers = [w for w in app.workers if w.group not in ("engines", "background")]
    if ui_workers:
        await app.workers.wait_for_complete(ui_workers)
    if delay:
        await pilot.pause(delay)
    app.pump()
    await pilot._wait_for_screen()
    await pilot.pause()


def feed_screen(app: PilotApp) -> FeedScreen:
    screen = app.view_screens["feed"]
    assert isinstance(screen, FeedScreen)
    return screen


@pytest.fixture
def orch(tmp_path: Path) -> Any:
    return sample_orchestrator(str(tmp_path / "events.db"), 300)


# -- the threat feed -----------------------------------------------------------------------------------------


async def test_feed_shows_newest_first_and_filters(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "300 events" in text and "quarantine 3" in text
        newest = orch.store.get("ev-7-000299").event
        first_row = next(line for line in text.splitlines() if line.startswith("11:"))
        assert newest.source_ip in first_row and newest.anomaly in first_row
        # "/" opens the filter box; type a sensor filter; Enter applies it
        await pilot.press("slash", *"sensor:web", "enter")
        await settle(pilot)
        text = screen_text(app)
        shown = feed_screen(app).window.total
        assert 0 < shown < 300 and f"showing {shown}" in text and "sensor:web" in text
        rows = [line for line in text.splitlines() if line.startswith("11:")]
        assert rows and all("gcp-web-1" in line for line in rows)
        # "s" raises the minimum severity (info → low); "h" hides handled; Esc clears everything
        await pilot.press("s", "s", "s", "s")
        await settle(pilot)
        assert all(("CRIT" in line or "critical" in line) for line in screen_text(app).splitlines()
                   if line.startswith("11:"))
        await pilot.press("escape")
        await settle(pilot)
        assert feed_screen(app).window.total == 300 and "showing" not in screen_text(app)


async def test_acknowledge_with_a_note_and_false_positive(orch: Any) -> None:
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        target = table.current.event.id  # type: ignore[union-attr]
        # "a" asks for a note; type it; Enter confirms → the engine records it
        await pilot.press("a", *"seen it", "enter")
        await settle(pilot)
        stored = orch.store.get(target)
        assert stored.state == "acknowledged" and stored.note == "seen it"
        assert "ack" in screen_text(app).splitlines()[4]
        # "h" hides handled events: the acknowledged row goes away
        await pilot.press("h")
        await settle(pilot)
        assert feed_screen(app).window.total == 299
        # down one row, "f" false positive, Esc in the note dialog cancels (nothing changes)
        await pilot.press("f", "escape")
        await settle(pilot)
        current = table.current.event.id  # type: ignore[union-attr]
        assert orch.store.get(current).state == "new"
        await pilot.press("f", "enter")
        await settle(pilot)
        assert orch.store.get(current).state == "false_positive"
        assert feed_screen(app).window.total == 298


async def test_mitigate_confirms_then_shows_the_outcome_on_the_row(tmp_path: Path) -> None:
    stub = StubPilot()
    orch = sample_orchestrator(str(tmp_path / "events.db"), 200, pilot=stub)
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        await pilot.press("down", "down")
        target = table.current
        assert target is not None
        # "m" opens the confirmation: nothing is sent before "y"
        await pilot.press("m")
        await settle(pilot)
        assert "Block source IP?" in screen_text(app) and target.event.source_ip in screen_text(app)
        assert stub.calls == []
        await pilot.press("n")
        await settle(pilot)
        assert stub.calls == []
        await pilot.press("m", "y")
        await settle(pilot, 0.3)
        assert stub.calls == [("find", "aws-exec-node"), ("send_message", EXEC_ADDR)]  # resolved once, pinned
        assert orch.store.get(target.event.id).state == "mitigated"
        row = screen_text(app).splitlines()[4 + 2]
        assert target.event.source_ip in row and "blocked" in row


async def test_mitigate_without_an_executor_is_a_notification_not_a_crash(tmp_path: Path) -> None:
    orch = sample_orchestrator(str(tmp_path / "events.db"), 50, exec_node=None)
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot, 0.3)
        notes = [n.message for n in app._notifications]
        assert any("no executor configured" in m for m in notes), notes
        assert app.is_running


async def test_detail_pane_renders_evidence_literally(orch: Any) -> None:
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        # the sample's third newest event carries markup and an OSC escape in its evidence
        await pilot.press("down", "down", "enter")
        await settle(pilot)
        detail = app.screen.query_one(EventDetail)
        assert detail.display
        text = screen_text(app)
        assert "Invalid user [bold" in text and "red]admin[/] \\x1b]8;;http://x\\x07 from" in text
        # the pane follows the cursor; Esc closes it
        await pilot.press("up")
        await settle(pilot)
        assert "ev-7-000298" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert not detail.display


async def test_new_events_are_picked_up_and_the_cursor_keeps_its_event(orch: Any) -> None:
    from ui_sample import sample_events

    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        await pilot.press("down", "down", "down")
        held = table.current.rowid  # type: ignore[union-attr]
        fresh = [e for _, e in sample_events(5, seed=99)]
        payload = b"\n".join(e.to_json() for e in fresh)
        orch.ingest_payload(payload, sender="0:0000.0000.0b20", transport="stream")
        await settle(pilot, 0.3)
        assert "305 events" in screen_text(app)
        assert table.current.rowid == held and table.cursor == 8  # type: ignore[union-attr]
        # "F" follows the live feed again: the newest event is selected as it arrives
        await pilot.press("F")
        orch.ingest_payload(b"\n".join(e.to_json() for e in [e for _, e in sample_events(2, seed=98)]),
                            sender="0:0000.0000.0b20", transport="stream")
        await settle(pilot, 0.3)
        assert table.cursor == 0 and table.current.event.id.startswith("ev-98-")  # type: ignore[union-attr]


async def test_scrollbar_thumb_follows_new_events(orch: Any) -> None:
    """The scrollbar is repainted only when a new event moves its thumb visibly, but it is never left stale."""
    from textual.geometry import Region
    from ui_sample import sample_events

    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        bar = table.vertical_scrollbar
        whole = Region(0, 0, 1, bar.size.height)
        thumbs = set()
        for seed in range(90, 100):  # 300 -> 1,300 rows: the thumb shrinks from ~2 cells to under one
            fresh = [e for _, e in sample_events(100 if seed % 2 else 1, seed=seed)]
            orch.ingest_payload(b"\n".join(e.to_json() for e in fresh), sender="0:0000.0000.0b20",
                                transport="stream")
            await settle(pilot, 0.1)
            assert bar.window_virtual_size == table.virtual_size.height == table.window.total + 1
            shown = [strip.text + str(strip) for strip in bar.render_lines(whole)]
            bar.refresh()
            assert [strip.text + str(strip) for strip in bar.render_lines(whole)] == shown, "stale scrollbar"
            thumbs.add(tuple(shown))
        assert len(thumbs) > 1  # the thumb did change along the way, so both paths were taken


async def test_incidents_enter_filters_the_feed_by_ip(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        text = screen_text(app)
        assert "source IPs" in text and "seen by more than one sensor" in text
        from textual.widgets import DataTable

        ip = str(app.screen.query_one(DataTable).get_row_at(1)[0])  # SOURCE IP comes first
        await pilot.press("down", "enter")
        await settle(pilot)
        screen = feed_screen(app)
        assert app.screen is screen and screen.window.filter.source_ip == ip
        rows = [line for line in screen_text(app).splitlines() if line.startswith("11:")]
        assert rows and all(ip in line for line in rows)


async def test_incident_acknowledged_as_a_whole_with_one_note(orch: Any) -> None:
    from textual.widgets import DataTable

    store = orch.store
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        ip = store.conn.execute("SELECT source_ip FROM events WHERE state='new' GROUP BY source_ip "
                                "ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0]
        table = app.screen.query_one(DataTable)
        row = next(r for r in range(table.row_count) if str(table.get_row_at(r)[0]) == ip)
        await pilot.press(*["down"] * row)
        one_handled = store.ids_from_source(ip)[0]
        orch.false_positive([one_handled], "earlier call")  # already handled: must keep its state
        before = {r[0]: r[1] for r in store.conn.execute("SELECT id, state FROM events WHERE source_ip != ?", (ip,))}
        to_ack = store.ids_from_source(ip)
        assert to_ack
        await pilot.press("a")
        await settle(pilot)
        assert ip in screen_text(app) and f"{len(to_ack):,} new event" in screen_text(app)
        await pilot.press(*"pen test", "enter")
        await settle(pilot, 0.2)
        states = {r[0]: (r[1], r[2]) for r in store.conn.execute(
            "SELECT id, state, note FROM events WHERE source_ip = ?", (ip,))}
        assert all(states[i] == ("acknowledged", "pen test") for i in to_ack)
        assert states[one_handled] == ("false_positive", "earlier call")
        assert {r[0]: r[1] for r in store.conn.execute(
            "SELECT id, state FROM events WHERE source_ip != ?", (ip,))} == before  # other attackers untouched
        assert store.ids_from_source(ip) == []
        await pilot.press("a")  # nothing new left: says so instead of opening an empty dialog
        await settle(pilot)
        notes = [n.message for n in app._notifications]
        assert any(f"{len(to_ack):,} events from {ip} acknowledged" in n for n in notes)
        assert any("has no new events" in n for n in notes)


async def test_sensors_and_trust_approve_goes_through_the_engine(tmp_path: Path) -> None:
    stub = StubPilot(pending_requests=list(SAMPLE_PENDING))
    orch = sample_orchestrator(str(tmp_path / "events.db"), 100, pilot=stub)
    app = make_app(orchestrator=orch, clock=FixedClock())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot, 0.3)
        text = screen_text(app)
        for sensor in ("gcp-log-oracle", "gcp-web-1", "aws-api-2", "edge-proxy-3"):
            assert sensor in text
        assert "2 waiting" in text and "[red]trust me[/] \\x1b[2J" in text
        # "a" approves the highlighted request after a confirmation that quotes its justification
        await pilot.press("a")
        await settle(pilot)
        assert "Trust this node?" in screen_text(app) and "edge-proxy-4 wants" in screen_text(app)
        await pilot.press("y")
        await settle(pilot, 0.3)
        assert ("approve", "4711") in stub.calls
        assert "1 waiting" in screen_text(app)
        # a failing reject becomes a notification with pilotctl's code and hint
        stub.fail_with = TrustRequired("not trusted", hint="handshake first")
        await pilot.press("x", "y")
        await settle(pilot, 0.3)
        assert any("trust_required: not trusted (handshake first)" in n.message for n in app._notifications)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, FeedScreen)


async def test_quarantine_shows_payloads_literally(orch: Any) -> None:
    app = make_app(orchestrator=orch)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        text = screen_text(app)
        assert "3 quarantined" in text and "bad_json 2" in text
        await pilot.press("down")
        await settle(pilot)
        assert '{"source_ip": "not-an-ip\\x1b[31m"' in screen_text(app)


# -- the oracle ------------------------------------------------------------------------------------------------


async def test_oracle_pause_retry_detail_and_send_log(tmp_path: Path) -> None:
    stub = StubPilot(fail_with=TrustRequired("no mutual trust", hint="run pilotctl handshake"))
    oracle = sample_oracle(str(tmp_path), pilot=stub)
    app = make_app(oracle=oracle)
    async with app.run_test(size=(130, 30)) as pilot:
        await settle(pilot, 0.4)
        text = screen_text(app)
        assert "gcp-log-oracle → local-threat-orchestrator:1000 via stream" in text
        assert "/var/log/auth.log" in text and "46.0 MiB" in text
        assert "trust_required" in text and "hint: run pilotctl handshake" in text
        assert "no-trust" in text and "12 pending" in text
        # "p" pauses sending (shown in the header), "p" again resumes
        await pilot.press("p")
        await settle(pilot)
        assert oracle.sender.paused and "PAUSED" in screen_text(app)
        await pilot.press("p")
        assert not oracle.sender.paused
        # the peer comes back; "r" retries at once instead of waiting for the back-off
        stub.fail_with = None
        await pilot.press("r")
        await settle(pilot, 0.5)
        assert oracle.outbox.depth() == 0 and "0 pending" in screen_text(app)
        assert "✓" in screen_text(app)
        # Enter on a detection opens its detail (with its outbox state)
        await pilot.press("enter")
        await settle(pilot)
        text = screen_text(app)
        assert "Detection" in text and "outbox" in text and "delivered (stored)" in text
        await pilot.press("escape")


# -- executor, views, help, palette, quitting ---------------------------------------------------------------------


async def test_executor_view_lists_decisions_and_blocks(tmp_path: Path) -> None:
    clock = FixedClock()
    executor = sample_executor(str(tmp_path / "exec.db"), clock)
    await fill_executor(executor, clock)
    app = make_app(executor=executor, clock=clock, start_engines=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "DRY-RUN" in text and "Active blocks (3)" in text
        assert "203.0.113.66" in text and "59m" in text
        assert "allowlisted" in text and "loopback" in text and "not_obeyed" in text
        # newest decision first; Enter shows the decision with the commands that would run
        await pilot.press("down", "down", "down", "down", "down", "down", "down", "down")
        await pilot.press("enter")
        await settle(pilot)
        assert "commands" in screen_text(app) and "dry-run" in screen_text(app)


async def test_views_switch_with_number_keys_and_tab(tmp_path: Path, orch: Any) -> None:
    oracle = sample_oracle(str(tmp_path))
    clock = FixedClock()
    executor = sample_executor(str(tmp_path / "exec.db"), clock)
    app = make_app(orchestrator=orch, oracle=oracle, executor=executor, clock=clock, start_engines=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.views == ["feed", "oracle", "executor"] and app.current_mode == "feed"
        await pilot.press("2")
        assert app.current_mode == "oracle"
        await pilot.press("3")
        assert app.current_mode == "executor"
        await pilot.press("tab")
        assert app.current_mode == "feed"
        await pilot.press("shift+tab")
        assert app.current_mode == "executor"
        await pilot.press("1")
        # number keys typed into the filter box stay text
        await pilot.press("slash", "2", "3")
        assert app.current_mode == "feed"
        await pilot.press("escape")


async def test_demo_layout_and_help(tmp_path: Path, orch: Any) -> None:
    oracle = sample_oracle(str(tmp_path))
    app = make_app(orchestrator=orch, oracle=oracle, demo=True, start_engines=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for update in sample_send_results():
            oracle.bus.emit(update)
        await settle(pilot, 0.3)
        assert app.views[0] == "demo" and app.current_mode == "demo"
        text = screen_text(app)
        assert "Oracle send log" in text and "trust_required" in text and "300 events" in text
        # "?" lists the keys of the view underneath, Esc closes
        await pilot.press("question_mark")
        await settle(pilot)
        text = screen_text(app)
        assert "Mitigate" in text and "Next view" in text and "Quit" in text
        await pilot.press("escape")


async def test_command_palette_offers_the_current_screens_keys_and_runs_them(tmp_path: Path, orch: Any) -> None:
    from pilot_tui.ui.commands import binding_commands

    oracle = sample_oracle(str(tmp_path))
    app = make_app(orchestrator=orch, oracle=oracle, start_engines=False, keymap={"pause": "P"})
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        # built from the feed's live bindings: its keys are there, the oracle view's are not
        titles = {title: help_text for title, help_text, _ in binding_commands(app, app.screen.active_bindings)}
        assert titles["Threat feed: Filter"] == "Key: /" and "Everywhere: Quit" in titles
        assert not any("Pause" in title or "Retry" in title for title in titles)
        await pilot.press("2")
        await settle(pilot)
        titles = {title: help_text for title, help_text, _ in binding_commands(app, app.screen.active_bindings)}
        assert titles["Oracle: Pause/resume"] == "Key: P"  # the keymap's key, not p
        assert not any("Filter" in title for title in titles)
        # and choosing one runs it, as its key would
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"pause")
        await settle(pilot, 0.3)
        await pilot.press("enter")
        await settle(pilot, 0.3)
        assert app.current_mode == "oracle" and oracle.sender.paused


async def test_engine_failure_is_a_notification_and_quit_is_clean(tmp_path: Path, orch: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("log generator crashed")

    app = make_app(orchestrator=orch, background=[broken])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, 0.3)
        assert any("log generator crashed" in n.message for n in app._notifications)
        orch.bus.emit(u.Notice(at=0, level="warning", message="[b]markup[/b] stays text"))
        await settle(pilot, 0.3)
        assert any(n.message == "[b]markup[/b] stays text" and not n.markup for n in app._notifications)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0


async def test_make_app_needs_an_engine() -> None:
    with pytest.raises(ValueError):
        make_app()
