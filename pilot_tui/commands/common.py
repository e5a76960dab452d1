"""Plumbing every mode shares: finding pilotctl, headless JSON output, clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import orjson

from pilot_tui.aiotime import within
from pilot_tui.engines.updates import Update
from pilot_tui.paths import StateError
from pilot_tui.pilot.binary import resolve_pilotctl
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError
from pilot_tui.subproc import reap_all


def fail(mode: str, message: str, hint: str = "") -> int:
    """Print a one-line error (and pilotctl's hint) to stderr; return exit status 1."""
    print(f"pilot-tui {mode}: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return 1


def make_pilotctl(explicit: str | None) -> Pilotctl:
    """The driver for ``--pilotctl`` / ``$PILOTCTL`` / PATH / the pilotprotocol wheel (raises BinaryNotFound)."""
    return Pilotctl(resolve_pilotctl(explicit))


def json_line_printer(out: TextIO, wanted: tuple[type[Update], ...] | None = None) -> Callable[[Update], None]:
    """A bus subscriber that writes selected updates as one JSON object per line (``--headless``)."""

    def emit(update: Update) -> None:
        if wanted is not None and not isinstance(update, wanted):
            return
        out.write(orjson.dumps(update.to_dict(), default=_default).decode() + "\n")
        out.flush()

    return emit


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError


STOP_TASKS_S = 10.0
"""How long tasks still running when ``main`` ends get to finish cancelling before the children are reaped."""


async def _stop_other_tasks() -> None:
    """Cancel the tasks ``main`` left behind and wait (bounded) for them, before :func:`reap_all`: one of them could
    otherwise start a pilotctl child after the reaping, while ``asyncio.run`` cancels it on the way out."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    with contextlib.suppress(asyncio.TimeoutError):
        await within(asyncio.gather(*others, return_exceptions=True), STOP_TASKS_S)


def run_until_signal(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main()`` until it ends or SIGINT/SIGTERM arrives; then cancel it so ``finally`` blocks flush state.

    A pilotctl failure or an unusable state file that ends ``main`` is one line on stderr and exit status 1 (the
    engines ride out a state file that fails while they run; this is for one that fails as they start)."""

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(main())
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return 0
        except PilotError as exc:
            print(f"pilot-tui: {exc.one_line()}", file=sys.stderr)
            return 1
        except StateError as exc:
            print(f"pilot-tui: {exc}", file=sys.stderr)
            return 1
        finally:
            await _stop_other_tasks()
            await reap_all()  # no child may outlive the loop (see pilot_tui.subproc)
        return 0

    return asyncio.run(runner())
