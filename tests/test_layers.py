"""House rules checked: the core never imports Textual, `pilot-tui --help` stays light, and the UI reads the
engines only through their read API (``engine.query``) and dispatches on update classes, never their names."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pilot_tui

CORE = sorted(
    m.name
    for m in pkgutil.walk_packages(pilot_tui.__path__, "pilot_tui.")
    if not m.name.startswith("pilot_tui.ui") and not m.name.endswith("__main__")
    and m.name not in ("pilot_tui.commands.demo",)  # wires the UI in, on purpose
)


def test_core_modules_never_import_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"core imports Textual: {out.stdout.strip()[:200]}"
    assert len(CORE) > 30  # the walk really found the engines, stores, sources, detect, pilot, sim


def test_help_does_not_import_textual_or_rich() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from pilot_tui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'sqlite3')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- the UI reads the engines only through their read API, and dispatches on update classes ---------------------

UI_DIR = Path(pilot_tui.__file__).parent / "ui"
UI_FILES = sorted(UI_DIR.rglob("*.py"))
"""Every UI module (the sample-data builder that fills stores on purpose lives in ``tests/ui_sample.py``)."""

ENGINE_REF = re.compile(r"\b(engines?|orchestrator|oracle|executor)\b")
"""How UI code names an engine (``self.engine``, ``self.oracle``, ``app.engines["executor"]`` …)."""

ENGINE_INTERNALS = frozenset({"store", "sender", "outbox", "conn", "pilotctl", "replies", "watcher"})
"""Engine attributes that are its machinery, not its read API (``query``) or its actions."""


def layering_problems(source: str, path: Path) -> list[str]:
    """Where ``source`` (the text of UI module ``path``) reaches past an engine's read API: SQL connections, an
    engine's stores, sender, outbox or private attributes, or an engine update class named in a string (a
    string-keyed dispatch that a rename would silently break)."""
    tree = ast.parse(source)
    where = path.relative_to(UI_DIR.parent)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlite3" for a in node.names):
            out.append(f"{where}:{node.lineno}: imports sqlite3")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            out.append(f"{where}:{node.lineno}: imports sqlite3")
        elif isinstance(node, ast.Attribute):
            base = ast.unparse(node.value)
            if node.attr == "conn":
                out.append(f"{where}:{node.lineno}: uses a database connection ({base}.conn)")
            elif ENGINE_REF.search(base) and (node.attr.startswith("_") or node.attr in ENGINE_INTERNALS):
                out.append(f"{where}:{node.lineno}: reaches into an engine ({base}.{node.attr})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in UPDATE_NAMES:
            out.append(f"{where}:{node.lineno}: names update class {node.value!r} in a string")
    return out


def _update_classes() -> set[type]:
    from pilot_tui.engines import executor_updates, updates  # noqa: F401  (registers every update class)

    found, todo = set(), [updates.Update]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


UPDATE_NAMES = frozenset(cls.__name__ for cls in _update_classes())


def test_ui_reads_engines_only_through_their_query_api_and_matches_update_classes() -> None:
    assert len(UI_FILES) > 20 and {"EventsStored", "MitigationUpdate", "ExecutorState"} <= UPDATE_NAMES
    problems = [p for path in UI_FILES for p in layering_problems(path.read_text(encoding="utf-8"), path)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("source", [
    "import sqlite3\n",
    "from sqlite3 import Connection\n",
    "rows = self.window.conn.execute('SELECT 1')\n",
    "n = self.engine.store.total()\n",
    "self.oracle.sender.set_paused(True)\n",
    "depth = self.engine.outbox.depth()\n",
    "t = self.engine._tasks\n",
    "e = self.pilot_app.engines['orchestrator']._own\n",
    "if type(u).__name__ == 'EventsStored':\n    pass\n",
    "REFRESH = frozenset({'TriageChanged', 'MitigationUpdate'})\n",
])
def test_layering_check_catches_each_way_around_the_api(source: str) -> None:
    """Each forbidden pattern, as a UI module would write it, is reported (the check above cannot pass vacuously)."""
    assert layering_problems(source, UI_DIR / "screens" / "planted.py"), source


def test_layering_check_accepts_the_read_api() -> None:
    ok = ("rows = self.engine.query.feed.window(flt, 0, 1)\n"
          "self.engine.set_paused(not self.engine.query.paused)\n"
          "if u.EventsStored in message.kinds or block.sender:\n    pass\n"
          "label = 'Quarantine'\n")
    assert layering_problems(ok, UI_DIR / "screens" / "ok.py") == []
