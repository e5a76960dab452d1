"""Issue 14 item 7: the colours of text the views build in Python follow the theme (light mode, user themes)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from textual.color import Color
from textual.widget import Widget
from ui_sample import SAMPLE_PENDING, FixedClock, StubPilot, sample_orchestrator

from pilot_tui.ui.app import make_app
from pilot_tui.ui.tones import TONES, rich_theme

pytestmark = pytest.mark.timeout(60)

UI_DIR = Path(__file__).parent.parent / "pilot_tui" / "ui"

COLOUR_STYLE = re.compile(r"^(?:(?:bold|dim|italic|reverse|underline|on)\s+)*(?:red|green|yellow|blue|cyan|magenta|"
                          r"white|black|dark_orange|orange\w*|grey\d*|gray\d*|bright_\w+|#[0-9a-fA-F]{3,8})(?:\s+[\w#$-]+)*$")
"""A Rich style string that names a fixed colour (``"bold red"``, ``"#ff0000"``)."""


def colours(widget: Widget) -> set[str]:
    """The foreground colours ``widget`` draws with right now."""
    return {seg.style.color.triplet.hex.lower() for y in range(widget.size.height)
            for seg in widget.render_line(y) if seg.style and seg.style.color and seg.style.color.triplet}


async def test_status_colours_follow_the_theme_when_it_changes(tmp_path: Path) -> None:
    orch = sample_orchestrator(str(tmp_path / "events.db"), 30)  # 3 quarantined payloads: "quarantine 3" in BAD
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        status = app.screen.query_one("#feed-status")
        dark_error = Color.parse(app.theme_variables["text-error"]).hex6.lower()
        assert dark_error in colours(status)
        await pilot.press("d")  # light theme
        await pilot.pause(0.3)
        light_error = Color.parse(app.theme_variables["text-error"]).hex6.lower()
        assert light_error != dark_error
        assert light_error in colours(status) and dark_error not in colours(status)


async def test_a_static_panel_is_recoloured_when_the_theme_changes(tmp_path: Path) -> None:
    """The tones are resolved again for the new theme (a Static's panel, here the pending-requests line)."""
    stub = StubPilot(pending_requests=list(SAMPLE_PENDING))
    orch = sample_orchestrator(str(tmp_path / "events.db"), 30, pilot=stub)
    app = make_app(orchestrator=orch, clock=FixedClock())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("t")  # sensors & trust: "2 waiting — …" in the warning colour
        await pilot.pause(0.5)
        pending = app.screen.query_one("#pending-status")
        dark_warning = Color.parse(app.theme_variables["text-warning"]).hex6.lower()
        assert dark_warning in colours(pending)
        app.theme = "textual-light"
        await pilot.pause(0.3)
        light_warning = Color.parse(app.theme_variables["text-warning"]).hex6.lower()
        assert light_warning in colours(pending) and dark_warning not in colours(pending)


def test_every_tone_resolves_in_the_builtin_themes() -> None:
    from textual.app import App

    app = App()
    for name in ("textual-dark", "textual-light", "nord", "gruvbox"):
        app.theme = name
        theme = rich_theme(app.theme_variables)
        assert set(theme.styles) == set(TONES) and all(style.color for style in theme.styles.values())


def test_no_fixed_colour_is_left_in_the_ui_code() -> None:
    """A style such as ``"bold red"`` would look the same in every theme (and unreadable in some)."""
    found = []
    for path in sorted(UI_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and COLOUR_STYLE.match(node.value):
                found.append(f"{path.relative_to(UI_DIR)}:{node.lineno}: {node.value!r}")
    assert found == []
    assert COLOUR_STYLE.match("bold red") and COLOUR_STYLE.match("#ff8700") and not COLOUR_STYLE.match("bold")
    assert not COLOUR_STYLE.match("#feed-status")
