"""A real-daemon lab: a rendezvous server and several real ``pilot-daemon`` 1.18 nodes on this machine.

Why: ``pilot-sim`` is an emulator, and an emulator only proves something while it agrees with the real network.
This lab runs the real thing — the ``pilot-daemon`` and ``pilotctl`` shipped in PyPI's ``pilotprotocol`` wheel —
so benchmarks and opt-in tests (``pytest -m realpilot``) can measure and check the facts ``pilot-sim`` must copy
(``../shared/pilotctl-contract.md``).

What it needs, and why each piece:

* **A rendezvous binary** (registry on TCP + beacon on UDP). The wheel has none, so it comes from *outside* this
  project: ``PILOT_RENDEZVOUS=/path/to/rendezvous`` or ``RealLab(rendezvous=...)`` / ``--rendezvous``. Nothing in
  this repository builds or ships it.
* **root and ``ip netns``**. Daemons 1.18 try to reach outside hosts (telemetry, an app catalogue, STUN). The
  rendezvous and every daemon run inside a fresh network namespace whose only interface is loopback, so those
  attempts fail at once (``network is unreachable``) and no packet leaves the machine. Ports inside a fresh
  namespace are free by construction, so two labs never collide.
* **The ``pilotprotocol`` wheel** for ``pilot-daemon`` / ``pilotctl`` (and its SDK for :class:`ReplyServer`).

Unix sockets are named by path, not by network namespace, so ``pilotctl``, the SDK and pilot-tui itself run
*outside* the namespace and reach the daemons through their socket files. ``pilotctl --json`` only talks to the
socket. :meth:`RealLab.unavailable` says in one line why the lab cannot run here (or ``None``).

Usage::

    with RealLab(workdir, nodes=["lab-oracle", "lab-orch"], trust=[("lab-oracle", "lab-orch")]) as lab:
        oracle = lab["lab-oracle"]
        oracle.pilotctl("connect", "lab-orch", "1000", "--message", "hi").error_code   # "connection_failed"
        subprocess.run(["pilot-tui", "oracle", ...], env={**os.environ, **oracle.env})

Command line: ``python -m bench lab --check`` (or ``python -m bench.lab --check``) brings up two nodes, sends one
``connect`` and one ``send-message`` and prints the times; ``python -m bench lab [--quick]`` measures connect to an
SDK receiver that replies (p50/p95), ``send-message`` and a daemon restart, and writes ``<results>/lab.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

NETNS_PREFIX = "pilotlab-"
"""Every namespace this module creates is called ``pilotlab-<creator pid>-<n>``, so a stale one (its creator died
before tearing down) can be recognised and removed: see :func:`remove_stale_netns`."""

START_TIMEOUT = 20.0
"""Bound on each start-up wait (a daemon is responsive ~0.6 s after it starts on 2 cores)."""

TRUST_TIMEOUT = 10.0
"""Bound on a handshake to show as pending on the other side, and on trust to show on the requester (~1 s)."""

STOP_TIMEOUT = 5.0
"""How long a SIGTERM may take before SIGKILL."""

SOCKET_PATH_MAX = 100
"""``sun_path`` holds 108 bytes on Linux; longer socket paths (deep pytest tmp dirs) go to a short temp dir."""

_STRIPPED_ENV = ("PILOT_HOME", "PILOT_SOCKET", "PILOT_REGISTRY", "PILOT_BEACON", "PILOT_TRANSPORT", "PILOT_PROXY",
                 "PILOT_PROXY_CMD", "PILOT_MOTD_URL", "PILOT_TELEMETRY_URL", "PILOTCTL", "HTTPS_PROXY", "HTTP_PROXY",
                 "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
"""Variables of the caller that would point a lab process at another daemon, registry or proxy."""


class LabError(RuntimeError):
    """The lab could not be brought up (or a wait ran out); the message says which step and shows log tails."""


# -- what is needed, and where it is --------------------------------------------------------------------------------


def wheel_bin_dir() -> Path | None:
    """``<site-packages>/pilotprotocol/bin`` of the installed wheel, found without importing the SDK (which would
    load ``libpilot.so``), or ``None``."""
    try:
        spec = importlib.util.find_spec("pilotprotocol")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin"
        if candidate.is_dir():
            return candidate
    return None


def rendezvous_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The rendezvous binary: ``explicit``, else ``$PILOT_RENDEZVOUS``; ``None`` when neither is set."""
    value = os.fspath(explicit) if explicit else os.environ.get("PILOT_RENDEZVOUS", "")
    return Path(value).expanduser() if value else None


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def unavailable(rendezvous: str | os.PathLike[str] | None = None) -> str | None:
    """Why a :class:`RealLab` cannot run here, in one line — or ``None`` when it can.

    Cheap and side-effect free (no namespace is created), so a test module can call it at import time to skip.
    """
    rdv = rendezvous_path(rendezvous)
    if rdv is None:
        return "no rendezvous binary: set PILOT_RENDEZVOUS=/path/to/rendezvous (built outside this project)"
    if not _runnable(rdv):
        return f"PILOT_RENDEZVOUS={rdv} is not an executable file"
    bin_dir = wheel_bin_dir()
    if bin_dir is None:
        return "the pilotprotocol wheel is not installed (pip install pilotprotocol)"
    for name in ("pilot-daemon", "pilotctl"):
        if not _runnable(bin_dir / name):
            return f"the pilotprotocol wheel has no runnable {name} in {bin_dir}"
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "not root: creating a network namespace (ip netns add) needs root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) for network namespaces"
    return None


