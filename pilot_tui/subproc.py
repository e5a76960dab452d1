"""Starting and ending child processes (pilotctl, journalctl, firewall tools, ``--on-event`` hooks).

Every child is started with :func:`spawn`, which remembers it until it is gone, so :func:`reap_all` can end the
stragglers before a command's event loop closes: a child still running (or its pipes still open) when the loop
closes turns into "Exception ignored … Event loop is closed" on stderr, whichever task forgot it.

After a kill, the wait for the exit status is bounded. On Python 3.11
``Process.wait()`` returns only once the child's pipes are closed too, and a grandchild that inherited them (a
shell wrapper's child, a daemon a tool started) can keep them open for ever; an unbounded wait there turns a
cancelled task into a hang on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from pilot_tui.aiotime import within

KILL_WAIT_S = 5.0
"""How long a killed child is waited for (its exit status) before we move on without it."""

SETTLE_S = 0.1
"""Loop time :func:`reap_all` leaves for the pipes of exited children to be read to their end and closed."""


async def kill_and_reap(proc: asyncio.subprocess.Process, wait_s: float = KILL_WAIT_S) -> None:
    """Kill ``proc`` if it still runs, then wait at most ``wait_s`` seconds for it to be reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited between the check and the signal
        proc.kill()
    with contextlib.suppress(asyncio.TimeoutError):
        await within(proc.wait(), wait_s)


_live: weakref.WeakKeyDictionary[asyncio.subprocess.Process, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()
"""Children started by :func:`spawn` and the loop each belongs to (only that loop can wait for it)."""


async def spawn(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec(*argv, **kwargs)``, remembered for :func:`reap_all`. Raises ``OSError``."""
    proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
    _live[proc] = asyncio.get_running_loop()
    return proc


async def reap_all(wait_s: float = KILL_WAIT_S) -> int:
    """Kill and reap every child of this loop started with :func:`spawn` that still runs; returns how many."""
    loop = asyncio.get_running_loop()
    running = [proc for proc, owner in list(_live.items()) if owner is loop and proc.returncode is None]
    await asyncio.gather(*(kill_and_reap(proc, wait_s) for proc in running), return_exceptions=True)
    # A child that exited by itself can still have its pipes' end-of-file unread: Process.wait() returns at once
    # for it, and the loop needs a few more turns to read the EOF and close the pipe transports.
    await asyncio.sleep(SETTLE_S)
    return len(running)
