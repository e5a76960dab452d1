"""The --on-event hook: events reach the consumer, its answers are applied, a crash is survived."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from task_helpers import stop_tasks, wait_for

from pilot_tui.engines import updates as u
from pilot_tui.engines.hook import HookRunner, make_applier, parse_action
from pilot_tui.model import make_event

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent_consumer.py"


class FakeEngine:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.mitigated: list[str] = []

    def acknowledge(self, ids, note=None):  # type: ignore[no-untyped-def]
        self.acked += ids

    def false_positive(self, ids, note=None):  # type: ignore[no-untyped-def]
        pass

    async def mitigate(self, event_id):  # type: ignore[no-untyped-def]
        self.mitigated.append(event_id)


def test_parse_action_refuses_garbage() -> None:
    assert parse_action(b'{"id":"a","action":"ack","note":"x"}').action == "ack"  # type: ignore[union-attr]
    for bad in (b"nope", b"[]", b'{"id":1,"action":"ack"}', b'{"id":"a","action":"rm -rf"}'):
        assert parse_action(bad) is None


async def test_example_consumer_drives_the_orchestrator() -> None:
    engine = FakeEngine()
    bus = u.UpdateBus()
    hook = HookRunner(f"{sys.executable} {EXAMPLE}", make_applier(engine), bus)
    bus.subscribe(hook.on_update)
    task = asyncio.create_task(hook.run())
    try:
        crit = [make_event("203.0.113.7", "brute_force_ssh", "critical") for _ in range(2)]
        low = make_event("198.51.100.3", "web_4xx_burst", "low")
        bus.emit(u.EventsStored(at=0, events=(*crit, low), sender="", transport="stream"))
        await wait_for(lambda: engine.mitigated and engine.acked, "hook actions applied", 10)
        assert engine.mitigated == [crit[1].id] and engine.acked == [low.id]
    finally:
        await stop_tasks(task)


async def test_crashing_hook_is_restarted_and_never_blocks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "crashy.py"
    script.write_text("import sys\nsys.exit(3)\n")
    bus = u.UpdateBus()
    notices: list[u.Update] = []
    bus.subscribe(notices.append)
    hook = HookRunner(f"{sys.executable} {script}", make_applier(FakeEngine()), bus, queue_size=5)
    bus.subscribe(hook.on_update)
    task = asyncio.create_task(hook.run())
    try:
        for _ in range(3):
            bus.emit(u.EventsStored(at=0, events=(make_event("203.0.113.9", "x", "low"),), sender="", transport=""))
        await wait_for(lambda: hook.restarts >= 2, "hook restarted twice", 10)
        # a flood while the consumer is down is bounded: the oldest are dropped and counted
        bus.emit(u.EventsStored(at=0, events=tuple(make_event("203.0.113.9", "x", "low") for _ in range(50)),
                                sender="", transport=""))
        assert hook.dropped > 0
        assert any(isinstance(n, u.Notice) and "exited with status 3" in n.message for n in notices)
    finally:
        await stop_tasks(task)


async def test_a_hook_line_over_64_kib_is_skipped_and_counted_not_fatal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 item 10: a hook that printed 70,000 characters once got 1 of 7 events: the reader died at 64 KiB,
    nothing restarted, nothing said so."""
    script = tmp_path / "chatty.py"
    script.write_text(
        "import json, sys\n"
        "first = True\n"
        "for line in sys.stdin:\n"
        "    ev = json.loads(line)\n"
        "    if first:\n"
        "        print('x' * 70000, flush=True)\n"
        "        first = False\n"
        "    print(json.dumps({'id': ev['id'], 'action': 'ack'}), flush=True)\n"
    )
    engine = FakeEngine()
    bus = u.UpdateBus()
    notices: list[str] = []
    bus.subscribe(lambda x: notices.append(x.message) if isinstance(x, u.Notice) else None)
    hook = HookRunner(f"{sys.executable} {script}", make_applier(engine), bus)
    bus.subscribe(hook.on_update)
    task = asyncio.create_task(hook.run())
    try:
        evs = [make_event("203.0.113.7", "brute_force_ssh", "low", seq=i) for i in range(7)]
        for ev in evs:
            bus.emit(u.EventsStored(at=0, events=(ev,), sender="", transport="stream"))
            await asyncio.sleep(0.05)
        await wait_for(lambda: len(engine.acked) == 7, "every event acknowledged by the hook", 10)
        assert engine.acked == [e.id for e in evs] and hook.restarts == 0
        assert hook.skipped_lines == 1 and any("over 64 KiB" in n for n in notices)
    finally:
        await stop_tasks(task)


async def test_read_lines_skips_only_the_overlong_ones() -> None:
    from pilot_tui.engines.hook import read_lines

    reader = asyncio.StreamReader()
    reader.feed_data(b"a\n" + b"y" * 200 + b"\nb\n" + b"z" * 150)
    reader.feed_data(b"\nc")
    reader.feed_eof()
    assert [x async for x in read_lines(reader, limit=100)] == [b"a", None, b"b", None, b"c"]


def test_ui_mode_feeds_the_hook_each_event_once_and_closes_the_store(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``pilot-tui orchestrator --on-event CMD`` with the UI: the consumer gets each stored event once, and the
    event store is closed when the app exits (the app is stubbed: it runs the background jobs it is given)."""
    import sqlite3

    import pytest

    from pilot_tui.commands.orchestrator import serve
    from pilot_tui.engines.orchestrator import OrchestratorEngine
    from pilot_tui.store.events import EventStore

    seen = tmp_path / "seen.ndjson"
    script = tmp_path / "record.py"
    script.write_text(f"import sys\nfor line in sys.stdin:\n    open({str(seen)!r}, 'a').write(line)\n")
    engine = OrchestratorEngine(None, EventStore(tmp_path / "o.db"))  # type: ignore[arg-type]
    event = make_event("203.0.113.7", "brute_force_ssh", "high")

    class StubApp:
        def __init__(self, background: list) -> None:  # type: ignore[type-arg]
            self.background = background

        def run(self) -> None:
            async def main() -> None:
                jobs = [asyncio.create_task(job()) for job in self.background]
                try:
                    engine.bus.emit(u.EventsStored(at=0, events=(event,), sender="", transport="stream"))
                    await wait_for(lambda: seen.exists() and seen.read_text().count("\n") >= 1, "event hooked", 10)
                    await asyncio.sleep(0.3)  # a second copy, if the hook were fed twice, lands by now
                finally:
                    await stop_tasks(*jobs)

            asyncio.run(main())

    monkeypatch.setattr("pilot_tui.ui.app.make_app", lambda **kw: StubApp(kw["background"]))
    assert serve(engine, headless=False, on_event=f"{sys.executable} {script}") == 0
    assert [line for line in seen.read_text().splitlines() if event.id in line] and seen.read_text().count("\n") == 1
    with pytest.raises(sqlite3.ProgrammingError):  # closed: the WAL is folded back, nothing is left open
        engine.store.total()
