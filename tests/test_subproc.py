"""Ending child processes: a kill is followed by a bounded wait, so shutdown never hangs on a stray grandchild."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from pilot_tui.subproc import kill_and_reap


async def test_kill_and_reap_does_not_hang_when_a_grandchild_holds_the_pipes() -> None:
    # `sh` starts a background sleep that inherits stdout, then becomes a sleep itself: killing it leaves the pipe
    # open, and on Python 3.11 Process.wait() would wait for that pipe for ever.
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 30 & echo started; exec sleep 30", stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"started\n"  # the grandchild exists now
    try:
        started = time.monotonic()
        await kill_and_reap(proc, wait_s=0.5)
        assert time.monotonic() - started < 3
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the grandchild too
    assert await asyncio.wait_for(proc.stdout.read(), 5) == b""  # the grandchild is gone: the pipe ends
    await asyncio.wait_for(proc.wait(), 5)  # and the exit status arrives
    assert proc.returncode == -signal.SIGKILL


async def test_kill_and_reap_leaves_a_finished_process_alone() -> None:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    await kill_and_reap(proc)
    assert proc.returncode == 0


async def test_reap_all_ends_the_children_a_task_forgot() -> None:
    from pilot_tui.subproc import reap_all, spawn

    forgotten = await spawn("sleep", "30", stdout=asyncio.subprocess.PIPE)
    finished = await spawn("true")
    await finished.wait()
    assert await reap_all(wait_s=5) == 1  # only the one still running
    assert forgotten.returncode == -signal.SIGKILL
    assert await reap_all() == 0
