"""Every mode answers --version and --help, documents every argument, and points its errors to its own --help."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pilot_tui.cli import build_parser, mode_parser

MODES = ("oracle", "orchestrator", "follow", "executor", "demo", "scan", "doctor", "export")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pilot_tui", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_prints_its_version(mode: str) -> None:
    out = run(mode, "--version")
    assert out.returncode == 0 and out.stdout.startswith("pilot-tui "), out.stderr


@pytest.mark.parametrize("mode", MODES)
def test_every_argument_has_help_text_of_more_than_one_word(mode: str) -> None:
    parser = mode_parser(mode, build_parser())
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.metavar or action.dest
        assert action.help and len(action.help.split()) > 1, f"{mode} {name}: help is {action.help!r}"


def test_an_unknown_flag_points_to_the_modes_own_help() -> None:
    out = run("doctor", "--bogus")
    assert out.returncode == 2
    assert out.stderr.strip() == "pilot-tui doctor: error: unrecognized arguments: --bogus (see pilot-tui doctor --help)"
    out = run("demo", "--speed", "0")
    assert out.returncode == 2 and "(see pilot-tui demo --help)" in out.stderr and "Traceback" not in out.stderr
