"""Issue 14 item 7: the dashboard's keys can be rebound by binding id in the config file's ``[keymap]`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ui_sample import FixedClock, sample_orchestrator, screen_text

from pilot_tui import config
from pilot_tui.cli import build_parser, main
from pilot_tui.ui.app import make_app
from pilot_tui.ui.keymap import binding_ids
from pilot_tui.ui.screens.feed import FilterInput

pytestmark = pytest.mark.timeout(60)


def keymap_from(tmp_path: Path, text: str) -> dict[str, str]:
    cfg = tmp_path / "pilot-tui.toml"
    cfg.write_text(text)
    args = build_parser().parse_args(["orchestrator", "--config", str(cfg)])
    return config.apply(args, "orchestrator").keymap


async def test_a_config_keymap_rebinds_filter_and_quit(tmp_path: Path) -> None:
    keymap = keymap_from(tmp_path, '[keymap]\nfilter = "ctrl+f"\nquit = "ctrl+x"\n')
    assert keymap == {"filter": "ctrl+f", "quit": "ctrl+x"}
    orch = sample_orchestrator(str(tmp_path / "events.db"), 30)
    app = make_app(orchestrator=orch, clock=FixedClock(), start_engines=False, keymap=keymap)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash")  # the old key does nothing now
        await pilot.pause()
        assert not isinstance(app.focused, FilterInput)
        await pilot.press("question_mark")  # ? help lists the new key, not the old one
        await pilot.pause()
        filter_line = next(line for line in screen_text(app).splitlines() if " Filter " in line)
        assert "^f" in filter_line and " / " not in filter_line
        await pilot.press("escape")
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.focused, FilterInput)
        await pilot.press("escape", "q")  # q no longer quits …
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+x")  # … ctrl+x does
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[keymap]\nfilterr = "ctrl+f"\n', "[keymap] filterr: not a key binding id (did you mean filter?)"),
        ('[keymap]\nno-such-thing = "x"\n', "[keymap] no-such-thing: not a key binding id"),
        ('[keymap]\nquit = 5\n', "[keymap] quit: expected keys as text"),
        ('[keymap]\nquit = ""\n', "[keymap] quit: expected keys as text"),
        ('keymap = "q"\n', "[keymap] must be a table"),
    ],
)
def test_a_bad_keymap_is_one_line_naming_file_and_key(tmp_path: Path, capsys: Any, text: str, needle: str) -> None:
    cfg = tmp_path / "pilot-tui.toml"
    cfg.write_text(text)
    assert main(["executor", "--config", str(cfg), "--backend", "dry-run"]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(cfg) in err and err.count("\n") == 1 and "Traceback" not in err


def test_every_binding_of_the_app_has_an_id() -> None:
    """A binding without an id could not be rebound; the ids are read from the classes, so this is the check."""
    import inspect
    import pkgutil

    from textual.binding import Binding

    import pilot_tui.ui

    missing = []
    for info in pkgutil.walk_packages(pilot_tui.ui.__path__, "pilot_tui.ui."):
        module = __import__(info.name, fromlist=["_"])
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                missing += [f"{cls.__name__}: {b.key}" for b in cls.__dict__.get("BINDINGS", ())
                            if isinstance(b, Binding) and not b.id]
    assert missing == []
    assert {"quit", "filter", "help", "mitigate", "back"} <= binding_ids()


def test_the_readme_lists_exactly_the_binding_ids() -> None:
    """The README is where a user finds the ids: it must not name one that does not exist or miss one."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    listed = readme.split("The ids:", 1)[1].split("\n\n", 1)[0]
    ids = set(re.findall(r"`([a-z0-9-]+)`", listed)) | {"view-2", "view-3"}  # written `view-1`…`view-4`
    assert ids == set(binding_ids())
