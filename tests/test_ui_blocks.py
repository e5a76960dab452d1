"""The executor's blocks view, driven with keys: list, unblock and extend with a confirmation, node names.

A dry-run executor over a temp-dir store (``sample_executor``: obeys the sample orchestrator by name), filled with
the sample requests; the app's clock is fixed. Each test names the keys it presses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ui_sample import ORCH_ADDR, ORCH_NAME, FixedClock, fill_executor, sample_executor, screen_text

from pilot_tui.engines import updates as u
from pilot_tui.ui.app import PilotApp, make_app
from pilot_tui.ui.notices import notices_for
from pilot_tui.ui.screens.blocks import BlocksScreen
from pilot_tui.ui.screens.dialogs import ConfirmDialog, DurationDialog

pytestmark = pytest.mark.timeout(60)


async def settle(pilot: Any) -> None:
    """Let intents finish and the update pump run."""
    app: PilotApp = pilot.app
    ui = [w for w in app.workers if w.group not in ("engines", "background")]
    if ui:
        await app.workers.wait_for_complete(ui)
    app.pump()
    await pilot.pause()


async def executor_app(tmp_path: Path) -> tuple[PilotApp, Any, FixedClock]:
    clock = FixedClock()
    executor = sample_executor(str(tmp_path / "exec.db"), clock)
    await fill_executor(executor, clock)
    return make_app(executor=executor, clock=clock, start_engines=False), executor, clock


async def test_b_lists_every_block_with_who_asked_by_name(tmp_path: Path) -> None:
    app, executor, _ = await executor_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        # the executor view names the orchestrator in its rows; its address shows once, as the pin in the status
        text = screen_text(app)
        assert ORCH_NAME[:20] in text.split("Active blocks")[1] and text.count(ORCH_ADDR) == 1
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BlocksScreen)
        text = screen_text(app)
        for column in ("ADDRESS", "STATE", "EXPIRES IN", "BACKEND", "ASKED BY", "SINCE"):
            assert column in text
        for ip in ("203.0.113.66", "198.51.100.23", "2001:db8::dead:beef"):
            assert ip in text
        assert "in force" in text and "3 active blocks" in text and "DRY-RUN" in text
        assert text.count(ORCH_NAME) >= 3
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, BlocksScreen)


async def test_u_asks_then_lifts_the_selected_block(tmp_path: Path) -> None:
    app, executor, _ = await executor_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("b")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BlocksScreen)
        await pilot.press("j")
        target = screen.selected.ip
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and target in screen_text(app)
        await pilot.press("n")  # cancelled: nothing changes
        await settle(pilot)
        assert target in [b.ip for b in executor.store.active_blocks()]
        await pilot.press("u", "y")
        await settle(pilot)
        assert target not in [b.ip for b in executor.store.active_blocks()]
        assert len(executor.store.active_blocks()) == 2
        assert target not in screen_text(app).split("Unblock")[0]  # gone from the list
        assert any(f"{target}: block lifted" in str(n.message) for n in app._notifications)
        # the decisions list records who did it
        assert executor.store.history(1)[0]["sender"] == "operator"


async def test_e_extends_by_the_duration_typed_and_bad_input_is_said_inline(tmp_path: Path) -> None:
    app, executor, _ = await executor_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("b")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BlocksScreen)
        block = screen.selected
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, DurationDialog)
        await pilot.press("ctrl+u", *"soon", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DurationDialog) and "not a duration" in screen_text(app)
        await pilot.press("ctrl+u", *"2h", "enter")
        await settle(pilot)
        assert isinstance(app.screen, BlocksScreen)
        assert executor.store.get_block(block.ip).expires_at == block.expires_at + 7200
        messages = [str(n.message) for n in app._notifications]
        assert any(m.startswith(f"{block.ip}: expiry extended to ") for m in messages)
        assert not any("already blocked" in m for m in messages)


async def test_the_cursor_stays_on_its_address_when_blocks_come_and_go(tmp_path: Path) -> None:
    app, executor, clock = await executor_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("b")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BlocksScreen)
        await pilot.press("j", "j")
        chosen = screen.selected.ip
        first = executor.store.active_blocks()[0].ip
        await executor.lift_block(first)  # a row above it goes away (as an expiry would)
        screen.action_reload()
        await settle(pilot)
        assert screen.selected.ip == chosen


def test_a_reblock_says_expiry_extended_once() -> None:
    out = notices_for([
        u.MitigationUpdate(at=0, request_id="r", source_ip="203.0.113.7", status="already_applied",
                           detail="expiry extended to 2026-11-25T13:00:00.000Z"),
        u.MitigationUpdate(at=0, request_id="r", source_ip="203.0.113.7", status="already_applied",
                           detail="expiry unchanged: blocked until 2026-11-25T13:00:00.000Z"),
        u.MitigationUpdate(at=0, request_id="r", source_ip="203.0.113.7", status="already_applied",
                           detail="not blocked by this executor"),
    ])
    assert [text for _, text in out] == [
        "203.0.113.7: expiry extended to 2026-11-25T13:00:00.000Z",
        "203.0.113.7: already blocked — expiry unchanged: blocked until 2026-11-25T13:00:00.000Z",
        "203.0.113.7: not blocked by this executor",
    ]


async def test_new_decisions_never_move_the_selected_one(tmp_path: Path) -> None:
    from pilot_tui.engines.mitigation import MitigationRequest, utc_iso
    from pilot_tui.pilot.driver import InboxMessage
    from pilot_tui.ui.screens.executor import ExecutorScreen, decision_key

    app, executor, clock = await executor_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExecutorScreen)
        await pilot.press("down", "down")
        chosen = decision_key(screen.decisions[2])
        req = MitigationRequest("req-new", "block", "198.51.100.77", 600, issued_at=utc_iso(clock()))
        await executor.handle(InboxMessage("m-new", ORCH_ADDR, "2026-11-25T12:00:00Z", "json", req.encode().decode(),
                                           len(req.encode())))
        await settle(pilot)
        assert decision_key(screen.decisions[0])[3] == "req-new"  # it arrived on top
        assert decision_key(screen.decisions[screen.query_one("#decisions").cursor_row]) == chosen
