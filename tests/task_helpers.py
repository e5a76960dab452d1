"""Stopping background asyncio tasks inside a test, bounded in time.

A bare ``task.cancel()`` at the end of a test leaves the task's clean-up (closing listeners, killing pilotctl
processes) to pytest-asyncio's loop teardown, where no per-test timeout applies: a clean-up that never ends hangs
the whole run. ``stop_tasks`` runs that clean-up inside the test and fails it, naming the task, when an engine does
not stop within the bound — an engine that cannot be stopped is a bug a user would see as a hung Ctrl-C.
"""

from __future__ import annotations

import asyncio
from typing import Any


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
