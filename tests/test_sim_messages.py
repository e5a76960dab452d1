"""send-message / inbox / --reply-to / --wait and publish / subscribe between pilot-sim nodes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_fixtures import sim_cluster, sim_nodes  # noqa: F401  (pytest fixtures)

from pilot_tui.sim.cluster import SimNode, sim_command

pytestmark = pytest.mark.timeout(30)

EVENT = '{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}'
RFC3339_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def _err(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_send_message_lands_in_inbox_without_any_app(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("oracle", "orch", trust=[("oracle", "orch")])
    a, b = nodes["oracle"], nodes["orch"]
    ack = a.json("send-message", "orch", "--type", "json", "--data", EVENT)
    assert set(ack) == {"ack", "bytes", "message_id", "reused", "seq", "tagged", "target", "to", "type"}
    assert ack["ack"] == f"ACK JSON {len(EVENT)} bytes" and ack["bytes"] == len(EVENT)
    assert re.fullmatch(r"[0-9a-f]{32}", ack["message_id"])
    assert (ack["reused"], ack["seq"], ack["tagged"], ack["type"]) == (False, 0, True, "json")
    assert ack["target"] == ack["to"] == b.address

    files = sorted(b.inbox.glob("*.json"))
    assert len(files) == 1
    assert re.fullmatch(r"JSON-\d{8}-\d{6}\.\d{3}-\d{6}\.json", files[0].name)
    record = json.loads(files[0].read_text())
    assert set(record) == {"bytes", "data", "data_encoding", "from", "message_id", "received_at", "type"}
    assert record["data"] == EVENT and record["data_encoding"] == "utf8" and record["type"] == "JSON"
    assert record["from"] == a.address and record["message_id"] == ack["message_id"]
    assert RFC3339_NS.match(record["received_at"])

    listing = b.json("inbox")
    assert listing["total"] == 1 and listing["shown"] == 1 and listing["dir"] == str(b.inbox)
    assert listing["messages"][0]["preview"] == EVENT and listing["messages"][0]["id"] == files[0].stem
    assert b.json("inbox", "read", files[0].stem)["data"] == EVENT

    # --data - keeps stdin byte for byte; binary payloads are stored as base64
    raw = b"line1\r\nline2\n\n"
    a.json("send-message", "orch", "--data", "-", input=raw)
    a.json("send-message", "orch", "--type", "binary", "--data", "\x01\x02")
    newest = b.json("inbox", "--full", "--limit", "2")["messages"]
    assert newest[0]["type"] == "BINARY" and newest[0]["data"] == ""
    assert newest[1]["data"] == raw.decode()
    binary = b.json("inbox", "read", newest[0]["id"])
    assert binary["data_encoding"] == "base64" and binary["data_b64"] == "AQI="
    assert b.json("inbox", "--clear") == {"cleared": 3, "remaining": 0}


def test_reply_to_and_wait(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("orch", "exec", trust=[("orch", "exec")])
    orch, ex = nodes["orch"], nodes["exec"]
    waiter = subprocess.Popen(
        [
            *sim_command(),
            "--json",
            "send-message",
            "exec",
            "--type",
            "json",
            "--data",
            '{"block":"203.0.113.7"}',
            "--wait",
            "5s",
        ],
        env=orch.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 5
        while not list(ex.inbox.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        request = ex.json("inbox", "--latest")["messages"][0]
        # an answer to another message must not be taken for this one
        ex.json("send-message", "orch", "--data", "unrelated", "--reply-to", "f" * 32)
        reply = ex.json(
            "send-message",
            "orch",
            "--type",
            "json",
            "--data",
            '{"applied":true}',
            "--reply-to",
            request["id"],
        )
        assert reply["reply_to"] == request["message_id"]  # an inbox id is looked up to its message_id
        out, err = waiter.communicate(timeout=10)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    result = json.loads(out)["data"]
    assert result["message_id"] == request["message_id"]
    assert result["reply"]["data"] == '{"applied":true}'
    assert result["reply"]["reply_to"] == request["message_id"] and result["reply"]["from"] == ex.address

    start = time.monotonic()
    late = orch.run("--json", "send-message", "exec", "--data", "anyone?", "--wait", "300ms")
    assert 0.25 < time.monotonic() - start < 3
    assert late.returncode == 1
    assert _err(late)["code"] == "timeout"


def _subscriber(node: SimNode, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*sim_command(), "--json", "subscribe", *args],
        env=node.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_subscribed(broker: SimNode, n: int) -> None:
    deadline = time.monotonic() + 5
    while broker.json("info")["event_subscribers"] < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_publish_subscribe_streams_ndjson(sim_nodes) -> None:  # noqa: F811
    nodes = sim_nodes("orch", "analyst1", "analyst2", trust=[("analyst1", "orch"), ("analyst2", "orch")])
    orch, an1, an2 = nodes["orch"], nodes["analyst1"], nodes["analyst2"]
    stream = _subscriber(an1, "orch", "*")
    counted = _subscriber(an2, "orch", "alerts", "--count", "2", "--timeout", "5s")
    try:
        _wait_subscribed(orch, 2)
        assert an1.json("publish", "orch", "alerts", "--data", '{"alert":1}') == {
            "bytes": 11,
            "target": orch.address,
            "topic": "alerts",
        }
        assert stream.stdout is not None
        first = stream.stdout.readline()  # streamed as it arrives, not at the end
        assert json.loads(first) == {"bytes": 11, "data": '{"alert":1}', "topic": "alerts"}
        an1.json("publish", "orch", "other", "--data", "x")
        an2.json("publish", "orch", "alerts", "--data", "second")
        assert json.loads(stream.stdout.readline())["topic"] == "other"
        out, _ = counted.communicate(timeout=10)
    finally:
        stream.kill()
        counted.kill()
    assert json.loads(out) == {
        "data": {
            "events": [
                {"bytes": 11, "data": '{"alert":1}', "topic": "alerts"},
                {"bytes": 6, "data": "second", "topic": "alerts"},
            ],
            "timeout": False,
        },
        "status": "ok",
    }
    for args in (("publish", "orch", "t", "--data", "x"), ("subscribe", "orch", "t")):  # not to itself
        proc = orch.run("--json", *args)
        assert proc.returncode == 1 and _err(proc)["code"] == "connection_failed"
    assert _err(an1.run("--json", "publish", "orch", "t"))["message"] == "--data is required"


def _real_pilotctl() -> Path | None:
    spec = importlib.util.find_spec("pilotprotocol")
    path = Path(spec.origin).parent / "bin" / "pilotctl" if spec is not None and spec.origin else None
    return path if path is not None and path.is_file() and os.access(path, os.X_OK) else None


@pytest.mark.realpilot
@pytest.mark.skipif(_real_pilotctl() is None, reason="pilotprotocol (real pilotctl) not installed")
def test_inbox_since_window_matches_real_binary(tmp_path: Path) -> None:
    """The listings the inbox watcher runs (``--limit 0``, ``--full --limit 0 --since <RFC 3339>``) against real
    pilotctl 1.18 on the same hand-made inbox: ``--since`` keeps ``received_at >= since`` to the nanosecond, takes
    any zone and fraction, never matches an unreadable time; ``--limit 0`` is all, past the default 10."""
    home = tmp_path / "home"
    inbox = home / ".pilot" / "inbox"
    inbox.mkdir(parents=True)
    for i in range(12):
        rec = {"bytes": 2, "data": f"m{i}", "data_encoding": "utf8", "from": "0:0000.0000.0001",
               "message_id": f"{i:032x}", "received_at": f"2026-11-25T12:00:{i:02d}.123456789Z", "type": "JSON"}
        (inbox / f"JSON-20261125-1200{i:02d}.123-{i:06d}.json").write_text(json.dumps(rec))
    odd = {"bytes": 1, "data": "z", "data_encoding": "utf8", "from": "0:0000.0000.0001", "received_at": "bogus",
           "type": "TEXT"}
    (inbox / "TEXT-20261125-120030.000-000099.json").write_text(json.dumps(odd))
    (inbox / "JSON-20261125-120031.000-000100.json").write_text("{half a mess")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PILOT")}, "HOME": str(home),
           "PILOT_SOCKET": str(tmp_path / "none.sock"), "PILOT_SIM_HOME": str(tmp_path / "net")}
    real = str(_real_pilotctl())
    for since in ("2026-11-25T12:00:09.123456789Z", "2026-11-25T12:00:09.123456790Z", "2026-11-25T12:00:09.123456Z",
                  "2026-11-25T13:00:09.5+01:00", "2026-11-25T12:00:09Z", "2026-11-25T12:00:09"):
        for args in (["--limit", "0"], ["--full", "--limit", "0"], ["--limit", "2"]):
            argv = ["--json", "inbox", *args, "--since", since]
            want = subprocess.run([real, *argv], env=env, capture_output=True, timeout=20, check=False)
            got = subprocess.run([sys.executable, "-m", "pilot_tui.sim", *argv], env=env, capture_output=True,
                                 timeout=20, check=False)
            assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), argv
    listing = json.loads(subprocess.run([real, "--json", "inbox", "--limit", "0"], env=env, capture_output=True,
                                        timeout=20, check=True).stdout)["data"]
    assert listing["shown"] == listing["total"] == 13  # all, the unreadable time included; the broken file skipped
    window = json.loads(subprocess.run([real, "--json", "inbox", "--limit", "0", "--since",
                                        "2026-11-25T12:00:09.123456790Z"], env=env, capture_output=True,
                                       timeout=20, check=True).stdout)["data"]
    assert [m["message_id"][-1] for m in window["messages"]] == ["b", "a"]  # 09 is one nanosecond too old
