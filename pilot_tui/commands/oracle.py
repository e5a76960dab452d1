"""``pilot-tui oracle``: tail logs, detect, keep a durable outbox, send to the orchestrator; UI or headless."""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import socket
import sys
from collections.abc import Mapping

from pilot_tui import paths
from pilot_tui.engines import updates as u
from pilot_tui.engines.oracle import OracleConfig, OracleEngine
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.outbox import Outbox

from .common import fail, json_line_printer, make_pilotctl, run_until_signal


def default_sensor() -> str:
    """This host's name, reduced to the characters a sensor name may hold."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.") or "sensor"
    return name[:63]


def check_logs(logs: list[str]) -> str | None:
    """A one-line problem with the ``--log`` paths, or ``None``. A file may be missing (we wait for it); its
    directory may not."""
    from pilot_tui.sources.identity import not_a_log_file

    for log in logs:
        path = os.path.expanduser(log)
        if glob.has_magic(path):
            continue
        special = not_a_log_file(path)  # a FIFO would block the tailer's open until a writer came
        if special:
            return f"--log {log}: {special}"
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return f"--log {log}: directory {parent} does not exist"
        if os.path.exists(path) and not os.access(path, os.R_OK):
            return f"--log {log}: permission denied (run as a user that can read it, e.g. in group adm)"
    return None


CONNECT_TIMEOUT_ENV = "PILOT_TUI_CONNECT_TIMEOUT"
"""Seconds a stream ``connect`` waits for the orchestrator's reply before it counts as failed and is retried
(default 10). A lost stream costs this long; the chaos suite sets ~1 s so a lossy network (10 % drops) still
drains quickly. Not a flag on purpose: it is a tuning knob for tests and unusual links, not everyday use."""


def connect_timeout_from_env(env: Mapping[str, str] | None = None) -> float:
    """``$PILOT_TUI_CONNECT_TIMEOUT`` as seconds (0.1 … 300), or the engine's default; ValueError when malformed."""
    raw = (os.environ if env is None else env).get(CONNECT_TIMEOUT_ENV, "").strip()
    if not raw:
        return OracleConfig(peer="").connect_timeout
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{CONNECT_TIMEOUT_ENV}={raw!r}: not a number of seconds") from None
    if not 0.1 <= value <= 300:
        raise ValueError(f"{CONNECT_TIMEOUT_ENV}={raw!r}: must be between 0.1 and 300 seconds")
    return value


HEDGE_ENV = "PILOT_TUI_HEDGE"
"""``1`` sends a small batch a second time when its connect is slow (see :mod:`pilot_tui.engines.sender`): for
paths whose tail is random loss; on real 1.18 daemons the tail is the receiver's SYN rate limit, which a duplicate
feeds, so it is off by default."""


def build_engine(args: argparse.Namespace, *, pilotctl: Pilotctl | None = None) -> OracleEngine:
    """Wire sources, rules, outbox and sender for these arguments (raises ValueError / PilotError / RuleError)."""
    from pilot_tui.detect import Detector, load_rules
    from pilot_tui.sources.multi import open_sources

    logs = list(args.log or [])
    if not logs and args.journal is None:
        raise ValueError("nothing to watch: give --log PATH (repeatable) and/or --journal [UNIT ...]")
    if not args.peer:
        raise ValueError("--peer HOST is required (the orchestrator's Pilot hostname or address)")
    problem = check_logs(logs)
    if problem:
        raise ValueError(problem)
    sensor = args.sensor or default_sensor()
    outbox = Outbox(paths.db_path("oracle", args.state_dir))
    sources = open_sources(logs, outbox.offsets(), from_start=bool(args.from_start),
                           journal_units=None if args.journal is None else list(args.journal))
    rules = load_rules(rules_file=args.rules)
    detector = Detector(rules, allowlist=list(args.allowlist or []), sensor=sensor)
    config = OracleConfig(peer=args.peer, port=args.port or 1000, transport=args.transport or "stream",
                          sensor=sensor, connect_timeout=connect_timeout_from_env(),
                          hedge=os.environ.get(HEDGE_ENV, "").strip() in ("1", "true", "yes"))
    return OracleEngine(pilotctl or make_pilotctl(args.pilotctl), outbox, [sources], detector, config)


def run(args: argparse.Namespace) -> int:
    from pilot_tui.detect import RuleError

    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("oracle", exc.message, exc.hint)
    except (ValueError, RuleError, OSError) as exc:
        return fail("oracle", str(exc))

    async def start_report() -> None:
        from .doctor import announce_start

        await announce_start(engine, list(args.log or []), None if args.journal is None else list(args.journal))

    if args.headless:
        engine.bus.subscribe(json_line_printer(sys.stdout, (u.Detected, u.SendResult, u.PeerState, u.SourceError,
                                                            u.Notice)))

        async def main() -> None:
            said = asyncio.create_task(start_report())  # files, journal and peer: said at once, not after a send
            try:
                await engine.run()
            finally:
                said.cancel()
                engine.outbox.close()

        return run_until_signal(main)
    from pilot_tui.ui.app import make_app

    try:
        make_app(oracle=engine, background=[start_report], keymap=getattr(args, "keymap", None)).run()
    finally:
        engine.outbox.close()  # as headless mode does: pending rows and offsets are already committed
    return 0
