"""``pilot-tui demo``: the whole story on one machine, no Pilot install, no root.

Three pilot-sim nodes in a temporary directory — ``gcp-log-oracle``, ``local-threat-orchestrator`` and
``aws-exec-node`` — with trust oracle↔orchestrator and orchestrator↔executor; an attack story written live into
auth.log / access.log / ufw.log; the real oracle, orchestrator and executor engines (the executor in dry-run) talking
through the emulator exactly as they would through pilotctl. Everything started is stopped on exit.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORACLE, ORCH, EXEC = "gcp-log-oracle", "local-threat-orchestrator", "aws-exec-node"


def sim_binary() -> str:
    """The pilot-sim console script next to this interpreter (or on PATH)."""
    candidate = Path(sys.executable).with_name("pilot-sim")
    found = str(candidate) if candidate.exists() else shutil.which("pilot-sim")
    if not found:
        raise FileNotFoundError("pilot-sim is not installed next to this Python (reinstall pilot-tui)")
    return found


@dataclass
class DemoWorld:
    """Everything the demo started, so tests and the screenshot script can reuse it."""

    root: Path
    logs: Path
    cluster: Any
    oracle: Any
    orchestrator: Any
    executor: Any

    def story(self, speed: float = 1.0) -> Any:
        """A coroutine factory that plays the attack story into the log files (looping)."""
        from pilot_tui.sim.loggen_story import play_story

        return lambda: play_story(self.logs, speed=speed, loop=True)


@contextmanager
def demo_world(root: Path | None = None) -> Iterator[DemoWorld]:
    """Start the emulated nodes and build the three engines; stop and remove everything afterwards."""
    from pilot_tui.detect import Detector, load_rules
    from pilot_tui.engines.executor import ExecutorEngine
    from pilot_tui.engines.oracle import OracleConfig, OracleEngine
    from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
    from pilot_tui.pilot.driver import Pilotctl
    from pilot_tui.sim.cluster import SimCluster
    from pilot_tui.sim.loggen_story import STORY_FILES
    from pilot_tui.sources.multi import open_sources
    from pilot_tui.store.events import EventStore
    from pilot_tui.store.outbox import Outbox

    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="pilot-tui-demo-")) if root is None else root
    cluster = SimCluster(root / "sim")
    try:
        nodes = {n.hostname: n for n in cluster.start(ORACLE, ORCH, EXEC, trust=[(ORACLE, ORCH), (ORCH, EXEC)])}
        binary = sim_binary()
        logs = root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in STORY_FILES:
            (logs / name).touch()
        orchestrator = OrchestratorEngine(
            Pilotctl(binary, env=nodes[ORCH].env), EventStore(root / "orchestrator.db"),
            OrchestratorConfig(exec_node=EXEC, analyst="presenter", idle_gap_s=0.3, inbox_poll_s=0.5),
        )
        outbox = Outbox(root / "oracle.db")
        sources = open_sources([str(logs / name) for name in STORY_FILES], outbox.offsets(), from_start=True)
        oracle = OracleEngine(
            Pilotctl(binary, env=nodes[ORACLE].env), outbox, [sources],
            Detector(load_rules(), sensor=ORACLE), OracleConfig(peer=ORCH, sensor=ORACLE, connect_timeout=5.0),
        )
        executor = ExecutorEngine(
            Pilotctl(binary, env=nodes[EXEC].env), root / "executor.db", backend="dry-run", obey=[ORCH],
            poll_interval=0.5,
        )
        yield DemoWorld(root, logs, cluster, oracle, orchestrator, executor)
    finally:
        cluster.stop_all()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from .common import fail

    try:
        world_cm = demo_world()
        world = world_cm.__enter__()
    except FileNotFoundError as exc:
        return fail("demo", str(exc))
    except Exception as exc:  # the emulator could not start: say why, not a traceback
        return fail("demo", f"could not start the emulated network: {exc}")
    try:
        from pilot_tui.ui.app import make_app

        app = make_app(oracle=world.oracle, orchestrator=world.orchestrator, executor=world.executor, demo=True,
                       background=[world.story()])
        # A dropped SSH session (SIGHUP) or a kill (SIGTERM) must still stop the nodes and remove the temp dir.
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, lambda *_: app.exit())
        app.run()
    finally:
        world_cm.__exit__(None, None, None)
    return 0
