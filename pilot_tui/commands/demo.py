"""``pilot-tui demo``: the whole story on one machine, no Pilot install, no root.

Five pilot-sim nodes in a temporary directory — ``gcp-log-oracle``, ``local-threat-orchestrator`` and
``aws-exec-node`` with trust oracle↔orchestrator and orchestrator↔executor, plus two walk-ons: ``web-2-oracle``
(trusted) sends one hostile payload the orchestrator quarantines, and ``edge-proxy-4`` (not trusted) asks for a
handshake the analyst can approve or reject in the trust panel. An attack story is written live into auth.log /
access.log / ufw.log (:mod:`pilot_tui.sim.loggen_story`: the first detection within a second or two); the real
oracle, orchestrator and executor engines (the executor in dry-run) talk through the emulator exactly as they would
through pilotctl. Everything started is stopped on exit; ``--keep DIR`` keeps the state files (and logs) so
``pilot-tui export --state-dir DIR`` works on them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ORACLE, ORCH, EXEC = "gcp-log-oracle", "local-threat-orchestrator", "aws-exec-node"
SENSOR_2, STRANGER = "web-2-oracle", "edge-proxy-4"
"""The walk-ons: a second sensor (trusted) that sends one hostile payload, and a node asking to be trusted."""

HANDSHAKE_AT = 4.0
HOSTILE_AT = 16.0
"""Story seconds (``speed=1``) of the walk-ons' entrances: every panel has something to show within 20 s."""

HOSTILE_PAYLOAD = (
    b'{"source_ip": "203.0.113.250", "anomaly": "[blink]pwned[/blink] \\u001b]8;;http://evil.example\\u0007",'
    b' "severity": "apocalyptic", "evidence": ["\\u001b[2J\\u001b[31mrm -rf /"]}\n'
)
"""What a compromised or broken sensor might send: markup, terminal escapes and a severity that does not exist."""


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
    nodes: dict[str, Any] = field(default_factory=dict)
    binary: str = ""
    seed: int = 7
    with_walk_ons: bool = True

    def story(self, speed: float = 1.0) -> Any:
        """A coroutine factory that plays the attack story into the log files (looping) and, once, the walk-ons'
        entrances (:meth:`walk_ons`)."""
        from pilot_tui.sim.loggen_story import play_story

        async def attack_story() -> None:
            extras = asyncio.create_task(self.walk_ons(speed))
            try:
                await play_story(self.logs, speed=speed, loop=True, seed=self.seed)
            finally:
                extras.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await extras

        return attack_story

    async def walk_ons(self, speed: float = 1.0) -> None:
        """``edge-proxy-4`` asks the orchestrator for trust, then ``web-2-oracle`` sends it a hostile payload.

        Their nodes start here, in the background, so the demo's own start (and its first detection) does not wait
        for them."""
        from pilot_tui.pilot.driver import Pilotctl
        from pilot_tui.pilot.errors import PilotError

        if not self.with_walk_ons:
            return
        began = asyncio.get_running_loop().time()
        try:
            started = await asyncio.to_thread(self.cluster.start, SENSOR_2, STRANGER, trust=[(SENSOR_2, ORCH)])
        except Exception as exc:  # the demo goes on without them; say why in the log, not on the screen
            log.warning("demo walk-on nodes did not start: %s", exc)
            return
        self.nodes.update({node.hostname: node for node in started})

        async def at(story_s: float) -> None:
            await asyncio.sleep(max(0.0, began + story_s / speed - asyncio.get_running_loop().time()))

        await at(HANDSHAKE_AT)
        with contextlib.suppress(PilotError):  # the demo goes on without it; the trust panel stays empty
            await Pilotctl(self.binary, env=self.nodes[STRANGER].env).handshake(
                ORCH, "edge-proxy-4 wants to send detections")
        await at(HOSTILE_AT)
        with contextlib.suppress(PilotError):
            await Pilotctl(self.binary, env=self.nodes[SENSOR_2].env).send_message(
                ORCH, HOSTILE_PAYLOAD, msg_type="json")


