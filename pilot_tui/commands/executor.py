"""``pilot-tui executor``: apply blocks an orchestrator asks for over Pilot; UI or headless JSON lines."""

from __future__ import annotations

import argparse
import sys

from pilot_tui import paths
from pilot_tui.engines.executor import ExecutorEngine
from pilot_tui.pilot.errors import PilotError

from .common import fail, json_line_printer, make_pilotctl, run_until_signal

DEFAULT_BLOCK_DURATION_S = 3600


def block_duration_s(value: object) -> int:
    """Seconds from ``--block-duration`` (already parsed) or the config's ``block_duration`` ("10m" or a number).

    The config file is read raw, so a string there goes through the same parser as the flag. Raises ValueError.
    """
    if value is None:
        return DEFAULT_BLOCK_DURATION_S
    if isinstance(value, str):
        from pilot_tui.cli import duration

        try:
            value = duration(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"block_duration: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ValueError(f"block duration {value!r} must be at least 1 second")
    return int(value)


def build_engine(args: argparse.Namespace) -> ExecutorEngine:
    """The engine for these arguments (raises ValueError for a bad --obey/--allow, PilotError for pilotctl)."""
    return ExecutorEngine(
        make_pilotctl(args.pilotctl),
        paths.db_path("executor", args.state_dir),
        backend=args.backend or "dry-run",
        obey=list(args.obey or []),
        allowlist=list(args.allowlist or []),
        default_duration_s=block_duration_s(getattr(args, "block_duration", None)),
    )


def run(args: argparse.Namespace) -> int:
    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("executor", exc.message, exc.hint)
    except ValueError as exc:
        return fail("executor", str(exc))
    if not args.obey:
        print("pilot-tui executor: no --obey given: every request will be refused until you name the "
              "orchestrator(s) to obey", file=sys.stderr)
    if args.headless:
        engine.bus.subscribe(json_line_printer(sys.stdout))

        async def main() -> None:
            try:
                await engine.run()
            finally:
                await engine.close()

        return run_until_signal(main)
    from pilot_tui.ui.app import make_app

    make_app(executor=engine).run()
    return 0
