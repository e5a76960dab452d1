"""``pilot-sim daemon start|stop|status``: run an emulated node in the background, like ``pilotctl daemon``.

``start`` spawns ``python -m pilot_tui.sim.daemon`` in its own session (stdin from /dev/null, output to
``<config dir>/pilot-<pid>.log``, ``pilot.log`` pointing at it), writes ``pilot.pid`` and returns once the socket
answers, printing pilotctl's start envelope (address, hostname, log_file, node_id, pid, socket). ``stop`` sends
SIGTERM and waits; the node removes its socket. ``status`` always exits 0 and says running/responsive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .cli_base import CliError, Ctx, dur, flag_bool, flag_duration, parse_flags
from .client import Control, DaemonDown, RemoteError, connect_socket
from .proto import config_dir, sim_home, valid_hostname
from .registry import pid_alive


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _looks_like_daemon(pid: int) -> bool:
    """Alive, not a zombie, and really one of our nodes (never signal a recycled pid)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"pilot_tui.sim.daemon" in cmdline


def _info(sock: str) -> dict[str, Any] | None:
    """The node's info, or None when nothing (responsive) listens on ``sock``."""
    try:
        ctl = Control(sock)
    except DaemonDown:
        return None
    try:
        return ctl.call("info")
    except (RemoteError, ValueError):
        return None
    finally:
        ctl.close()


def _listening(sock: str) -> bool:
    """True when something accepts connections on ``sock``."""
    try:
        connect_socket(sock).close()
    except DaemonDown:
        return False
    return True


def daemon_argv(sock: str, hostname: str, cfg_dir: Path, home: Path, public: bool, auto: bool) -> list[str]:
    """The node process's command line (also used by :mod:`pilot_tui.sim.cluster`)."""
    argv = [sys.executable, "-m", "pilot_tui.sim.daemon", "--socket", sock, "--config-dir", str(cfg_dir)]
    argv += ["--sim-home", str(home), "--hostname", hostname]
    if public:
        argv.append("--public")
    if auto:
        argv.append("--trust-auto-approve")
    return argv


