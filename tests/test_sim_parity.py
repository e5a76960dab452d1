"""pilot-sim against the real pilotctl 1.18 binary, wherever the real one needs no daemon.

Both run with the same temporary HOME and a PILOT_SOCKET where nothing listens, and must print the same bytes
and exit the same: usage errors, not_running envelopes, flag/port/duration validation, daemon status, and the
inbox (the real binary reads hand-made inbox files without a daemon).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.realpilot, pytest.mark.timeout(60)]


def _real_pilotctl() -> Path | None:
    spec = importlib.util.find_spec("pilotprotocol")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "bin" / "pilotctl"
    return path if path.is_file() and os.access(path, os.X_OK) else None


PILOTCTL = _real_pilotctl()
SIM = [sys.executable, "-m", "pilot_tui.sim"]
needs_real = pytest.mark.skipif(PILOTCTL is None, reason="pilotprotocol (real pilotctl) not installed")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PILOT")}
    return {
        **base,
        "HOME": str(home),
        "PILOT_SOCKET": str(tmp_path / "none.sock"),
        "PILOT_SIM_HOME": str(tmp_path / "net"),
    }


def _run(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    p = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=20, check=False)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _both(
    args: list[str], env: dict[str, str], stdin: bytes = b""
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    assert PILOTCTL is not None
    return _run([str(PILOTCTL), *args], env, stdin), _run([*SIM, *args], env, stdin)


IDENTICAL = [
    ["--json", "info"],
    ["info"],
    ["info", "--json"],
    ["--json", "peers"],
    ["--json", "pending"],
    ["--json", "trust"],
    ["--json", "find", "x"],
    ["--json", "find"],
    ["--json", "approve", "x"],
    ["--json", "approve"],
    ["--json", "handshake", "5"],
    ["--json", "handshake"],
    ["--json", "connect"],
    ["--json", "connect", "foo", "1000", "--message", "hi"],
    ["--json", "connect", "foo", "x"],
    ["--json", "recv"],
    ["--json", "recv", "x"],
    ["--json", "recv", "70000"],
    ["--json", "recv", "1000", "--count", "x"],
    ["--json", "recv", "1000", "--timeout", "bad"],
    ["--json", "recv", "1000", "--timeout", "5"],
    ["--json", "send-message"],
    ["--json", "send-message", "foo"],
    ["--json", "send-message", "foo", "--data", "x"],
    ["send-message", "foo", "--data", "x"],
    ["--json", "send-message", "foo", "--data", "x", "--wait", "0"],
    ["--json", "send-message", "foo", "--data", "x", "--wait", "bad"],
    ["--json", "send-message", "foo", "--data", "x", "--timeout", "bad"],
    ["--json", "send-message", "foo", "--data-file", "/nonexistent/file"],
    ["--json", "send-message", "foo", "--data-file", "/dev/null"],
    ["--json", "send-message", "foo", "--data", "-"],
    ["--json", "publish"],
    ["--json", "publish", "a"],
    ["--json", "publish", "a", "b"],
    ["--json", "subscribe", "a"],
    ["--json", "subscribe", "a", "b"],
    ["--json", "daemon"],
    ["--json", "daemon", "foo"],
    ["--json", "daemon", "stop"],
    ["--json", "daemon", "status"],
    # ping: what doctor's reachability probe runs (usage, flag parsing and not_running come before any dial)
    ["--json", "ping"],
    ["ping"],
    ["--json", "ping", "foo", "--count", "x"],
    ["--json", "ping", "foo", "--timeout", "bad"],
    ["--json", "ping", "foo", "--count", "1", "--timeout", "3s"],
    ["ping", "foo"],
]


@needs_real
@pytest.mark.parametrize("args", IDENTICAL, ids=lambda a: " ".join(a))
def test_same_output_without_daemon(args: list[str], env: dict[str, str]) -> None:
    real, sim = _both(args, env)
    assert sim == real


@needs_real
def test_same_output_both_data_flags(env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "payload.txt"
    f.write_text("x")
    real, sim = _both(["--json", "send-message", "foo", "--data", "x", "--data-file", str(f)], env)
    assert sim == real


@needs_real
def test_daemon_status_honours_pilot_home(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "PILOT_HOME": str(tmp_path / "ph")}
    real, sim = _both(["--json", "daemon", "status"], env)
    assert sim == real
    assert json.loads(sim[1])["data"]["pid_file"] == str(tmp_path / "ph" / ".pilot" / "pilot.pid")


@needs_real
def test_usage_and_unknown_command(env: dict[str, str]) -> None:
    (rc_real, out_real, err_real), (rc_sim, out_sim, err_sim) = _both([], env)
    assert (rc_sim, out_sim) == (rc_real, out_real) == (2, "")
    assert err_sim
    (rc_real, _, err_real), (rc_sim, _, err_sim) = _both(["--json", "bogus"], env)
    assert rc_sim == rc_real == 1
    real_env, sim_env = json.loads(err_real), json.loads(err_sim)
    for key in ("code", "error", "message", "status"):
        assert sim_env[key] == real_env[key]
    assert _both(["bogus"], env)[0][0] == _both(["bogus"], env)[1][0] == 2


def _inbox_fixture(home: Path) -> list[str]:
    """Hand-made inbox files in the real daemon's format, received 3 h, 2 h, 30 min and 1 min ago."""
    inbox = home / ".pilot" / "inbox"
    inbox.mkdir(parents=True)
    now = time.time()
    long_text = "line one\n\tline two  " + "é" * 200

    def stamp(age: float) -> tuple[str, str]:
        t = now - age
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        return time.strftime("%Y%m%d-%H%M%S", time.localtime(t)) + ".000", base + ".5Z"

    records = [
        (
            "JSON",
            3 * 3600,
            '{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}',
            {},
        ),
        ("TEXT", 2 * 3600, long_text, {"reply_to": "ab" * 16}),
        ("BINARY", 1800, None, {}),
        ("TEXT", 60, "<b>hello</b> & bye", {}),
    ]
    ids = []
    for seq, (kind, age, data, extra) in enumerate(records, 1):
        name_ts, received = stamp(age)
        ident = f"{kind}-{name_ts}-{seq:06d}"
        rec: dict[str, object] = {
            "from": f"0:0000.0000.000{seq}",
            "message_id": f"{seq:032x}",
            "received_at": received,
        }
        rec.update(type=kind, **extra)
        if data is None:
            rec.update(bytes=3, data_b64="AAEC", data_encoding="base64")
        else:
            rec.update(bytes=len(data.encode()), data=data, data_encoding="utf8")
        (inbox / f"{ident}.json").write_text(json.dumps(rec))
        ids.append(ident)
    return ids


