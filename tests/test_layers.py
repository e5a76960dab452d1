"""House rules checked: the core never imports Textual, and `pilot-tui --help` stays light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
