"""Issue 14 item 4: a config file value is checked exactly as the flag it stands for, and the error names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilot_tui import config
from pilot_tui.cli import build_parser, main, mode_parser


def _apply(tmp_path: Path, mode: str, text: str, *argv: str):
    cfg = tmp_path / "pilot-tui.toml"
    cfg.write_text(text)
    extra = ["broker"] if mode == "follow" else []
    args = build_parser().parse_args([mode, *extra, "--config", str(cfg), *argv])
    return config.apply(args, mode), cfg


@pytest.mark.parametrize(
    ("mode", "text", "needle"),
    [
        ("orchestrator", '[orchestrator]\nport = "abc"\n', "[orchestrator] port: port 'abc' is not a number"),
        ("orchestrator", "[orchestrator]\nport = 70000\n", "[orchestrator] port: port 70000 is out of range"),
        ("orchestrator", '[orchestrator]\nexec_node = "NOT A HOST!"\n', "[orchestrator] exec_node: 'NOT A HOST!'"),
        ("orchestrator", "[orchestrator]\npublish = 42\n", "[orchestrator] publish: expected text, got 42"),
        ("orchestrator", '[orchestrator]\nstream_backend = "carrier-pigeon"\n', "stream_backend: 'carrier-pigeon' is not one of"),
        ("oracle", '[oracle]\ntransport = "udp"\n', "[oracle] transport: 'udp' is not one of stream, message"),
        ("oracle", '[oracle]\nallowlist = ["10.0.0.0/8", "nope"]\n', "[oracle] allowlist: 'nope' is not an IP"),
        ("oracle", '[oracle]\nfrom_start = "yes"\n', "[oracle] from_start: expected true or false"),
        ("executor", '[executor]\nblock_duration = "soon"\n', "[executor] block_duration: 'soon' is not a duration"),
        ("executor", '[executor]\nobey = ["orch", "BAD HOST"]\n', "[executor] obey: 'BAD HOST'"),
        ("follow", '[follow]\ntopic = "*"\n', "[follow] topic: '*' is not a topic"),
        ("executor", "pilotctl = 5\n", "pilotctl: expected text, got 5"),
    ],
)
def test_bad_value_is_refused_like_the_flag(tmp_path: Path, mode: str, text: str, needle: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        _apply(tmp_path, mode, text)
    assert needle in str(err.value)
    assert "pilot-tui.toml" in str(err.value)


def test_good_values_are_converted_like_flags(tmp_path: Path) -> None:
    args, _ = _apply(tmp_path, "oracle", '[oracle]\nport = 1001\nallowlist = ["10.1.2.3/8"]\nlogs = ["/var/log/a"]\n'
                     'from_start = true\ntransport = "message"\njournal = ["ssh.service"]\n')
    assert args.port == 1001
    assert args.allowlist == ["10.0.0.0/8"]  # normalised by the flag's own type
    assert args.log == ["/var/log/a"] and args.from_start is True and args.transport == "message"
    assert args.journal == ["ssh.service"]
    args, _ = _apply(tmp_path, "executor", "[executor]\nblock_duration = 90\n")
    assert args.block_duration == 90.0


def test_flags_still_win_over_the_file(tmp_path: Path) -> None:
    args, _ = _apply(tmp_path, "orchestrator", "[orchestrator]\nport = 1001\n", "--port", "1002")
    assert args.port == 1002


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[orchestrator]\nport = "abc"\n')
    rc = main(["orchestrator", "--headless", "--config", str(cfg), "--state-dir", str(tmp_path / "s")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1
    assert f"config file {cfg}: [orchestrator] port: port 'abc' is not a number" in err[0]


@pytest.mark.parametrize("mode", sorted(config.MODE_KEYS))
def test_every_config_key_is_a_flag_of_its_mode(mode: str) -> None:
    """The config table and the parsers cannot drift: each key must map to one of the mode's flags."""
    dests = set(config._flag_actions(mode_parser(mode)))
    missing = {k for k in config.MODE_KEYS[mode] if config.DEST.get(k, k) not in dests}
    assert not missing
