"""The analyst's console (issue 13 §1, §2): the selection stays on the chosen event whatever arrives, follow mode is
explicit, every key works where the analyst is and ``?`` lists exactly those keys.

Engines are not started (start_engines=False): events are ingested by hand and the update pump run at once, so
each test decides exactly what arrives and when.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.widgets import DataTable, Input, Label
from ui_sample import FixedClock, sample_events, sample_oracle, sample_orchestrator, screen_text

from pilot_tui.engines import updates as u
from pilot_tui.model import make_event
from pilot_tui.ui.app import PilotApp, make_app
from pilot_tui.ui.screens.feed import FeedScreen
from pilot_tui.ui.screens.help import help_rows
from pilot_tui.ui.widgets.event_detail import EventDetail
from pilot_tui.ui.widgets.feed_table import FeedTable

pytestmark = pytest.mark.timeout(60)


async def settle(pilot: Any, delay: float | None = None) -> None:
    app: PilotApp = pilot.app
    ui_workers = [w for w in app.workers if w.group not in ("engines", "background")]
    if ui_workers:
        await app.workers.wait_for_complete(ui_workers)
    if delay:
        await pilot.pause(delay)
    app.pump()
    await pilot._wait_for_screen()
    await pilot.pause()


def arrive(orch: Any, n: int, seed: int) -> None:
    """``n`` new events reach the orchestrator (as a sensor's batch would)."""
    payload = b"\n".join(e.to_json() for _, e in sample_events(n, seed=seed))
    orch.ingest_payload(payload, sender="0:0000.0000.0b20", transport="stream")


@pytest.fixture
def orch(tmp_path: Path) -> Any:
    return sample_orchestrator(str(tmp_path / "events.db"), 300)


def detail_title(app: PilotApp) -> str:
    return str(app.screen.query_one(EventDetail).border_title)


# -- §1 the selection stays on its event ---------------------------------------------------------------------


async def test_arrivals_never_change_the_selected_event_or_its_detail_pane(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        # the analyst opens the newest event (Enter on the top row): that choice stops following
        await pilot.press("enter")
        await settle(pilot)
        chosen = table.current
        assert chosen is not None and not table.following
        assert chosen.event.id[:24] in detail_title(app)
        for seed in (90, 91, 92):
            arrive(orch, 4, seed)
            await settle(pilot, 0.15)
            assert table.current is not None and table.current.event.id == chosen.event.id
            assert chosen.event.id[:24] in detail_title(app)
        assert table.cursor == 12
        # the header counts what arrived above the view, nothing moved
        assert "12 new ↑" in screen_text(app)
        # "a" acts on the chosen event, not on whatever is on top now
        await pilot.press("a")
        await settle(pilot)
        assert chosen.event.source_ip in screen_text(app)
        await pilot.press(*"checked", "enter")
        await settle(pilot, 0.2)
        stored = orch.store.get(chosen.event.id)
        assert stored is not None and stored.state == "acknowledged" and stored.note == "checked"
        newest = orch.store.conn.execute("SELECT state FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        assert newest == "new"


async def test_follow_mode_selects_the_newest_and_off_nothing_moves(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        assert table.following and "● live" in screen_text(app)
        arrive(orch, 3, 80)
        await settle(pilot, 0.15)
        assert table.cursor == 0 and table.current.event.id.startswith("ev-80-")  # type: ignore[union-attr]
        # a move stops following; the rows on screen stay where they are while events arrive
        await pilot.press("j", "j")
        rows_before = [line for line in screen_text(app).splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
        held = table.current
        arrive(orch, 5, 81)
        await settle(pilot, 0.15)
        assert not table.following and table.current == held
        assert "5 new ↑" in screen_text(app)
        rows_after = [line for line in screen_text(app).splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
        assert rows_after[:5] == rows_before[:5]
        # "F" follows again: the newest event is selected at once and as new ones arrive
        await pilot.press("F")
        await settle(pilot)
        assert table.following and table.cursor == 0 and round(table.scroll_y) == 0
        arrive(orch, 1, 82)
        await settle(pilot, 0.15)
        assert table.current.event.id.startswith("ev-82-")  # type: ignore[union-attr]


async def test_sorted_feed_keeps_the_selected_event_when_events_land_inside_the_order(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        await pilot.press(*["j"] * 5, "S")  # sort by severity, highest first
        await settle(pilot)
        assert table.window.sort.key == "severity" and "SEVERITY▼"[:3] in screen_text(app)
        held = table.current
        assert held is not None
        critical = [make_event("203.0.113.250", "web_sqli", "critical", sensor="gcp-web-1", seq=50_000 + i,
                               event_id=f"crit-{i}") for i in range(3)]
        orch.ingest_payload(b"\n".join(e.to_json() for e in critical), sender="0:0000.0000.0b20", transport="stream")
        await settle(pilot, 0.15)
        assert table.current is not None and table.current.rowid == held.rowid
        # the order is real: severities never rise going down the list
        ranks = [table.window.row(i).event.severity_rank for i in range(40)]  # type: ignore[union-attr]
        assert ranks == sorted(ranks, reverse=True)


async def test_oracle_detections_follow_the_newest_until_the_analyst_moves(tmp_path: Path) -> None:
    oracle = sample_oracle(str(tmp_path))
    app = make_app(oracle=oracle, clock=FixedClock(), start_engines=False)

    def detect(n: int, seed: int) -> None:
        for _, event in sample_events(n, seed=seed):
            oracle.recent.append(event)
            oracle.bus.emit(u.Detected(0.0, event))

    async with app.run_test(size=(130, 34)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#detections", DataTable)
        detect(3, 70)
        await settle(pilot, 1.1)
        assert table.cursor_row == 0 and "● live" in str(app.screen.query_one("#detections-title", Label).render())
        newest = list(oracle.recent)[-1]
        assert str(table.get_row_at(0)[2]) == newest.source_ip
        await pilot.press("j", "j")
        held = str(table.get_row_at(table.cursor_row)[2]), table.cursor_row
        detect(4, 71)
        await settle(pilot, 1.1)
        assert table.cursor_row == held[1] + 4
        assert "4 new ↑" in str(app.screen.query_one("#detections-title", Label).render())
        await pilot.press("F")
        await settle(pilot)
        assert table.cursor_row == 0


async def test_incidents_keep_the_selected_address_when_the_order_changes(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot, 0.2)
        table = app.screen.query_one(DataTable)
        await pilot.press("j", "j", "j")  # j/k move in Incidents as in the feed
        assert table.cursor_row == 3
        await pilot.press("k")
        assert table.cursor_row == 2
        held = str(table.get_row_at(2)[0])
        # a new attacker becomes the most recently active: every row moves down one
        orch.ingest_payload(make_event("198.51.100.201", "port_scan", "high", sensor="gcp-web-1", seq=60_000,
                                       event_id="newcomer").to_json(), sender="0:0000.0000.0b20", transport="stream")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert str(table.get_row_at(0)[0]) == "198.51.100.201"
        assert str(table.get_row_at(table.cursor_row)[0]) == held


# -- §2 every key works where the analyst is --------------------------------------------------------------------


def help_text(app: PilotApp) -> str:
    return screen_text(app)


async def test_help_lists_every_key_that_works_on_each_view(tmp_path: Path, orch: Any) -> None:
    oracle = sample_oracle(str(tmp_path))
    app = make_app(orchestrator=orch, oracle=oracle, demo=True, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(120, 50)) as pilot:
        await settle(pilot)
        for view in ("1", "2", "3"):
            await pilot.press(view)
            await settle(pilot)
            rows = help_rows(app.screen.active_bindings, app.get_key_display)
            await pilot.press("question_mark")
            await settle(pilot)
            shown = help_text(app)
            for _section, keys, description in rows:
                assert description in shown and keys in shown, (view, keys, description)
            await pilot.press("escape")
        # the demo's feed answers every feed key, not only a/m/f/p
        await pilot.press("1")
        await settle(pilot)
        demo_keys = {desc for _s, _k, desc in help_rows(app.screen.active_bindings, app.get_key_display)}
        assert {"Filter", "Min severity", "Hide handled", "Incidents", "Trust", "Quarantine", "Follow", "Sort",
                "Copy IP", "Ack", "Mitigate"} <= demo_keys


async def test_feed_keys_on_the_demo_view_reach_the_threat_feed(tmp_path: Path, orch: Any) -> None:
    oracle = sample_oracle(str(tmp_path))
    app = make_app(orchestrator=orch, oracle=oracle, demo=True, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.current_mode == "demo"
        await pilot.press("slash")
        await settle(pilot)
        assert app.current_mode == "feed" and app.screen.query_one("#filter-input", Input).has_focus
        await pilot.press("escape", "1", "s")
        await settle(pilot)
        feed = app.view_screens["feed"]
        assert isinstance(feed, FeedScreen) and feed.window.filter.min_severity == 1
        await pilot.press("1", "x")
        await settle(pilot)
        assert type(app.screen).__name__ == "QuarantineScreen"


async def typed(pilot: Any) -> None:
    """Typing paused: wait (bounded) until the debounced filter was applied, then for its workers and repaint."""
    screen = pilot.app.screen
    for _ in range(40):
        await pilot.pause(0.05)
        if getattr(screen, "_filter_timer", None) is None:
            break
    await settle(pilot)


async def test_filter_applies_while_typing_and_unknown_fields_are_inline_errors(orch: Any) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FeedScreen)
        await pilot.press("slash", *"sensor:web")
        await typed(pilot)  # no Enter: the filter applied once typing paused
        assert screen.window.filter.sensor == "web" and 0 < screen.window.total < 300
        assert "⏎ Keep filter  esc Cancel" in screen_text(app)  # the footer says how to leave the box
        box = screen.query_one("#filter-input", Input)
        await pilot.press(*" foo:bar")
        await typed(pilot)
        assert "unknown field 'foo'" in screen_text(app)
        # the invalid text is not applied (a valid prefix typed before a pause, like "f", may have been)
        assert screen.window.filter.sensor == "web" and "bar" not in screen.window.filter.query()
        await pilot.press("enter")  # Enter does not take an invalid filter: the box stays open with the error
        await settle(pilot)
        assert box.display and "unknown field" in screen_text(app)
        # a sev: typed in the box goes away with the text that held it
        await pilot.press(*["backspace"] * 30, *"sev:critical")
        await typed(pilot)
        assert screen.window.filter.min_severity == 4
        await pilot.press(*["backspace"] * 12, *"root", "enter")
        await typed(pilot)
        assert screen.window.filter.min_severity == 0 and screen.window.filter.text == "root"
        # Esc while typing cancels back to the filter in force when the box opened
        await pilot.press("slash", *["backspace"] * 4, *"admin")
        await typed(pilot)
        assert screen.window.filter.text == "admin"
        await pilot.press("escape")
        await settle(pilot)
        assert screen.window.filter.text == "root" and not box.display


async def test_hide_handled_agrees_with_the_state_column_after_a_block(tmp_path: Path) -> None:
    orch = sample_orchestrator(str(tmp_path / "events.db"), 300)
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        ip = orch.store.conn.execute("SELECT source_ip FROM events GROUP BY source_ip ORDER BY COUNT(*) DESC"
                                     ).fetchone()[0]
        orch.store.record_mitigation("req-x", orch.store.ids_from_source(ip)[0], ip, "applied", "dry-run")
        orch.bus.emit(u.MitigationUpdate(0.0, "req-x", ip, "applied", "dry-run"))
        await settle(pilot)
        assert "blocked" in screen_text(app)
        await pilot.press("h")
        await settle(pilot)
        text = screen_text(app)
        assert "open only" in text and "blocked" not in text and ip not in text.split("Top sources")[0]


async def test_copy_the_selected_address_and_event(orch: Any, tmp_path: Path) -> None:
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        await pilot.press("j", "c")
        await settle(pilot)
        current = table.current
        assert current is not None and app.clipboard == current.event.source_ip
        assert (tmp_path / "copied-address.txt").read_text().strip() == current.event.source_ip
        assert any(str(tmp_path / "copied-address.txt") in n.message for n in app._notifications)
        await pilot.press("C")
        await settle(pilot)
        assert orjson.loads(app.clipboard)["id"] == current.event.id
        assert orjson.loads((tmp_path / "copied-event.json").read_bytes())["id"] == current.event.id


async def test_readme_key_table_names_every_letter_key_that_help_lists(tmp_path: Path, orch: Any) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| keys | where | what |"):]
    table = table[:table.index("\n\n")]  # digits: the `1`–`4` row
    oracle = sample_oracle(str(tmp_path))
    app = make_app(orchestrator=orch, oracle=oracle, demo=True, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        missing = set()
        for keys in (["1"], ["2"], ["i"], ["escape", "t"], ["escape", "x"], ["escape", "3"]):
            await pilot.press(*keys)
            await settle(pilot, 0.1)
            for _section, shown, _description in help_rows(app.screen.active_bindings, app.get_key_display):
                for key in shown.split():
                    if len(key) == 1 and key.isascii() and not key.isdigit() and f"`{key}`" not in table:
                        missing.add((type(app.screen).__name__, key))
        assert not missing
