"""The driver against both binaries it may run: the real pilotctl (from the pilotprotocol wheel) and pilot-sim.

Only cases that need no daemon run against the real binary (no registry here, see pilotctl-contract.md); every test
sets HOME and PILOT_SOCKET to temporary paths and uses the binary inside the package, never the console script
(which copies itself into ~/.pilot/bin).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import orjson
import pytest

from pilot_tui.pilot import errors
from pilot_tui.pilot.binary import packaged_pilotctl
from pilot_tui.pilot.driver import Pilotctl


def _sim_binary() -> str | None:
    candidate = Path(sys.executable).with_name("pilot-sim")
    return str(candidate) if candidate.exists() else shutil.which("pilot-sim")


REAL = packaged_pilotctl()
SIM = _sim_binary()


@pytest.fixture(params=["real", "sim"])
def driver(request, tmp_path) -> Pilotctl:  # type: ignore[no-untyped-def]
    binary = REAL if request.param == "real" else SIM
    if binary is None:
        pytest.skip(f"{request.param} pilotctl not installed (pip install 'pilot-tui[pilot]')")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PILOT_HOME": str(home / ".pilot"),
        "PILOT_SOCKET": str(tmp_path / "pilot.sock"),
        "PILOT_SIM_HOME": str(tmp_path / "simnet"),
        "PILOT_REGISTRY": "127.0.0.1:9",
    }
    env.pop("PILOT_HOME")  # the real binary honours it too; keep ~/.pilot under the temp HOME
    return Pilotctl(binary, env=env, timeout=10)


async def test_daemon_status_reports_not_running_with_exit_0(driver: Pilotctl) -> None:
    status = await driver.daemon_status()
    assert status.running is False
    assert status.responsive is False


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.info(),
        lambda d: d.connect("local-threat-orchestrator", 1000, b'{"a":1}', timeout=2),
        lambda d: d.send_message("local-threat-orchestrator", b"{}"),
        lambda d: d.recv(1000, timeout=0.5),
        lambda d: d.trust(),
        lambda d: d.pending(),
        lambda d: d.find("local-threat-orchestrator"),
    ],
    ids=["info", "connect", "send-message", "recv", "trust", "pending", "find"],
)
async def test_no_daemon_is_not_running_with_hint(driver: Pilotctl, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.NotRunning) as info:
        await call(driver)
    assert info.value.exit_status == 1
    assert "pilotctl daemon start" in info.value.hint
    assert driver.socket_path() in info.value.hint
    assert info.value.retryable


async def test_unknown_command_is_invalid_argument(driver: Pilotctl) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        await driver.call("frobnicate")
    assert "unknown command" in info.value.message
    assert info.value.exit_status == 1
    assert not info.value.retryable


async def test_usage_errors_are_invalid_argument(driver: Pilotctl) -> None:
    with pytest.raises(errors.InvalidArgument):
        await driver.call("handshake")
    with pytest.raises(errors.InvalidArgument) as info:
        await driver.call("recv", "abc")
    assert 'invalid port "abc"' in info.value.message


async def test_no_arguments_prints_usage_exit_2(driver: Pilotctl) -> None:
    status, out, err = await driver.raw()
    assert status == 2 and out == b"" and err


async def test_inbox_reads_messages_without_a_daemon(driver: Pilotctl) -> None:
    inbox = Path(driver.env["HOME"]) / ".pilot" / "inbox"
    assert await driver.inbox() == []
    inbox.mkdir(parents=True)
    for i in range(12):  # more than pilotctl's default page of 10
        mid = f"{i:032x}"
        (inbox / f"{mid}.json").write_bytes(orjson.dumps({
            "bytes": 2, "data": f"m{i}", "data_encoding": "utf8", "from": "0:0000.0000.0001", "message_id": mid,
            "received_at": f"2026-11-25T12:00:{i:02d}.000000000Z", "type": "JSON",
        }))
    messages = await driver.inbox()
    assert len(messages) == 12
    assert messages[0].data == "m11" and messages[0].sender == "0:0000.0000.0001"
    one = await driver.inbox_read(messages[-1].inbox_id)
    assert one.data == "m0"
    with pytest.raises(errors.NotFound):
        await driver.inbox_read("f" * 32)
    assert await driver.inbox_clear() == 12
    assert await driver.inbox() == []


async def test_driver_validates_before_spawning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = Pilotctl(str(tmp_path / "does-not-exist"))
    with pytest.raises(errors.InvalidArgument):
        await d.connect("Bad_Host!", 1000, b"x")
    with pytest.raises(errors.InvalidArgument):
        await d.connect("ok-host", 70000, b"x")
    with pytest.raises(errors.InvalidArgument):
        await d.send_message("ok-host", b"x", reply_to="../../etc")
    with pytest.raises(errors.PilotError) as info:
        await d.info()
    assert info.value.code == "binary_not_found"


def test_error_envelope_parsing_plain_and_json() -> None:
    env = b'{"code":"trust_required","error":"refusing tunnel","hint":"run: pilotctl handshake x","message":"refusing tunnel","status":"error"}\n'
    err = errors.error_from_envelope(env, 1)
    assert isinstance(err, errors.TrustRequired) and err.hint == "run: pilotctl handshake x"
    old = errors.error_from_envelope(b'{"code":"timeout","message":"no response within 30s","status":"error"}', 1)
    assert isinstance(old, errors.Timeout) and old.message == "no response within 30s"
    plain = errors.error_from_envelope(b"error: daemon is not running\nhint:  start it\n", 1)
    assert plain.message == "daemon is not running" and plain.hint == "start it"
    for code, cls in errors.ERRORS_BY_CODE.items():
        e = errors.error_from_envelope(orjson.dumps({"code": code, "message": "m", "status": "error"}), 1)
        assert type(e) is cls and e.code == code
    assert errors.error_from_envelope(b"", 139).code == "internal"


@pytest.mark.skipif(REAL is None, reason="pilotprotocol not installed")
def test_real_binary_resolution_prefers_explicit(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pilot_tui.pilot.binary import resolve_pilotctl

    monkeypatch.delenv("PILOTCTL", raising=False)
    assert resolve_pilotctl(str(REAL)) == str(REAL)
    with pytest.raises(errors.BinaryNotFound) as info:
        resolve_pilotctl(str(tmp_path / "nope"))
    assert "pip install 'pilot-tui[pilot]'" in info.value.hint
    env = {"PATH": str(tmp_path)}
    assert resolve_pilotctl(environ=env) == str(REAL)  # falls back to the wheel's binary
    assert os.access(resolve_pilotctl(environ=env), os.X_OK)
