"""InboxWatcher over a fake driver: once only, oldest first, errors become status, polling and notifications."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from test_executor_support import ORCH_ADDR, FakePilot, rfc3339_ns

from pilot_tui.pilot.driver import InboxMessage
from pilot_tui.pilot.errors import NotRunning, Timeout
from pilot_tui.pilot.inbox import InboxWatcher, WatcherStatus, oldest_first, parse_iso

pytestmark = pytest.mark.timeout(20)


async def take(watcher: InboxWatcher, n: int, timeout: float = 3.0) -> list[InboxMessage]:
    """The first ``n`` messages the watcher yields (fails the test if they do not come in time)."""
    got: list[InboxMessage] = []

    async def collect() -> None:
        async with contextlib.aclosing(watcher.messages()) as stream:
            async for msg in stream:
                got.append(msg)
                if len(got) == n:
                    return

    await asyncio.wait_for(collect(), timeout)
    return got


def test_parse_iso_forms() -> None:
    assert parse_iso("2026-11-25T12:00:03.123456789Z") == pytest.approx(1795608003.123456789)
    assert parse_iso("2026-11-25T12:00:03Z") == 1795608003.0
    assert parse_iso("2026-11-25T13:00:03+01:00") == 1795608003.0
    assert parse_iso("yesterday") is None
    assert parse_iso("2026-13-45T99:00:00Z") is None


def test_oldest_first_sorts_by_received_at_and_falls_back_to_listing_order() -> None:
    def m(mid: str, at: str) -> InboxMessage:
        return InboxMessage(mid, ORCH_ADDR, at, "JSON", "", 0)

    listing = [m("b", rfc3339_ns(20)), m("c", rfc3339_ns(30)), m("a", rfc3339_ns(10))]  # not quite sorted
    assert [x.message_id for x in oldest_first(listing)] == ["a", "b", "c"]
    same = [m("new", rfc3339_ns(5)), m("old", rfc3339_ns(5))]  # a tie keeps pilotctl's newest-first order
    assert [x.message_id for x in oldest_first(same)] == ["old", "new"]
    broken = [m("z", "garbage"), m("y", rfc3339_ns(1))]
    assert [x.message_id for x in oldest_first(broken)] == ["y", "z"]


async def test_yields_oldest_first_and_never_twice() -> None:
    pilot = FakePilot()
    now = time.time()
    pilot.deliver(ORCH_ADDR, "second", at=now - 5, message_id="m2")
    pilot.deliver(ORCH_ADDR, "first", at=now - 10, message_id="m1")  # delivered later, received earlier
    watcher = InboxWatcher(pilot, poll_interval=0.02, use_watchdog=False)
    assert [m.message_id for m in await watcher.poll_once()] == ["m1", "m2"]
    assert await watcher.poll_once() == []
    pilot.deliver(ORCH_ADDR, "third", message_id="m3")
    fresh = await watcher.poll_once()
    assert [(m.message_id, m.data) for m in fresh] == [("m3", "third")]
    assert watcher.inbox_ids == {"m1", "m2", "m3"}


async def test_seen_callback_filters_and_is_asked_once_per_id() -> None:
    pilot = FakePilot()
    for i in range(4):
        pilot.deliver(ORCH_ADDR, f"msg {i}", at=time.time() - 10 + i, message_id=f"m{i}")
    asked: list[str] = []

    def seen(mid: str) -> bool:
        asked.append(mid)
        return mid in {"m0", "m2"}

    watcher = InboxWatcher(pilot, seen=seen, poll_interval=0.02, use_watchdog=False)
    assert [m.message_id for m in await watcher.poll_once()] == ["m1", "m3"]
    await watcher.poll_once()
    await watcher.poll_once()
    assert sorted(asked) == ["m0", "m1", "m2", "m3"]


async def test_full_data_is_yielded() -> None:
    pilot = FakePilot()
    body = '{"x": "' + "y" * 500 + '"}'
    pilot.deliver(ORCH_ADDR, body)
    [msg] = await InboxWatcher(pilot, use_watchdog=False).poll_once()
    assert msg.data == body and msg.sender == ORCH_ADDR


async def test_pilot_errors_become_status_and_backoff_then_recover() -> None:
    pilot = FakePilot()
    pilot.fail_next("inbox_listing", NotRunning("daemon is not running", hint="start the daemon"),
                    Timeout("too slow"))
    pilot.deliver(ORCH_ADDR, "hello", message_id="m1")
    statuses: list[WatcherStatus] = []
    watcher = InboxWatcher(pilot, poll_interval=0.01, use_watchdog=False, on_status=statuses.append)
    [msg] = await take(watcher, 1)
    assert msg.message_id == "m1"
    errors = [s.last_error for s in statuses if s.state == "backoff"]
    assert errors[0] is not None and errors[0].code == "not_running" and errors[0].hint == "start the daemon"
    assert errors[-1] is not None and errors[-1].code == "timeout"
    assert max(s.consecutive_errors for s in statuses) == 2
    assert watcher.status.state == "closed"  # the generator finished when take() returned
    assert watcher.status.messages_seen == 1 and watcher.status.last_message_at is not None
    assert watcher.status.consecutive_errors == 0


async def test_poll_fallback_without_watchdog_picks_up_new_messages() -> None:
    pilot = FakePilot(inbox_dir="")
    watcher = InboxWatcher(pilot, poll_interval=0.05, use_watchdog=False)
    task = asyncio.create_task(take(watcher, 2))
    await asyncio.sleep(0.12)
    assert watcher.status.state == "polling" and not watcher.notifications
    pilot.deliver(ORCH_ADDR, "a", message_id="a")
    await asyncio.sleep(0.12)
    pilot.deliver(ORCH_ADDR, "b", message_id="b")
    got = await task
    assert [m.message_id for m in got] == ["a", "b"]


async def test_directory_notification_wakes_before_the_poll_interval(tmp_path: Path) -> None:
    pilot = FakePilot(inbox_dir=str(tmp_path))
    watcher = InboxWatcher(pilot, poll_interval=30.0)  # only a notification can be this fast
    task = asyncio.create_task(take(watcher, 1, timeout=5.0))
    for _ in range(100):
        if watcher.notifications:
            break
        await asyncio.sleep(0.02)
    assert watcher.status.state == "watching"
    started = time.monotonic()
    pilot.deliver(ORCH_ADDR, "woken", message_id="w1")
    (tmp_path / "w1.json").write_text("{}")  # what the daemon does when a message lands
    [msg] = await task
    assert msg.message_id == "w1" and time.monotonic() - started < 3.0
    await watcher.close()
    assert not watcher.notifications


async def test_close_ends_the_iteration() -> None:
    watcher = InboxWatcher(FakePilot(), poll_interval=10.0, use_watchdog=False)
    got: list[InboxMessage] = []

    async def run() -> None:
        async for msg in watcher.messages():
            got.append(msg)

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    await watcher.close()
    await asyncio.wait_for(task, 2.0)
    assert got == [] and watcher.status.state == "closed"


async def test_prune_clears_only_what_is_processed() -> None:
    pilot = FakePilot()
    now = time.time()
    pilot.deliver(ORCH_ADDR, "ancient", at=now - 7200, message_id="old-done")
    pilot.deliver(ORCH_ADDR, "old", at=now - 5000, message_id="old-pending")
    pilot.deliver(ORCH_ADDR, "new", at=now - 10, message_id="new")
    processed = {"old-done", "new"}
    watcher = InboxWatcher(pilot, seen=processed.__contains__, use_watchdog=False)
    assert await watcher.prune(3600) == 1  # the cut moved to just before old-pending
    assert [m["message_id"] for m in pilot.messages] == ["old-pending", "new"]
    assert pilot.cleared_before[-1] == pytest.approx(5001, abs=2)
    processed.add("old-pending")
    assert await watcher.prune(3600) == 1
    assert pilot.cleared_before[-1] == 3600
    assert [m["message_id"] for m in pilot.messages] == ["new"]


async def test_prune_stops_at_an_unprocessed_message_with_an_unreadable_time() -> None:
    pilot = FakePilot()
    pilot.deliver(ORCH_ADDR, "x", received_at="not a time", message_id="odd")
    watcher = InboxWatcher(pilot, use_watchdog=False)
    assert await watcher.prune(1) == 0 and pilot.calls.get("inbox_clear") is None


async def test_messages_left_when_the_consumer_stops_come_again_next_time() -> None:
    pilot = FakePilot()
    for i in range(3):
        pilot.deliver(ORCH_ADDR, str(i), at=time.time() - 10 + i, message_id=f"m{i}")
    watcher = InboxWatcher(pilot, poll_interval=0.02, use_watchdog=False)
    assert [m.message_id for m in await take(watcher, 1)] == ["m0"]
    assert [m.message_id for m in await take(watcher, 2)] == ["m1", "m2"]