@contextmanager
def demo_world(root: Path | None = None, *, seed: int = 7, walk_ons: bool = True,
               make_inboxes: bool = True, while_starting: Callable[[], object] | None = None) -> Iterator[DemoWorld]:
    """Start the emulated nodes and build the three engines; stop everything afterwards and remove ``root`` when it
    was made here (a ``root`` passed in keeps its state files and logs; only the emulator's files go).

    The nodes start in a thread while this one imports the engines and runs ``while_starting`` (the demo imports its
    UI there): their start is mostly waiting for the node processes, so the two overlap instead of adding up.
    ``make_inboxes=False`` leaves the nodes' inbox dirs to their first message, as a daemon does (``python -m bench
    demo`` measures what that costs)."""
    from pilot_tui.sim.cluster import SimCluster

    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="pilot-tui-demo-")) if root is None else root
    cluster = SimCluster(root / "sim")
    try:
        # leaving this block waits for the start to finish, even on an error here, so stop_all() sees every node
        with ThreadPoolExecutor(1, thread_name_prefix="demo-nodes") as pool:
            starting = pool.submit(cluster.start, ORACLE, ORCH, EXEC, trust=[(ORACLE, ORCH), (ORCH, EXEC)],
                                   parallel=True)
            from pilot_tui.detect import Detector, load_rules
            from pilot_tui.engines.executor import ExecutorEngine
            from pilot_tui.engines.oracle import OracleConfig, OracleEngine
            from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
            from pilot_tui.pilot.driver import Pilotctl
            from pilot_tui.sim.loggen_story import STORY_FILES
            from pilot_tui.sim.proto import inbox_dir
            from pilot_tui.sources.multi import open_sources
            from pilot_tui.store.events import EventStore
            from pilot_tui.store.outbox import Outbox

            if while_starting is not None:
                while_starting()
            rules = load_rules()
            binary = sim_binary()
            nodes = {n.hostname: n for n in starting.result()}
        for node in nodes.values() if make_inboxes else ():
            # A daemon creates its inbox dir with the first message; until then an inbox watcher cannot watch it and
            # polls instead — here each poll is a Python pilot-sim process (~0.1 s of CPU), twice a second per node.
            inbox_dir(node.env).mkdir(parents=True, exist_ok=True)
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
            Detector(rules, sensor=ORACLE), OracleConfig(peer=ORCH, sensor=ORACLE, connect_timeout=5.0),
        )
        executor = ExecutorEngine(
            Pilotctl(binary, env=nodes[EXEC].env), root / "executor.db", backend="dry-run", obey=[ORCH],
            poll_interval=0.5,
        )
        try:
            yield DemoWorld(root, logs, cluster, oracle, orchestrator, executor, nodes, binary, seed, walk_ons)
        finally:  # the app (or the caller) has stopped the engines: their state files can be closed
            orchestrator.store.close()
            outbox.close()
            executor.store.close()
    finally:
        cluster.stop_all()
        shutil.rmtree(root if own_root else root / "sim", ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from pilot_tui.paths import StateError, ensure_private_dir

    from .common import fail

    speed, seed, keep = getattr(args, "speed", 1.0), getattr(args, "seed", 7), getattr(args, "keep", None)
    try:
        root = ensure_private_dir(Path(keep).expanduser()) if keep else None
        # the UI's imports (Textual, ~0.3 s) run while the emulated nodes start
        world_cm = demo_world(root, seed=seed, while_starting=lambda: importlib.import_module("pilot_tui.ui.app"))
        world = world_cm.__enter__()
    except (FileNotFoundError, StateError) as exc:
        return fail("demo", str(exc))
    except Exception as exc:  # the emulator could not start: say why, not a traceback
        return fail("demo", f"could not start the emulated network: {exc}")
    try:
        from pilot_tui.ui.app import make_app

        app = make_app(oracle=world.oracle, orchestrator=world.orchestrator, executor=world.executor, demo=True,
                       background=[world.story(speed)])
        # A dropped SSH session (SIGHUP) or a kill (SIGTERM) must still stop the nodes and remove the temp dir.
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, lambda *_: app.exit())
        app.run()
    finally:
        world_cm.__exit__(None, None, None)
    if root is not None:
        print(f"demo state kept in {root} (orchestrator.db, oracle.db, executor.db, logs/); for example:\n"
              f"  pilot-tui export --state-dir {root} --format ndjson")
    return 0
