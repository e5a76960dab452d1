"""Ending child processes we started (pilotctl, journalctl, firewall tools, ``--on-event`` hooks).

One rule for all of them: after a kill, wait for the exit status — but only for a bounded time. On Python 3.11
``Process.wait()`` returns only once the child's pipes are closed too, and a grandchild that inherited them (a
shell wrapper's child, a daemon a tool started) can keep them open for ever; an unbounded wait there turns a
cancelled task into a hang on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib

from pilot_tui.aiotime import within

KILL_WAIT_S = 5.0
"""How long a killed child is waited for (its exit status) before we move on without it."""


async def kill_and_reap(proc: asyncio.subprocess.Process, wait_s: float = KILL_WAIT_S) -> None:
    """Kill ``proc`` if it still runs, then wait at most ``wait_s`` seconds for it to be reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited between the check and the signal
        proc.kill()
    with contextlib.suppress(asyncio.TimeoutError):
        await within(proc.wait(), wait_s)