def cmd_start(ctx: Ctx, args: list[str]) -> int:
    """Start a node in the background and wait until it answers."""
    flags, _ = parse_flags(args)
    sock = flags.get("socket") or ctx.socket
    hostname = flags.get("hostname", "")
    if hostname == "true":
        hostname = ""
    if hostname and not valid_hostname(hostname):
        raise CliError(
            "invalid_argument",
            f"invalid hostname {hostname!r}: use lowercase letters, digits and hyphens (1-63), "
            "not starting or ending with a hyphen",
        )
    wait = flag_duration(flags, "wait", 15.0)
    cfg = config_dir(ctx.env)
    cfg.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid_file = cfg / "pilot.pid"
    old = _read_pid(pid_file)
    if _looks_like_daemon(old):
        raise CliError(
            "already_exists",
            f"daemon is already running (pid {old})",
            "stop it first with: pilotctl daemon stop",
        )
    if os.path.exists(sock):
        if _listening(sock):  # whoever it is (even a real pilot-daemon), never delete a live socket
            raise CliError(
                "already_exists",
                f"daemon is already running (socket {sock} is active)",
                "stop it first with: pilotctl daemon stop",
            )
        os.unlink(sock)  # stale socket: nobody answers on it
    home = sim_home(ctx.env).absolute()
    env = dict(ctx.env)
    env["PILOT_SIM_HOME"] = str(home)
    argv = daemon_argv(
        sock, hostname, cfg, home, flag_bool(flags, "public"), flag_bool(flags, "trust-auto-approve")
    )
    if flag_bool(flags, "foreground"):
        pid_file.write_text(str(os.getpid()))
        os.execve(sys.executable, argv, env)
    tmp_log = cfg / "pilot-starting.log"
    with open(tmp_log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    pid_file.write_text(str(proc.pid))
    log_path = cfg / f"pilot-{proc.pid}.log"
    os.replace(tmp_log, log_path)
    link = cfg / "pilot.log"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(log_path)
    except OSError:
        pass
    if not ctx.json:
        ctx.stderr.write(f"starting daemon (pid {proc.pid}, socket {sock})...\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = _info(sock)
        if info is not None:
            data = {
                "address": info["address"],
                "hostname": info.get("hostname", ""),
                "log_file": str(log_path),
                "node_id": info["node_id"],
                "pid": proc.pid,
                "socket": sock,
            }
            lines = [f"Daemon running (pid {proc.pid})", f"  Address:  {info['address']}"]
            if data["hostname"]:
                lines.append(f"  Hostname: {data['hostname']}")
            lines += [f"  Socket:   {sock}", f"  Logs:     {log_path}"]
            return ctx.ok(data, "\n".join(lines))
        if proc.poll() is not None:
            pid_file.unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise CliError(
                "internal",
                f"daemon exited with status {proc.returncode}: {tail[0].removeprefix('pilot-sim node: ')}",
                f"check logs: tail -f {log_path}",
            )
        time.sleep(0.02)
    raise CliError(
        "timeout",
        f"daemon started (pid {proc.pid}) but did not become ready within {dur(wait)}",
        f"check logs: tail -f {log_path}",
    )


def cmd_stop(ctx: Ctx, args: list[str]) -> int:
    """SIGTERM the node and wait (10 s, then SIGKILL) — pilotctl's stop."""
    pid_file = config_dir(ctx.env) / "pilot.pid"
    pid = _read_pid(pid_file)
    if pid <= 0:
        try:  # no pid file: ask the node on the socket to stop itself
            ctl = Control(ctx.socket)
        except DaemonDown:
            raise CliError("not_running", "daemon is not running") from None
        try:
            pid = int(ctl.call("info")["pid"])
        except (RemoteError, KeyError, ValueError):
            raise CliError("not_running", "daemon is not running") from None
        finally:
            ctl.close()
    if not _looks_like_daemon(pid):
        pid_file.unlink(missing_ok=True)
        raise CliError("not_running", "daemon is not running (cleaned up stale state)")
    os.kill(pid, signal.SIGTERM)
    forced = False
    deadline = time.monotonic() + 10.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if pid_alive(pid):
        forced = True
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    data: dict[str, Any] = {"pid": pid}
    if forced:
        data["forced"] = True
        try:
            os.unlink(ctx.socket)
        except OSError:
            pass
    return ctx.ok(data, f"daemon {'force-' if forced else ''}stopped (pid {pid})")


def cmd_status(ctx: Ctx, args: list[str]) -> int:
    """Always exit 0 (``--check``: 0 when responsive, else 1)."""
    flags, _ = parse_flags(args)
    pid_file = config_dir(ctx.env) / "pilot.pid"
    pid = _read_pid(pid_file)
    running = _looks_like_daemon(pid)
    info = _info(ctx.socket)
    if flag_bool(flags, "check"):
        return 0 if info is not None else 1
    data: dict[str, Any] = {"pid": pid, "pid_file": str(pid_file), "running": running, "socket": ctx.socket}
    if info is None:
        if not running and pid > 0:
            pid_file.unlink(missing_ok=True)
        data["responsive"] = False
        return ctx.ok(data, "○ pilot-daemon stopped\n  start: pilot-sim daemon start")
    data.update(
        responsive=True,
        running=True,
        node_id=info["node_id"],
        address=info["address"],
        hostname=info.get("hostname", ""),
        uptime_secs=info["uptime_secs"],
        peers=info["peers"],
        connections=info["connections"],
    )
    up = int(info["uptime_secs"])
    plain = (
        f"● pilot-daemon running (emulated by pilot-sim)\n"
        f"  uptime {up // 3600:02d}:{up % 3600 // 60:02d}:{up % 60:02d} · pid {pid} · {info['connections']} connection(s)\n"
        f"  node      {info['node_id']} · {info['address']}"
        + (f" · {info['hostname']}" if info.get("hostname") else "")
    )
    return ctx.ok(data, plain)
