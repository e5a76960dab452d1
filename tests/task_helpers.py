"""Waiting for a condition and stopping background asyncio tasks inside a test, both bounded in time.

A bare ``task.cancel()`` at the end of a test leaves the task's clean-up (closing listeners, killing pilotctl
processes) to pytest-asyncio's loop teardown, where no per-test timeout applies: a clean-up that never ends hangs
the whole run. ``stop_tasks`` runs that clean-up inside the test and fails it, naming the task, when an engine does
not stop within the bound — an engine that cannot be stopped is a bug a user would see as a hung Ctrl-C.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(cond: Callable[[], object], what: str = "condition", timeout: float = 20.0) -> None:
    """Poll ``cond`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


async def stop_tasks(*tasks: asyncio.Task[Any], within: float = 10.0) -> None:
    """Cancel ``tasks`` and wait until each has finished; assert that happens within ``within`` seconds."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=within)
    assert not pending, f"did not stop within {within:g}s of cancel: {[t.get_name() for t in pending]}"
    for task in tasks:  # collect results so no "exception was never retrieved" noise reaches the log
        if not task.cancelled():
            task.exception()
