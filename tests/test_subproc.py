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


def test_no_child_transport_outlives_its_loop() -> None:
    """Children whose caller dropped them with a pipe still open, then the loop closes: each transport must have
    been closed while the loop ran, or its __del__ prints "Exception ignored … Event loop is closed" (as the
    orchestrator once did at SIGTERM)."""
    import subprocess
    import sys

    script = """
import asyncio, gc
from pilot_tui.subproc import reap_all, spawn

async def main():
    for _ in range(5):
        proc = await spawn("sh", "-c", "echo out; echo err >&2", stdout=-1, stderr=-1)
        await proc.wait()
        del proc
    # a child that exits while something it started keeps its stdout open (a daemon a tool launched)
    proc = await spawn("sh", "-c", "sleep 1 & echo started", stdout=-1)
    assert await proc.stdout.readline() == b"started\\n"
    await asyncio.wait_for(proc.wait(), 5)
    del proc
    await reap_all(wait_s=2)

for _ in range(3):
    asyncio.run(main())
    gc.collect()
print("done")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.stdout.strip() == "done", run.stderr[-2000:]
    assert "Exception ignored" not in run.stderr, run.stderr[-2000:]


async def test_the_transport_shim_finds_the_child_transport_on_this_python() -> None:
    """``transport_of`` is the one reach into asyncio's private ``Process._transport``: if a Python release moves
    it, this fails here instead of :func:`reap_all` silently leaving pipes open at shutdown."""
    from pilot_tui.subproc import _finished, reap_all, spawn, transport_of

    proc = await spawn("sh", "-c", "echo out", stdout=asyncio.subprocess.PIPE)
    transport = transport_of(proc)
    assert isinstance(transport, asyncio.SubprocessTransport) and transport.get_pid() == proc.pid
    await proc.wait()
    assert proc.stdout is not None and await proc.stdout.read() == b"out\n"
    await asyncio.sleep(0.05)  # the pipe's end-of-file callback
    assert _finished(proc)  # exited and its pipe closed: spawn() may forget it
    assert await reap_all(wait_s=2) == 0 and transport.is_closing()


async def test_without_a_transport_the_shim_falls_back_to_the_exit_status() -> None:
    from pilot_tui.subproc import _finished, transport_of

    class Bare:  # what a Process would look like if a Python release renamed the attribute
        returncode = 0

    assert transport_of(Bare()) is None and _finished(Bare())  # type: ignore[arg-type]