# -- processes ------------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM the child when this process dies, so a lab killed hard (pytest-timeout, ^C twice)
    leaves no daemon behind. ``ip netns exec`` execs in place (no fork), so the setting reaches the daemon."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stop_processes(procs: Iterable[subprocess.Popen[bytes] | None], timeout: float = STOP_TIMEOUT,
                    hard: bool = False) -> None:
    """SIGTERM (SIGKILL when ``hard``) all at once, then wait; SIGKILL what is left after ``timeout``; always
    reaps. Only ever processes this lab started.

    Why all at once: a 1.18 daemon whose peer is still up takes ~4-5 s to exit on SIGTERM, the last one ~0 s."""
    live = [p for p in procs if p is not None and p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text)


def _listening(pid: int, port: int, proto: str) -> bool:
    """Whether the network namespace of ``pid`` has ``port`` bound (TCP: listening) on any address.

    Reads ``/proc/<pid>/net/{tcp,udp}``, which show the namespace of that process: no subprocess needed to look
    inside the lab's namespace."""
    try:
        rows = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        cols = row.split()
        if len(cols) > 3 and int(cols[1].rsplit(":", 1)[1], 16) == port and (proto == "udp" or cols[3] == "0A"):
            return True
    return False


def remove_stale_netns() -> list[str]:
    """Delete ``pilotlab-<pid>-*`` namespaces whose creator process is gone (a lab that died before teardown).

    Why: a namespace outlives its processes when nobody deletes it. Ours carry the creator's pid in the name, so
    only those whose creator is dead are touched — never one of a lab that is still running."""
    removed: list[str] = []
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return removed
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        try:
            pid = int(name[len(NETNS_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=5, check=False)
        removed.append(name)
    return removed


# -- pilotctl results -----------------------------------------------------------------------------------------------


@dataclass
class CtlResult:
    """One ``pilotctl --json`` run: exit code, raw output, the parsed envelope and its wall time."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Exit 0 with a ``{"status":"ok"}`` envelope on stdout."""
        return self.returncode == 0 and self.envelope.get("status") == "ok"

    @property
    def envelope(self) -> dict[str, Any]:
        """The JSON envelope: stdout's first line on success, else stderr's last JSON line; ``{}`` if none."""
        for text in (self.stdout, self.stderr) if self.returncode == 0 else (self.stderr, self.stdout):
            for line in reversed(text.strip().splitlines()):
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "status" in doc:
                    return doc
        return {}

    @property
    def data(self) -> dict[str, Any]:
        """``data`` of a success envelope (``{}`` otherwise)."""
        value = self.envelope.get("data") if self.ok else None
        return value if isinstance(value, dict) else {}

    @property
    def error_code(self) -> str | None:
        """``code`` of an error envelope (``connection_failed``, ``timeout``, …), ``None`` on success."""
        return None if self.ok else str(self.envelope.get("code") or "unknown")

    def __str__(self) -> str:
        shown = " ".join(self.argv[1:])
        return f"pilotctl {shown} -> exit {self.returncode} in {self.seconds * 1000:.1f} ms: " \
               f"{(self.stdout or self.stderr).strip()[:300]}"


# -- nodes ----------------------------------------------------------------------------------------------------------


@dataclass
class LabNode:
    """One real ``pilot-daemon`` of the lab, with what a client process needs to use it.

    ``env`` is what to add to a ``pilotctl`` / pilot-tui process's environment so it talks to *this* daemon:
    ``HOME`` (its own ``~/.pilot``: inbox, trust, pid file), ``PILOT_SOCKET``, ``PILOT_REGISTRY``, ``PILOT_BEACON``
    and ``PILOTCTL`` (the wheel's binary, for pilot-tui's ``--pilotctl`` default).
    """

    hostname: str
    home: Path
    socket: Path
    identity: Path
    log: Path
    email: str
    pilotctl_path: Path
    registry: str
    beacon: str
    node_id: int | None = None
    address: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def env(self) -> dict[str, str]:
        """The variables to add to a client process's environment (see the class docstring)."""
        return {
            "HOME": str(self.home),
            "PILOT_SOCKET": str(self.socket),
            "PILOT_REGISTRY": self.registry,
            "PILOT_BEACON": self.beacon,
            "PILOTCTL": str(self.pilotctl_path),
        }

    def full_env(self) -> dict[str, str]:
        """The caller's environment without anything that points elsewhere (``PILOT_HOME``, proxies), plus
        :attr:`env`: what a child process of this node gets."""
        base = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
        return {**base, **self.env}

    def pilotctl(self, *args: str, timeout: float = 60.0, input: str | bytes | None = None) -> CtlResult:
        """Run ``pilotctl --json ARGS`` against this node (outside the namespace, through the socket).

        Never raises for a pilotctl error: check :attr:`CtlResult.ok` / ``error_code``. ``timeout`` bounds the
        process (give pilotctl's own ``--timeout`` a smaller value so its answer comes back)."""
        argv = [str(self.pilotctl_path), "--json", *args]
        stdin = subprocess.DEVNULL if input is None else None
        began = time.perf_counter()
        try:
            proc = subprocess.run(argv, env=self.full_env(), input=input.encode() if isinstance(input, str) else input,
                                  stdin=stdin, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"pilotctl {' '.join(args)} on {self.hostname} ran over {timeout} s") from exc
        return CtlResult(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                         proc.stderr.decode(errors="replace"), time.perf_counter() - began)

    def running(self) -> bool:
        """Whether the daemon process is alive and ``daemon status`` says running and responsive."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        status = self.pilotctl("daemon", "status", timeout=10).data
        return bool(status.get("running") and status.get("responsive"))


# -- the lab --------------------------------------------------------------------------------------------------------


class RealLab:
    """Network namespace + rendezvous + one real ``pilot-daemon`` per node, trusted as asked; all torn down on exit.

    Everything is bounded (:data:`START_TIMEOUT`, :data:`TRUST_TIMEOUT`, :data:`STOP_TIMEOUT`) and ``__exit__``
    (also reached when ``__enter__`` fails half-way) stops every process it started and deletes the namespace.
    Per-node state (``HOME``, identity, logs, socket) lives under ``workdir/<hostname>/``; ``node.address`` and
    ``node.node_id`` are read from ``daemon status`` once it is up (ids follow registration order, which is a race).

    Start and close a lab on the same thread, and keep that thread alive while the lab runs: every process it
    starts gets SIGTERM when the *starting thread* ends (``PR_SET_PDEATHSIG``), so a test killed hard leaves no
    daemon behind — and a lab started on a short-lived worker thread would lose its daemons with that thread.
    """

    unavailable = staticmethod(unavailable)

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        nodes: Sequence[str] = ("lab-oracle", "lab-orch"),
        trust: Iterable[tuple[str, str]] = (("lab-oracle", "lab-orch"),),
        rendezvous: str | os.PathLike[str] | None = None,
        daemon_args: Sequence[str] = (),
    ) -> None:
        """``trust``: pairs ``(a, b)``: ``a`` sends a handshake, ``b`` approves it (one pair carries traffic both
        ways). ``daemon_args``: extra ``pilot-daemon`` flags for every node."""
        reason = unavailable(rendezvous)
        if reason:
            raise LabError(reason)
        self.workdir = Path(workdir).resolve()
        self.rendezvous = rendezvous_path(rendezvous)
        bin_dir = wheel_bin_dir()
        assert bin_dir is not None
        self.daemon_bin = bin_dir / "pilot-daemon"
        self.pilotctl_bin = bin_dir / "pilotctl"
        self.node_names = list(nodes)
        if len(set(self.node_names)) != len(self.node_names):
            raise LabError(f"duplicate node names in {self.node_names}")
        self.trust_pairs = list(trust)
        for a, b in self.trust_pairs:
            if a not in self.node_names or b not in self.node_names:
                raise LabError(f"trust pair {(a, b)} names a node that is not in {self.node_names}")
        self.daemon_args = list(daemon_args)
        self.netns = f"{NETNS_PREFIX}{os.getpid()}-{random.randrange(1 << 24):06x}"
        port = random.randrange(20000, 60000, 2)  # any port: the namespace is fresh; random just to tell labs apart
        self.registry = f"127.0.0.1:{port}"
        self.beacon = f"127.0.0.1:{port + 1}"
        self.nodes: dict[str, LabNode] = {}
        self.timings: dict[str, float] = {}
        """Seconds each step took: ``rendezvous``, ``daemon:<name>``, ``trust:<a>-><b>``, ``up`` (all)."""
        self._rdv: subprocess.Popen[bytes] | None = None
        self._netns_made = False
        self._short_dir: Path | None = None

    # context manager

    def __enter__(self) -> RealLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getitem__(self, name: str) -> LabNode:
        return self.nodes[name]

    # bring-up

    def start(self) -> None:
        """Namespace, rendezvous, daemons (each waited for), then the handshakes and approvals."""
        began = time.perf_counter()
        remove_stale_netns()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_netns()
        t0 = time.perf_counter()
        self._start_rendezvous()
        self.timings["rendezvous"] = time.perf_counter() - t0
        for name in self.node_names:
            self.nodes[name] = self._new_node(name)
        for name in self.node_names:  # start all, then wait: the daemons boot in parallel
            self._spawn_daemon(self.nodes[name])
        for name in self.node_names:
            self.timings[f"daemon:{name}"] = self._wait_daemon(self.nodes[name])
        for a, b in self.trust_pairs:
            self.timings[f"trust:{a}->{b}"] = self.make_trust(a, b)
        self.timings["up"] = time.perf_counter() - began

    def _ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)

    def _make_netns(self) -> None:
        made = self._ip("netns", "add", self.netns)
        if made.returncode != 0:
            raise LabError(f"ip netns add {self.netns} failed: {made.stderr.strip()}")
        self._netns_made = True
        up = self._ip("-n", self.netns, "link", "set", "lo", "up")
        if up.returncode != 0:
            raise LabError(f"cannot bring up lo in {self.netns}: {up.stderr.strip()}")
        links = self._ip("-n", self.netns, "-o", "link", "show").stdout.splitlines()
        names = [line.split(":")[1].strip().split("@")[0] for line in links if ":" in line]
        if names != ["lo"]:  # the whole point: nothing but loopback in there
            raise LabError(f"namespace {self.netns} has interfaces {names}, expected only lo")

    def _in_netns(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def _popen(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(self._in_netns(argv), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)

    def _start_rendezvous(self) -> None:
        assert self.rendezvous is not None
        log = self.workdir / "rendezvous.log"
        argv = [str(self.rendezvous), "-registry-addr", self.registry, "-beacon-addr", self.beacon,
                "-store", str(self.workdir / "rendezvous-store.json")]
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
        self._rdv = self._popen(argv, env, log)
        rport, bport = int(self.registry.rsplit(":", 1)[1]), int(self.beacon.rsplit(":", 1)[1])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._rdv.poll() is not None:
                raise LabError(f"rendezvous exited {self._rdv.returncode}:\n{_tail(log)}")
            if _listening(self._rdv.pid, rport, "tcp") and _listening(self._rdv.pid, bport, "udp"):
                return
            time.sleep(0.02)
        raise LabError(f"rendezvous not listening on {self.registry}/{self.beacon} after {START_TIMEOUT} s:\n"
                       f"{_tail(log)}")

    def _new_node(self, name: str) -> LabNode:
        base = self.workdir / name
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        sock = base / "pilot.sock"
        if len(str(sock)) > SOCKET_PATH_MAX:
            if self._short_dir is None:
                self._short_dir = Path(tempfile.mkdtemp(prefix="pl-"))
            sock = self._short_dir / f"{name}.sock"
        return LabNode(hostname=name, home=home, socket=sock, identity=home / "identity.json",
                       log=base / "daemon.log", email=f"{name}@example.invalid", pilotctl_path=self.pilotctl_bin,
                       registry=self.registry, beacon=self.beacon)

    def _spawn_daemon(self, node: LabNode) -> None:
        with contextlib.suppress(FileNotFoundError):
            node.socket.unlink()  # a stale socket file would make "not running" look like a hang
        argv = [
            str(self.daemon_bin),
            "-registry", self.registry, "-beacon", self.beacon, "-listen", "127.0.0.1:0",
            "-socket", str(node.socket), "-hostname", node.hostname, "-encrypt", "-identity", str(node.identity),
            "-email", node.email,  # distinct per node: the registry treats one owner as one node
            "-motd-feed-url", "", "-telemetry-url", "", "-no-skillinject", "-transport", "udp", "-proxy", "off",
            *self.daemon_args,
        ]
        env = {**node.full_env(), "PILOT_NO_SKILLINJECT": "1"}
        node.starts += 1
        with open(node.log, "ab") as out:
            out.write(f"\n=== lab start #{node.starts} at {time.strftime('%H:%M:%S')} ===\n".encode())
        node.proc = self._popen(argv, env, node.log)

    def _wait_daemon(self, node: LabNode) -> float:
        """Until ``daemon status`` says running + responsive; returns the seconds since the process started."""
        assert node.proc is not None
        began = time.perf_counter()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise LabError(f"pilot-daemon {node.hostname} exited {node.proc.returncode}:\n{_tail(node.log)}")
            if node.socket.exists():
                status = node.pilotctl("daemon", "status", timeout=10).data
                if status.get("running") and status.get("responsive") and status.get("address"):
                    node.node_id = int(status["node_id"])
                    node.address = str(status["address"])
                    return time.perf_counter() - began
            time.sleep(0.05)
        raise LabError(f"pilot-daemon {node.hostname} not responsive after {START_TIMEOUT} s:\n{_tail(node.log)}")

    def make_trust(self, requester: str, approver: str, reason: str = "pilot-tui lab") -> float:
        """``handshake`` on ``requester``, wait for it in ``approver``'s ``pending``, ``approve`` it there, and
        wait until the requester lists the approver as trusted. Returns the seconds it took.

        Why wait on ``pending``: ``approve`` of a node with nothing pending still reports success."""
        a, b = self.nodes[requester], self.nodes[approver]
        began = time.perf_counter()
        sent = a.pilotctl("handshake", b.hostname, reason, timeout=30)
        if not sent.ok:
            raise LabError(f"handshake {requester} -> {approver} failed: {sent}")
        deadline = time.monotonic() + TRUST_TIMEOUT
        while True:
            pending = b.pilotctl("pending", timeout=10).data.get("pending") or []
            if any(p.get("node_id") == a.node_id for p in pending):
                break
            if time.monotonic() > deadline:
                raise LabError(f"handshake from {requester} (node {a.node_id}) not pending on {approver} "
                               f"after {TRUST_TIMEOUT} s:\n{_tail(b.log)}")
            time.sleep(0.05)
        approved = b.pilotctl("approve", str(a.node_id), timeout=30)
        if not approved.ok:
            raise LabError(f"approve {a.node_id} on {approver} failed: {approved}")
        while True:
            trusted = a.pilotctl("trust", timeout=10).data.get("trusted") or []
            if any(t.get("node_id") == b.node_id for t in trusted):
                return time.perf_counter() - began
            if time.monotonic() > deadline:
                raise LabError(f"{requester} does not list {approver} as trusted {TRUST_TIMEOUT} s after approve")
            time.sleep(0.05)

    # outages

    def stop_daemon(self, name: str, hard: bool = False) -> float:
        """An outage: SIGTERM the node's daemon (SIGKILL after :data:`STOP_TIMEOUT`), or SIGKILL at once when
        ``hard`` (a crash). Returns the seconds it took to exit (a clean stop takes ~4-5 s while peers are up)."""
        began = time.perf_counter()
        _stop_processes([self.nodes[name].proc], hard=hard)
        return time.perf_counter() - began

    def start_daemon(self, name: str) -> float:
        """Start a stopped node again with the same identity, hostname and e-mail (so the same node id and trust);
        returns the seconds until it is responsive."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            raise LabError(f"{name} is still running")
        old_id = node.node_id
        self._spawn_daemon(node)
        seconds = self._wait_daemon(node)
        if old_id is not None and node.node_id != old_id:
            raise LabError(f"{name} came back as node {node.node_id}, was {old_id}: identity not kept")
        return seconds

    def restart_daemon(self, name: str, hard: bool = False) -> float:
        """Stop (``hard``: SIGKILL) and start ``name``'s daemon with the same identity. Returns the seconds from
        the new start until it is responsive again.

        Note (measured on 1.18): the peers' first stream to it afterwards may stall or lose its data while the
        tunnel re-keys; a caller that needs delivery right away must retry on an acknowledgement."""
        self.stop_daemon(name, hard=hard)
        return self.start_daemon(name)

    # teardown

    def close(self) -> None:
        """Stop every daemon, the rendezvous, delete the namespace and the short socket dir. Safe to call twice;
        never raises for a process that is already gone."""
        with contextlib.suppress(Exception):
            _stop_processes([node.proc for node in self.nodes.values()])
        with contextlib.suppress(Exception):
            _stop_processes([self._rdv])
        if self._netns_made:
            gone = self._ip("netns", "del", self.netns)
            if gone.returncode == 0:
                self._netns_made = False
            else:
                print(f"lab: could not delete netns {self.netns}: {gone.stderr.strip()}", file=sys.stderr)
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    # helpers for tests and benches

    def reply_server(self, name: str, port: int, reply: bytes | Callable[[bytes], bytes]) -> ReplyServer:
        """A :class:`ReplyServer` on ``name``'s daemon (use as a context manager)."""
        return ReplyServer(self.nodes[name].socket, port, reply)


class ReplyServer:
    """A stream server on a node's port that **replies**, built on the SDK (``pilotprotocol.Driver``).

    Why the SDK: ``pilotctl`` has no stream server that can reply (``recv`` never answers), and ``connect`` waits
    for one reply. For each accepted stream it reads until ``complete(data)`` says the payload is whole (default:
    the first read), writes ``reply`` (bytes, or a function of what was read) and closes. Everything read is kept
    in :attr:`received`. Runs in a daemon thread (SDK calls block); closing the listener ends ``accept``.
    """

    def __init__(self, socket: str | os.PathLike[str], port: int, reply: bytes | Callable[[bytes], bytes],
                 complete: Callable[[bytes], bool] | None = None, read_timeout: float = 10.0) -> None:
        self.socket = os.fspath(socket)
        self.port = port
        self.reply = reply
        self.complete = complete or (lambda data: True)
        self.read_timeout = read_timeout
        self.received: list[bytes] = []
        self.errors: list[str] = []
        self._driver: Any = None
        self._listener: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> ReplyServer:
        from pilotprotocol import Driver

        self._driver = Driver(self.socket)
        self._listener = self._driver.listen(self.port)
        self._thread = threading.Thread(target=self._serve, name=f"reply-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except Exception as exc:  # listener closed (or daemon gone): the end
                if not self._stopping.is_set():
                    self.errors.append(f"accept: {exc}")
                return
            try:
                conn.set_read_deadline(time.time() + self.read_timeout)
                data = conn.read(1 << 20)
                while data and not self.complete(data):
                    more = conn.read(1 << 20)
                    if not more:
                        break
                    data += more
                self.received.append(data)
                answer = self.reply(data) if callable(self.reply) else self.reply
                if answer:
                    conn.write(answer)
            except Exception as exc:
                self.errors.append(f"stream: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        """Close the listener (ends a blocked ``accept``), join the thread (bounded), close the driver."""
        self._stopping.set()
        with contextlib.suppress(Exception):
            if self._listener is not None:
                self._listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            if self._driver is not None:
                self._driver.close()
        self._listener = self._driver = None


# -- command line ---------------------------------------------------------------------------------------------------


def _event(i: int) -> str:
    """One threat event as the oracle sends it (one NDJSON line, ~300 bytes)."""
    return json.dumps({
        "event_id": f"lab-{os.getpid()}-{i}", "schema": 1, "sensor": "lab-oracle", "seq": i, "batch_size": 1,
        "anomaly": "ssh_bruteforce", "severity": "high", "source_ip": "203.0.113.7", "count": 12,
        "first_seen": "2026-12-04T10:00:00Z", "last_seen": "2026-12-04T10:00:09Z",
        "evidence": "Failed password for invalid user admin from 203.0.113.7 port 52311 ssh2",
    }, separators=(",", ":"))


def _ack(data: bytes) -> bytes:
    """Reply like pilot-tui's orchestrator: the ids stored."""
    ids = []
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            ids.append(json.loads(line)["event_id"])
    return json.dumps({"stored": ids}).encode()


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


RUN_GAP = 0.05
"""Pause between measured runs. Why: one sender opening streams to one daemon back to back (~60/s) hits the
receiver's per-source SYN limiter after ~70 streams, and from then on every other stream takes ~250 ms more
(``-syn-whitelist <sender id>`` on the receiver lifts it; ``-syn-rate-limit`` does not). Spaced runs measure the
latency of one stream, not that limiter; ``--gap 0`` shows it."""


def measure(lab: RealLab, sender: str, receiver: str, runs: int, restart: bool, gap: float = RUN_GAP
            ) -> dict[str, Any]:
    """Connect (1 event) to a replying SDK receiver and send-message, ``runs`` times each, ``gap`` seconds apart;
    optionally restart the receiver's daemon and time the first send-message / connects after it. Returns the
    figures in seconds."""
    a = lab[sender]
    out: dict[str, Any] = {"runs": runs, "gap_s": gap}
    with lab.reply_server(receiver, 1000, _ack) as server:
        connect_s: list[float] = []
        for i in range(runs):
            res = a.pilotctl("connect", receiver, "1000", "--message", _event(i), "--timeout", "10s", timeout=30)
            if not res.ok or "stored" not in res.data.get("response", ""):
                raise LabError(f"connect {i} failed: {res}")
            connect_s.append(res.seconds)
            time.sleep(gap)
        out["connect_s"] = connect_s
        out["receiver_errors"] = server.errors
    msg_s: list[float] = []
    for i in range(runs):
        res = a.pilotctl("send-message", receiver, "--data", _event(i), "--type", "json", timeout=30)
        if not res.ok:
            raise LabError(f"send-message {i} failed: {res}")
        msg_s.append(res.seconds)
        time.sleep(gap)
    out["send_message_s"] = msg_s
    if restart:
        out["stop_s"] = lab.stop_daemon(receiver)
        out["restart_s"] = lab.start_daemon(receiver)
        first = a.pilotctl("send-message", receiver, "--data", _event(runs), "--type", "json", timeout=60)
        out["first_send_message_after_restart"] = {"s": first.seconds, "ok": first.ok, "code": first.error_code}
        with lab.reply_server(receiver, 1000, _ack) as server:
            tries = []
            for i in range(5):  # the first stream after a restart may lose its data while the tunnel re-keys
                res = a.pilotctl("connect", receiver, "1000", "--message", _event(runs + 1 + i), "--timeout", "15s",
                                 timeout=60)
                acked = res.ok and "stored" in res.data.get("response", "")
                tries.append({"s": res.seconds, "ok": res.ok, "acked": acked, "code": res.error_code})
                if acked:
                    break
            out["connects_after_restart"] = tries
    return out


def _bring_up(args: argparse.Namespace, workdir: Path) -> RealLab:
    print(f"lab: netns + rendezvous ({args.rendezvous or os.environ.get('PILOT_RENDEZVOUS')}) + 2 daemons in "
          f"{workdir}", flush=True)
    return RealLab(workdir, nodes=["lab-oracle", "lab-orch"], trust=[("lab-oracle", "lab-orch")],
                   rendezvous=args.rendezvous)


def check(args: argparse.Namespace) -> int:
    """``--check``: up, one connect (to a replying SDK receiver) and one send-message each way, times, down."""
    with tempfile.TemporaryDirectory(prefix="pilotlab-") as tmp, _bring_up(args, Path(tmp)) as lab:
        for key, value in lab.timings.items():
            print(f"  {key:<28} {_ms(value)}")
        oracle, orch = lab["lab-oracle"], lab["lab-orch"]
        print(f"  nodes: {oracle.hostname}={oracle.address}, {orch.hostname}={orch.address}")
        with lab.reply_server("lab-orch", 1000, _ack):
            res = oracle.pilotctl("connect", "lab-orch", "1000", "--message", _event(0), "--timeout", "10s")
        print(f"  connect lab-oracle -> lab-orch:1000  {_ms(res.seconds)}  "
              f"{'ok, reply ' + repr(res.data.get('response')) if res.ok else res}")
        msg = oracle.pilotctl("send-message", "lab-orch", "--data", _event(1), "--type", "json")
        print(f"  send-message lab-oracle -> lab-orch  {_ms(msg.seconds)}  "
              f"{'ok, ' + str(msg.data.get('ack')) if msg.ok else msg}")
        back = orch.pilotctl("send-message", "lab-oracle", "--data", "reverse", "--type", "text")
        print(f"  send-message lab-orch -> lab-oracle  {_ms(back.seconds)}  "
              f"{'ok, ' + str(back.data.get('ack')) if back.ok else back}")
        good = res.ok and msg.ok and back.ok
    print(f"lab: torn down; {'OK' if good else 'FAILED'}")
    return 0 if good else 1


def run(args: argparse.Namespace) -> int:
    """The measuring run: figures printed and written to ``<results>/lab.json``."""
    from .common import RESULTS_DIR, Ctx, headline_row, machine, now_iso, write_result

    runs = args.runs or (10 if args.quick else 50)
    results_dir = Path(args.results_dir) if args.results_dir else (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    with tempfile.TemporaryDirectory(prefix="pilotlab-") as tmp, _bring_up(args, Path(tmp)) as lab:
        figures = measure(lab, "lab-oracle", "lab-orch", runs, restart=not args.no_restart, gap=args.gap)
        timings = dict(lab.timings)
    c, m = figures["connect_s"], figures["send_message_s"]
    print(f"lab: {runs} runs each, {args.gap * 1000:.0f} ms apart (real pilot-daemon 1.18, loopback netns)")
    print(f"  bring-up {_ms(timings['up'])}; " + ", ".join(f"{k} {_ms(v)}" for k, v in timings.items() if k != "up"))
    print(f"  connect, 1 event, SDK receiver replies: p50 {_ms(_pct(c, 50))}, p95 {_ms(_pct(c, 95))}, "
          f"max {_ms(max(c))}")
    print(f"  send-message (daemon ack):               p50 {_ms(_pct(m, 50))}, p95 {_ms(_pct(m, 95))}, "
          f"max {_ms(max(m))}")
    if "restart_s" in figures:
        first = figures["first_send_message_after_restart"]
        print(f"  receiver daemon SIGTERM -> exited: {_ms(figures['stop_s'])}; start -> responsive: "
              f"{_ms(figures['restart_s'])}; first send-message after it: "
              f"{_ms(first['s'])} ({'ok' if first['ok'] else first['code']})")
        for i, t in enumerate(figures["connects_after_restart"]):
            print(f"  connect #{i + 1} after restart: {_ms(t['s'])} "
                  f"({'acked' if t['acked'] else t['code'] or 'no ack'})")
    doc = {
        "bench": "lab", "date": now_iso(), "quick": args.quick, "machine": machine(), "timings_s": timings,
        **figures,
        "summary": {"connect_p50_s": _pct(c, 50), "connect_p95_s": _pct(c, 95), "send_message_p50_s": _pct(m, 50)},
        "headline": [headline_row(
            "real pilot-daemon 1.18 lab (loopback netns): connect, 1 event, SDK receiver replies, p50 / p95",
            f"{_ms(_pct(c, 50))} / {_ms(_pct(c, 95))}", f"send-message p50 {_ms(_pct(m, 50))}", "-")],
    }
    write_result(Ctx(quick=args.quick, results_dir=results_dir), "lab", doc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench lab",
                                     description="Real pilot-daemon 1.18 nodes on a loopback network namespace.")
    parser.add_argument("--check", action="store_true",
                        help="bring up 2 nodes, one connect + one send-message, print times, tear down")
    parser.add_argument("--rendezvous", metavar="PATH", help="rendezvous binary (default: $PILOT_RENDEZVOUS)")
    parser.add_argument("--runs", type=int, help="measured runs of each kind (default 50, 10 with --quick)")
    parser.add_argument("--gap", type=float, default=RUN_GAP, help=f"seconds between runs (default {RUN_GAP})")
    parser.add_argument("--no-restart", action="store_true", help="skip the daemon-restart measurement")
    parser.add_argument("--quick", action="store_true", help="fewer runs; results go to results/quick/")
    parser.add_argument("--results-dir", metavar="DIR", help="where to write lab.json")
    parser.add_argument("--cleanup", action="store_true", help="only delete namespaces left by dead labs")
    args = parser.parse_args(argv)
    if args.cleanup:
        removed = remove_stale_netns()
        print(f"lab: removed {', '.join(removed) if removed else 'nothing'}")
        return 0
    reason = unavailable(args.rendezvous)
    if reason:
        print(f"lab: skipped: {reason}")
        return 2 if args.check else 0
    try:
        return check(args) if args.check else run(args)
    except LabError as exc:
        print(f"lab: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
