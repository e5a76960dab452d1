"""A bounded wait must never swallow a cancellation (Python 3.11's wait_for does when both land in one turn)."""

from __future__ import annotations

import asyncio

import pytest

from pilot_tui.aiotime import within


async def _cancel_as_it_wakes(wait: object) -> asyncio.Task[None]:
    event = asyncio.Event()

    async def engine_loop() -> None:
        await wait(event.wait(), 5)  # type: ignore[operator]
        await asyncio.sleep(30)  # where a lost cancel would leave the "engine" running

    task = asyncio.create_task(engine_loop())
    await asyncio.sleep(0)  # the task now waits on the event
    event.set()
    task.cancel()  # the wake-up and the cancel arrive in the same loop turn
    await asyncio.wait([task], timeout=1)
    return task


async def test_within_keeps_a_cancel_that_arrives_with_the_wake_up() -> None:
    for _ in range(20):
        task = await _cancel_as_it_wakes(within)
        assert task.done() and task.cancelled()


async def test_timeouts_still_fire() -> None:
    with pytest.raises(asyncio.TimeoutError):
        await within(asyncio.sleep(5), 0.05)
    assert await within(asyncio.sleep(0, result="ok"), 1) == "ok"
