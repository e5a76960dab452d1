"""Start and stop groups of pilot-sim nodes from Python: the demo, the benchmarks and the tests use this.

    with SimCluster() as net:
        oracle, orch = net.start("gcp-log-oracle", "local-threat-orchestrator",
                                 trust=[("gcp-log-oracle", "local-threat-orchestrator")])
        orch.json("inbox")                              # run `pilot-sim --json inbox` as that node
        subprocess.run([*sim_command(), "connect", orch.hostname, "1000"], env=oracle.env, ...)

Each node gets its own ``HOME`` (so its own ``~/.pilot`` and inbox) under the cluster's directory, a short
socket path (Unix socket paths are limited to ~108 bytes) and the cluster's shared ``PILOT_SIM_HOME``. Nodes
are started and trusted through the real command line's code (``pilot-sim daemon start``, ``handshake``,
``approve``: :func:`pilot_tui.sim.cli.run`, the function the console script calls), run in this process rather than
as a new Python process each (one such start costs ~0.3 s of CPU — most of the demo's start-up on a busy machine),
with ``PILOT_SIM_OWNER_PID`` set to this process: a node exits on its own when its owner dies (a killed test
run or demo leaves no daemons behind). :meth:`SimNode.run` still runs a separate ``pilot-sim`` process.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import FAULTS_FILE

_NODE_ENV_DROP = ("PILOT_HOME", "PILOT_SOCKET", "PILOT_SIM_HOME")


class SimCommandError(RuntimeError):
    """A pilot-sim command run for a node failed; carries the parsed error envelope when there is one."""

    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        try:
            self.envelope: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.envelope = {}
        self.code = str(self.envelope.get("code", ""))
        super().__init__(f"pilot-sim {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")


def sim_command() -> list[str]:
    """argv prefix that runs pilot-sim with this interpreter (no dependence on PATH)."""
    return [sys.executable, "-m", "pilot_tui.sim"]


@dataclass
class SimNode:
    """One running node and everything needed to act as it."""

    hostname: str
    home: Path
    """The node's ``HOME``: its ``~/.pilot`` (pid file, logs, inbox) lives here."""
    socket: str
    """Its daemon socket (``PILOT_SOCKET``; pass it to ``sdk.Driver``)."""
    sim_home: Path
    env: dict[str, str]
    """Environment to run ``pilot-sim`` (or code using it) as this node."""
    node_id: int = 0
    address: str = ""
    pid: int = 0
    log_file: str = ""
    start_env: dict[str, str] = field(default_factory=dict)
    """Extra variables the daemon was started with (faults); reused by :func:`restart_node`."""

    @property
    def config_dir(self) -> Path:
        """``~/.pilot`` of the node."""
        return self.home / ".pilot"

    @property
    def inbox(self) -> Path:
        """Where the node stores received messages."""
        return self.home / ".pilot" / "inbox"

    def run(
        self, *args: str, input: bytes | str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pilot-sim ARGS`` as this node; never raises on a non-zero exit."""
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [*sim_command(), *args],
            input=data if data is not None else b"",
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    def command(self, *args: str, extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``pilot-sim --json ARGS`` as this node, run in this process (no new interpreter): the envelope's
        ``data``, or :class:`SimCommandError`. For the quick commands that set a cluster up."""
        from .cli import run

        out, err = io.StringIO(), io.StringIO()
        argv = ["--json", *args]
        code = run(argv, {**self.env, **(extra_env or {})}, io.BytesIO(), out, err)
        if code != 0:
            raise SimCommandError(list(args), subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue()))
        data: dict[str, Any] = json.loads(out.getvalue())["data"]
        return data

    def json(self, *args: str, input: bytes | str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """``pilot-sim --json ARGS`` as this node: the envelope's ``data``, or :class:`SimCommandError`."""
        proc = self.run("--json", *args, input=input, timeout=timeout)
        if proc.returncode != 0:
            raise SimCommandError(list(args), proc)
        data: dict[str, Any] = json.loads(proc.stdout)["data"]
        return data

    def driver(self) -> Any:
        """An SDK-twin ``Driver`` connected to this node (close it when done)."""
        from .sdk import Driver

        return Driver(self.socket)


def _node_env(base: Mapping[str, str], home: Path, sock: str, sim_home: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in _NODE_ENV_DROP and not k.startswith("PILOT_SIM_")}
    env.update(HOME=str(home), PILOT_SOCKET=sock, PILOT_SIM_HOME=str(sim_home))
    return env


def fault_env(faults: Mapping[str, object] | None) -> dict[str, str]:
    """``{"drop_rate": 0.5}`` -> ``{"PILOT_SIM_DROP_RATE": "0.5"}`` (full variable names pass through)."""
    out = {}
    for key, value in (faults or {}).items():
        name = key if key.startswith("PILOT_SIM_") else "PILOT_SIM_" + key.upper()
        out[name] = str(int(value) if isinstance(value, bool) else value)
    return out


def start_node(
    hostname: str,
    home: Path,
    socket: str,
    sim_home: Path,
    *,
    env: Mapping[str, str] | None = None,
    faults: Mapping[str, object] | None = None,
    public: bool = False,
    auto_approve: bool = False,
) -> SimNode:
    """Start one node with ``pilot-sim daemon start`` and return it once it answers."""
    home.mkdir(parents=True, exist_ok=True)
    node = SimNode(hostname, home, socket, sim_home, _node_env(env or os.environ, home, socket, sim_home))
    node.start_env = fault_env(faults)
    return _start(node, public=public, auto_approve=auto_approve)


def _start(node: SimNode, public: bool = False, auto_approve: bool = False) -> SimNode:
    args = ["daemon", "start", "--hostname", node.hostname]
    if public:
        args.append("--public")
    if auto_approve:
        args.append("--trust-auto-approve")
    # the node process dies with its owner (this process)
    data = node.command(*args, extra_env={**node.start_env, "PILOT_SIM_OWNER_PID": str(os.getpid())})
    node.node_id, node.address, node.pid, node.log_file = (
        data["node_id"],
        data["address"],
        data["pid"],
        data["log_file"],
    )
    return node


def stop_node(node: SimNode) -> None:
    """``pilot-sim daemon stop`` for the node (quietly does nothing when it is not running)."""
    try:
        node.command("daemon", "stop")
    except SimCommandError:
        pass  # not running (any more): nothing to stop


def restart_node(node: SimNode, faults: Mapping[str, object] | None = None) -> SimNode:
    """Stop and start the node again (same identity, so same address and trust); new faults optional."""
    stop_node(node)
    if faults is not None:
        node.start_env = fault_env(faults)
    return _start(node)


def establish_trust(a: SimNode, b: SimNode, justification: str = "sim cluster") -> None:
    """One handshake on ``a`` and one approve on ``b``: traffic flows both ways, as with the real pilotctl (whose
    ``trust`` then shows ``mutual: true`` on ``a`` and ``mutual: false`` on the approver ``b``)."""
    a.command("handshake", b.hostname, justification)
    b.command("approve", str(a.node_id))


def set_faults(node: SimNode, **faults: object) -> None:
    """Change a running node's faults without a restart (drop_rate, latency_ms, refuse_dials,
    lose_first_stream_after_restart, slow_rate, slow_ms, seed). Only the keys given change; the node applies them on its next dial."""
    path = node.config_dir / FAULTS_FILE
    try:
        stamp = int(json.loads(path.read_text()).get("_changed", 0)) + 1
    except (OSError, ValueError, AttributeError):
        stamp = 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**faults, "_changed": stamp}))  # the stamp makes every write a visible change
    os.replace(tmp, path)