@needs_real
def test_inbox_matches_real_binary(env: dict[str, str]) -> None:
    ids = _inbox_fixture(Path(env["HOME"]))
    for args in (
        ["--json", "inbox"],
        ["--json", "inbox", "--full"],
        ["--json", "inbox", "--limit", "1"],
        ["--json", "inbox", "--limit", "0"],
        ["--json", "inbox", "--latest"],
        ["--json", "inbox", "--since", "90m"],
        ["--json", "inbox", "--since", "bogus"],
        ["--json", "inbox", "--limit", "x"],
        ["--json", "inbox", "read", ids[1]],
        ["--json", "inbox", "read", ids[2]],
        ["--json", "inbox", "read", "0" * 31 + "1"],
        ["inbox", "read", "nope"],
    ):
        real, sim = _both(args, env)
        assert sim == real, args
    listing = json.loads(_run([*SIM, "--json", "inbox"], env)[1])["data"]
    assert [m["id"] for m in listing["messages"]] == ids[::-1]  # newest first
    assert listing["messages"][2]["preview"].endswith("…") and len(listing["messages"][2]["preview"]) == 121


@needs_real
def test_inbox_clear_matches_real_binary(env: dict[str, str], tmp_path: Path) -> None:
    home = Path(env["HOME"])
    _inbox_fixture(home)
    other = tmp_path / "home2"
    shutil.copytree(home, other)
    env2 = {**env, "HOME": str(other)}
    assert PILOTCTL is not None

    def listing(argv: list[str], e: dict[str, str]) -> list[str]:
        return [m["id"] for m in json.loads(_run([*argv, "--json", "inbox"], e)[1])["data"]["messages"]]

    for args in (["--json", "inbox", "--clear", "--before", "100m"], ["--json", "inbox", "--clear"]):
        real = _run([str(PILOTCTL), *args], env)
        sim = _run([*SIM, *args], env2)
        assert sim == real, args
        assert listing(SIM, env2) == listing([str(PILOTCTL)], env)


@needs_real
def test_empty_inbox_matches_real_binary(env: dict[str, str]) -> None:
    assert _both(["--json", "inbox"], env)[1] == _both(["--json", "inbox"], env)[0]  # no dir: no "dir" key
    (Path(env["HOME"]) / ".pilot" / "inbox").mkdir(parents=True)
    for args in (["--json", "inbox"], ["inbox"]):
        real, sim = _both(args, env)
        assert sim == real
