"""The command line a user meets: help for every mode, one-line errors, exit codes, export formats."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import orjson
import pytest

from pilot_tui.cli import main
from pilot_tui.commands import export
from pilot_tui.model import make_event
from pilot_tui.store.events import EventStore

MODES = ["oracle", "orchestrator", "executor", "demo", "scan", "doctor", "export"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pilot_tui", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_has_real_help(mode: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main([mode, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: pilot-tui {mode}" in text and len(text.splitlines()) > 4


def test_version_and_no_mode() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("pilot-tui ")
    out = run_cli()
    assert out.returncode == 2 and "oracle" in out.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["oracle", "--peer", "Bad_Host", "--log", "/tmp/x"], "is not a Pilot hostname"),
        (["oracle", "--peer", "orch", "--port", "0", "--log", "/tmp/x"], "out of range 1-65535"),
        (["orchestrator", "--port", "http"], "is not a number"),
        (["executor", "--allow", "not-an-ip"], "is not an IP address or CIDR"),
        (["export", "--format", "xml"], "invalid choice"),
        (["export", "--format", "csv", "--since", "soon"], "is not a duration"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(args: list[str], fragment: str) -> None:
    out = run_cli(*args)
    assert out.returncode == 2
    assert fragment in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_oracle_semantic_errors_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PILOTCTL": str(tmp_path / "no-pilotctl")}
    out = run_cli("oracle", "--peer", "orch", "--log", "/nonexistent-dir/auth.log", "--state-dir", str(tmp_path),
                  env=env)
    assert out.returncode == 1 and "directory /nonexistent-dir does not exist" in out.stderr
    out = run_cli("oracle", "--log", str(tmp_path / "a.log"), "--state-dir", str(tmp_path), env=env)
    assert out.returncode == 1 and "--peer HOST is required" in out.stderr
    out = run_cli("oracle", "--peer", "orch", "--log", str(tmp_path / "a.log"), "--state-dir", str(tmp_path),
                  env=env)
    assert out.returncode == 1 and "pip install 'pilot-tui[pilot]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_config_file_fills_flags_and_rejects_typos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text('[oracle]\npeer = "orch"\nlogs = ["/nonexistent-dir/a.log"]\n')
    out = run_cli("oracle", "--config", str(cfg), "--state-dir", str(tmp_path))
    assert out.returncode == 1 and "/nonexistent-dir" in out.stderr  # peer and logs came from the file
    cfg.write_text('[oracle]\npeeer = "orch"\n')
    out = run_cli("oracle", "--config", str(cfg))
    assert out.returncode == 2 and "unknown key(s) in [oracle]: peeer" in out.stderr


def test_export_formats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(tmp_path / "orchestrator.db")
    ev = make_event("203.0.113.7", "brute_force_ssh", "critical", sensor="gcp-web-1", rule="sshd-auth", count=9,
                    evidence=["Nov 25 sshd[1]: Failed password for root from 203.0.113.7 port 22 ssh2"])
    store.ingest([ev], sender="0:0000.0000.0001", transport="stream")
    out = io.StringIO()
    assert export.write(store, "ecs", out) == 1
    doc = orjson.loads(out.getvalue())
    assert doc["source"]["ip"] == "203.0.113.7" and doc["event"]["kind"] == "alert"
    assert doc["event"]["severity"] == 5 and doc["rule"]["name"] == "sshd-auth"
    assert doc["observer"]["name"] == "gcp-web-1" and doc["@timestamp"] == ev.ts
    out = io.StringIO()
    export.write(store, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["source_ip"] == "203.0.113.7" and rows[0]["state"] == "new"
    out = io.StringIO()
    export.write(store, "ndjson", out, since_s=3600)
    assert orjson.loads(out.getvalue())["id"] == ev.id
    store.close()
    cli = run_cli("export", "--format", "ndjson", "--state-dir", str(tmp_path))
    assert cli.returncode == 0 and orjson.loads(cli.stdout)["sender"] == "0:0000.0000.0001"
    cli = run_cli("export", "--format", "ndjson", "--state-dir", str(tmp_path / "empty"))
    assert cli.returncode == 1 and "no orchestrator state" in cli.stderr


def test_doctor_reports_missing_daemon_as_one_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pilot_tui.pilot.binary import packaged_pilotctl

    binary = packaged_pilotctl()
    if binary is None:
        pytest.skip("pilotprotocol not installed")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PILOT_SOCKET": str(tmp_path / "s.sock"),
           "PILOTCTL": str(binary)}
    out = run_cli("doctor", "--json", "--state-dir", str(tmp_path / "state"), env=env)
    assert out.returncode == 1
    report = orjson.loads(out.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["daemon"] and "pilotctl daemon start" in failed[0]["hint"]
    out = run_cli("doctor", "--state-dir", str(tmp_path / "state"), env=env)
    assert "FAIL  daemon" in out.stdout and "ok    state dir" in out.stdout


def test_csv_export_neutralises_formulas_in_attacker_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 item 11: an SSH user name is attacker-chosen and went into a CSV cell as a live formula."""
    store = EventStore(tmp_path / "orchestrator.db")
    evil = [make_event("203.0.113.9", "user_enumeration", "medium", user=user, sensor="s", seq=i)
            for i, user in enumerate(['=HYPERLINK("http://x/")', "+1", "-2", "@SUM(A1)", "\tx", "alice"])]
    store.ingest(evil)
    out = io.StringIO()
    export.write(store, "csv", out)
    users = sorted(row["user"] for row in csv.DictReader(io.StringIO(out.getvalue())))
    assert users == sorted(["'=HYPERLINK(\"http://x/\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "alice"])
    out = io.StringIO()
    export.write(store, "ndjson", out)  # JSON is not a spreadsheet: the text stays as it was
    assert '=HYPERLINK("http://x/")' in {orjson.loads(x)["user"] for x in out.getvalue().splitlines()}
    store.close()