class SimCluster:
    """A set of nodes sharing one ``PILOT_SIM_HOME``; ``stop_all()`` (or leaving the ``with``) stops them all."""

    def __init__(self, base_dir: Path | str | None = None, env: Mapping[str, str] | None = None) -> None:
        self._own_base = base_dir is None
        self.base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="pilot-sim-"))
        self.sim_home = self.base / "net"
        self._sock_dir = Path(tempfile.mkdtemp(prefix="psim-", dir="/tmp"))
        self._env = dict(env) if env is not None else dict(os.environ)
        self.nodes: dict[str, SimNode] = {}

    def start(
        self,
        *hostnames: str,
        trust: Iterable[tuple[str, str]] = (),
        faults: Mapping[str, Mapping[str, object]] | None = None,
        public: Iterable[str] = (),
        auto_approve: Iterable[str] = (),
        parallel: bool = False,
    ) -> list[SimNode]:
        """Start nodes (in order: node ids follow it), then trust each ``(a, b)`` pair (``a`` asks, ``b`` approves).

        ``parallel`` starts the daemons at the same time (the demo: its start-up is mostly waiting for them); node
        ids then follow whichever registers first."""
        public, auto_approve = set(public), set(auto_approve)

        def one(name: str) -> SimNode:
            return start_node(
                name,
                self.base / name,
                str(self._sock_dir / f"{name}.sock"),
                self.sim_home,
                env=self._env,
                faults=(faults or {}).get(name),
                public=name in public,
                auto_approve=name in auto_approve,
            )

        if parallel and len(hostnames) > 1:
            with ThreadPoolExecutor(len(hostnames)) as pool:
                started = list(pool.map(one, hostnames))
        else:
            started = [one(name) for name in hostnames]
        for node in started:
            self.nodes[node.hostname] = node
        for a, b in trust:
            establish_trust(self.nodes[a], self.nodes[b])
        return started

    def __getitem__(self, hostname: str) -> SimNode:
        return self.nodes[hostname]

    def stop_all(self) -> None:
        """Stop every node that is still running and remove the socket directory."""
        for node in list(self.nodes.values()):  # a copy: the demo may still be starting its walk-on nodes
            try:
                stop_node(node)
            except (OSError, subprocess.SubprocessError):
                pass
        shutil.rmtree(self._sock_dir, ignore_errors=True)  # any node we could not stop exits when this goes

    def cleanup(self) -> None:
        """``stop_all()`` plus removal of the cluster directory when the cluster created it."""
        self.stop_all()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> SimCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
