"""Starting and ending child processes (pilotctl, journalctl, firewall tools, ``--on-event`` hooks).

Every child is started with :func:`spawn`, which remembers it until it has exited and its pipes are closed, so
:func:`reap_all` can end the stragglers before a command's event loop closes: a child still running (or its pipes
still open) when the loop closes turns into "Exception ignored … Event loop is closed" on stderr, whichever task
forgot it.

After a kill, the wait for the exit status is bounded. On Python 3.11
``Process.wait()`` returns only once the child's pipes are closed too, and a grandchild that inherited them (a
shell wrapper's child, a daemon a tool started) can keep them open for ever; an unbounded wait there turns a
cancelled task into a hang on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pilot_tui.aiotime import within

KILL_WAIT_S = 5.0
"""How long a killed child is waited for (its exit status) before we move on without it."""

SETTLE_S = 0.1
"""Loop time :func:`reap_all` leaves for the closed pipes' last callbacks to run."""


async def kill_and_reap(proc: asyncio.subprocess.Process, wait_s: float = KILL_WAIT_S) -> None:
    """Kill ``proc`` if it still runs, then wait at most ``wait_s`` seconds for it to be reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited between the check and the signal
        proc.kill()
    with contextlib.suppress(asyncio.TimeoutError):
        await within(proc.wait(), wait_s)


_live: dict[asyncio.subprocess.Process, asyncio.AbstractEventLoop] = {}
"""Children started by :func:`spawn` and the loop each belongs to (only that loop can wait for it). Held strongly
until finished: a child its caller dropped with a pipe still open is exactly the one that must still be closed."""


def transport_of(proc: asyncio.subprocess.Process) -> asyncio.SubprocessTransport | None:
    """The child's :class:`asyncio.SubprocessTransport` (a public class: ``close()``, ``get_pipe_transport()``).

    :class:`asyncio.subprocess.Process` keeps it in ``_transport`` and has no accessor; this is the one place that
    reaches in, and ``tests/test_subproc.py`` checks it still finds it on the running Python. Should a Python move
    it, this returns ``None`` and the callers fall back to what the public API offers (exit status, kill)."""
    transport = getattr(proc, "_transport", None)
    return transport if isinstance(transport, asyncio.SubprocessTransport) else None


def _finished(proc: asyncio.subprocess.Process) -> bool:
    """Exited, and every pipe read to its end or closed: nothing of it can outlive its loop any more."""
    if proc.returncode is None:
        return False
    transport = transport_of(proc)
    return transport is None or all(
        pipe is None or pipe.is_closing() for pipe in (transport.get_pipe_transport(fd) for fd in (0, 1, 2))
    )


async def spawn(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec(*argv, **kwargs)``, remembered for :func:`reap_all`. Raises ``OSError``."""
    for old in [p for p in _live if _finished(p)]:
        del _live[old]
    proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
    _live[proc] = asyncio.get_running_loop()
    return proc


async def reap_all(wait_s: float = KILL_WAIT_S) -> int:
    """End every child of this loop started with :func:`spawn`, running or not; returns how many still ran.

    Each child's transport is closed while the loop still runs: that kills a child that still runs and closes its
    pipes, so nothing is left for the transport's ``__del__`` to do after the loop has closed. Waiting alone is not
    enough: a child that exited by itself can still have its pipes' end-of-file unread, and on a busy machine the
    loop may need longer than any fixed pause to read it. The exit statuses are then waited for, bounded.
    """
    loop = asyncio.get_running_loop()
    mine = [proc for proc, owner in list(_live.items()) if owner is loop]
    running = [proc for proc in mine if proc.returncode is None]
    for proc in mine:
        # Process has no public close(); its transport's close() is the documented SubprocessTransport.close()
        if (transport := transport_of(proc)) is not None:
            transport.close()
        del _live[proc]
    await asyncio.gather(*(kill_and_reap(proc, wait_s) for proc in running), return_exceptions=True)
    await asyncio.sleep(SETTLE_S)
    return len(running)
