"""UI benchmark: keypress → render at 50,000 events, the UI cost of one new event at 1k vs 50k, and memory.

    python bench/ui_bench.py [--events 50000] [--presses 60] [--out bench/results/ui.json]

How it measures (headless Textual app, 120×40, engines over a temp-dir store filled with sample events):

* **keypress → render**: a key event is handed to the app the way the terminal driver does; the clock stops when
  the app and the screen have processed every resulting message *and* the screen update (reflow if needed, then
  the compositor render of the changed regions) has been produced — what ``pilot.pause()`` forces, without the
  pilot's idle sleeps. A real terminal adds up to one refresh interval (1/60 s) before the paint is scheduled.
* **keypress UI CPU**: the same keypresses, counted in CPU time of the loop thread (``time.thread_time``): the
  UI's own work, whatever else runs on the machine (wall times on a shared 2-core box swing with its load).
* **new event UI time**: one event is ingested by the engine (engine time reported apart), then one UI tick is
  timed piece by piece in loop-thread CPU time — draining the bridge, the feed screen's handler (count what is new, reload the window,
  status line) and the repaint of the changed regions — leaving out the asyncio queue hop between them. Also a
  flood (1,000 events between two ticks) to show the cost is per tick, not per event.
* **RSS**: peak resident set size of this process (the whole app, stores and Python included).

Targets: keypress p95 ≤ 100 ms; a new event ≤ 5 ms of UI time at any store size; RSS ≤ 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # ui_sample: the tests' deterministic sample data, not shipped in the package

from textual import events  # noqa: E402
from textual.keys import _character_to_key, _get_unicode_name_from_key  # noqa: E402
from ui_sample import FixedClock, StubPilot, fill_orchestrator, sample_events  # noqa: E402

from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine  # noqa: E402
from pilot_tui.store.events import EventStore  # noqa: E402
from pilot_tui.ui.app import PilotApp, make_app  # noqa: E402
from pilot_tui.ui.bridge import UpdateBridge  # noqa: E402
from pilot_tui.ui.widgets.feed_table import FeedTable  # noqa: E402

KEYS: list[tuple[str, str]] = [
    *[("down", "move")] * 10, *[("pagedown", "page")] * 4, ("end", "jump"), ("home", "jump"),
    ("enter", "detail"), *[("down", "move")] * 5, ("enter", "detail"),
    ("s", "severity filter"), ("s", "severity filter"), ("h", "hide handled"), ("h", "hide handled"),
    ("s", "severity filter"), ("s", "severity filter"), ("s", "severity filter"),
    ("slash", "filter box"), ("r", "typing"), ("o", "typing"), ("o", "typing"), ("t", "typing"),
    ("enter", "apply text filter"), *[("pagedown", "page")] * 3, ("end", "jump"), ("enter", "detail"),
    ("up", "move"), ("enter", "detail"), ("escape", "clear filter"),
    ("i", "incidents"), ("escape", "back"), ("t", "sensors & trust"), ("escape", "back"),
    *[("up", "move")] * 3, *[("pageup", "page")] * 2,
]


def key_event(key: str) -> events.Key:
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(key))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def busy(app: PilotApp) -> bool:
    """True while the app or any widget of the current screen has messages waiting."""
    return app.message_queue_size > 0 or any(
        node.message_queue_size > 0 for node in app.screen.walk_children(with_self=True))


async def settle(pilot: Any) -> None:
    """Every message processed — including those posted while processing (a key hops app → screen → widget,
    a widget posts to its screen…) — and the screen update produced. No sleeps; each wait posts one callback
    to every widget, so this slightly over-states the time (an upper bound)."""
    app: PilotApp = pilot.app
    for _ in range(20):
        await pilot._wait_for_screen()
        if not busy(app):
            break
    app.screen._on_timer_update()


async def press(pilot: Any, key: str) -> tuple[float, float]:
    """(wall ms, UI-thread CPU ms) from the key event to the repainted screen."""
    app: PilotApp = pilot.app
    started, cpu = time.perf_counter(), time.thread_time()
    event = key_event(key)
    event.set_sender(app)
    app._driver.send_message(event)  # type: ignore[union-attr]
    await settle(pilot)
    return (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def make_engine(path: Path) -> OrchestratorEngine:
    return OrchestratorEngine(StubPilot(), EventStore(path),
                              OrchestratorConfig(stream=False, inbox=False, exec_node="aws-exec-node"))


async def bench_keys(path: Path, presses: int) -> dict[str, Any]:
    engine = make_engine(path)
    app = make_app(orchestrator=engine, clock=FixedClock())
    timings: list[tuple[str, str, float, float]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await settle(pilot)
        keys = (KEYS * (presses // len(KEYS) + 1))[:max(presses, len(KEYS))]
        for key, what in keys:
            wall, cpu = await press(pilot, key)
            timings.append((key, what, wall, cpu))
            await asyncio.sleep(0.005)  # let timers and workers breathe, like a human between keys
    engine.store.close()
    values = [t for _, _, t, _ in timings]
    cpus = [c for _, _, _, c in timings]
    by_kind: dict[str, list[float]] = {}
    for _, what, _, c in timings:
        by_kind.setdefault(what, []).append(c)
    return {
        "presses": len(values),
        "p50_ms": round(pct(values, 50), 2),
        "p95_ms": round(pct(values, 95), 2),
        "max_ms": round(max(values), 2),
        "cpu_p50_ms": round(pct(cpus, 50), 2),
        "cpu_p95_ms": round(pct(cpus, 95), 2),
        "by_action_cpu_max_ms": {k: round(max(v), 2) for k, v in sorted(by_kind.items())},
    }


class HandlerClock:
    """Wraps the feed screen's update handler (on its class: Textual looks handlers up there) to time exactly
    the UI work it does, not the queue hop."""

    def __init__(self, screen: Any) -> None:
        self.spent = 0.0
        self.calls = 0
        cls = type(screen)
        original = cls.on_engine_updates

        def timed(this: Any, message: Any) -> None:
            started = time.thread_time()
            original(this, message)
            self.spent += time.thread_time() - started
            self.calls += 1

        cls.on_engine_updates = timed


async def one_tick(pilot: Any, clock: HandlerClock) -> float:
    """UI time of one update tick: drain the bridges, the screen's handler, then the repaint (ms of UI-thread
    CPU, so other processes on a shared machine do not count)."""
    app: PilotApp = pilot.app
    clock.spent = 0.0
    started = time.thread_time()
    app.pump()
    pumped = time.thread_time() - started
    for _ in range(20):
        await pilot._wait_for_screen()
        if not busy(app):
            break
    started = time.thread_time()
    app.screen._on_timer_update()
    painted = time.thread_time() - started
    return (pumped + clock.spent + painted) * 1000


async def bench_new_event(path: Path, rounds: int = 50, flood: int = 1000) -> dict[str, Any]:
    engine = make_engine(path)
    app = make_app(orchestrator=engine, clock=FixedClock())
    ui: list[float] = []
    ingest: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await settle(pilot)
        table = app.screen.query_one(FeedTable)
        clock = HandlerClock(app.screen)
        fresh = [e for _, e in sample_events(rounds + flood, seed=1234)]
        for event in fresh[:rounds]:
            started = time.perf_counter()
            engine.ingest_payload(event.to_json(), sender="0:0000.0000.0b20", transport="stream")
            ingest.append((time.perf_counter() - started) * 1000)
            ui.append(await one_tick(pilot, clock))
            await asyncio.sleep(0.002)
        assert table.window.total == engine.store.total()
        payload = b"\n".join(e.to_json() for e in fresh[rounds:])
        engine.ingest_payload(payload, sender="0:0000.0000.0b20", transport="stream")
        flood_ms = await one_tick(pilot, clock)
        assert table.window.total == engine.store.total()
    engine.store.close()
    return {
        "ui_p50_ms": round(pct(ui, 50), 3),
        "ui_p95_ms": round(pct(ui, 95), 3),
        "engine_ingest_p50_ms": round(pct(ingest, 50), 3),
        f"flood_{flood}_events_one_tick_ms": round(flood_ms, 2),
        "flood_per_event_ms": round(flood_ms / flood, 4),
    }


LIVE_QUERIES = ("r", "ro", "root", "sensor:web", "ip:203.0.113.", "anomaly:ssh sev:high", "2001:db8", "foo:bar")
"""What an analyst types in the ``/`` box, prefix by prefix; each is applied once typing pauses."""


async def bench_live_filter(path: Path) -> dict[str, Any]:
    """UI-thread CPU from a pause in typing (the debounce timer firing) to the repainted feed, per typed query, plus
    one sort step per order — the filter applies while typing, so this is what the analyst waits for. Loop-thread
    CPU, like the keypress figures, so other processes on a shared machine do not count; a deferred count runs in a
    worker thread and does not hold the UI."""
    engine = make_engine(path)
    app = make_app(orchestrator=engine, clock=FixedClock())
    applied: dict[str, float] = {}
    sorted_ms: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await settle(pilot)
        screen = app.screen
        table = screen.query_one(FeedTable)
        await press(pilot, "slash")
        box = screen.query_one("#filter-input")
        for query in LIVE_QUERIES:
            box.value = query  # type: ignore[attr-defined]
            await settle(pilot)
            started = time.thread_time()
            screen._apply_typed()  # type: ignore[attr-defined]
            await settle(pilot)
            applied[query] = round((time.thread_time() - started) * 1000, 2)
        await press(pilot, "escape")
        await settle(pilot)
        for _ in range(4):
            started = time.thread_time()
            table.action_sort()
            await settle(pilot)
            sorted_ms[table.window.sort.key] = round((time.thread_time() - started) * 1000, 2)
    engine.store.close()
    return {"apply_ms": applied, "apply_max_ms": max(applied.values()), "sort_ms": sorted_ms}


def bench_bridge(n: int = 200_000) -> float:
    """Microseconds one bus callback costs the UI (the only per-event UI work)."""
    from pilot_tui.engines.updates import EventsStored

    bridge = UpdateBridge("orchestrator")
    update = EventsStored(at=0.0, events=(), sender="", transport="stream")
    started = time.perf_counter()
    for _ in range(n):
        bridge(update)
    return (time.perf_counter() - started) / n * 1e6


def rss_mb() -> float:
    """Peak RSS of this process (``VmHWM``: ``ru_maxrss`` would include a parent bench process's peak)."""
    from bench.common import peak_rss_kb_self

    return peak_rss_kb_self() / 1024


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pilot-ui-bench-"))
    big, small = tmp / "big.db", tmp / "small.db"
    started = time.perf_counter()
    store = EventStore(big)
    fill_orchestrator(store, args.events)
    store.close()
    store = EventStore(small)
    fill_orchestrator(store, 1_000)
    store.close()
    fill_s = time.perf_counter() - started
    keys = await bench_keys(big, args.presses)
    new_small = await bench_new_event(small)
    new_big = await bench_new_event(big)
    live = await bench_live_filter(big)
    return {
        "events": args.events,
        "fill_s": round(fill_s, 2),
        "keypress": keys,
        "new_event_1k": new_small,
        f"new_event_{args.events // 1000}k": new_big,
        "live_filter": live,
        "bridge_callback_us": round(bench_bridge(), 3),
        "peak_rss_mb": round(rss_mb(), 1),
        "targets": {"keypress_p95_ms": 100, "new_event_ui_ms": 5, "rss_mb": 250, "live_filter_ms": 100},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "textual": __import__("textual").__version__},
    }


def print_table(result: dict[str, Any]) -> None:
    n = result["events"]
    big = result[f"new_event_{n // 1000}k"]
    small = result["new_event_1k"]
    keys = result["keypress"]
    rows = [
        ("keypress → render p50 (wall)", f"{keys['p50_ms']:.1f} ms", f"{n:,} events, {keys['presses']} presses"),
        ("keypress → render p95 (wall)", f"{keys['p95_ms']:.1f} ms", "target ≤ 100 ms"),
        ("keypress → render max (wall)", f"{keys['max_ms']:.1f} ms", ""),
        ("keypress UI CPU p50 / p95", f"{keys['cpu_p50_ms']:.1f} ms", f"p95 {keys['cpu_p95_ms']:.1f} ms (loop thread)"),
        ("new event, UI time p50 @1k", f"{small['ui_p50_ms']:.2f} ms", f"p95 {small['ui_p95_ms']:.2f} ms"),
        (f"new event, UI time p50 @{n // 1000}k", f"{big['ui_p50_ms']:.2f} ms",
         f"p95 {big['ui_p95_ms']:.2f} ms (target ≤ 5 ms)"),
        ("flood of 1,000 events, one tick @1k", f"{small['flood_1000_events_one_tick_ms']:.1f} ms",
         f"{small['flood_per_event_ms'] * 1000:.1f} µs per event"),
        (f"flood of 1,000 events, one tick @{n // 1000}k", f"{big['flood_1000_events_one_tick_ms']:.1f} ms",
         f"{big['flood_per_event_ms'] * 1000:.1f} µs per event"),
        ("filter applied while typing, UI CPU worst", f"{result['live_filter']['apply_max_ms']:.1f} ms",
         f"{n:,} events, target ≤ 100 ms"),
        ("bus callback (bridge)", f"{result['bridge_callback_us']:.2f} µs", "the only per-event UI work"),
        ("peak RSS", f"{result['peak_rss_mb']:.0f} MB", "target ≤ 250 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>10}  {note}")
    print("slowest key by action, UI CPU (ms):",
          ", ".join(f"{k} {v}" for k, v in keys["by_action_cpu_max_ms"].items()))
    print("filter applied while typing, UI CPU (ms):",
          ", ".join(f"{q!r} {v}" for q, v in result["live_filter"]["apply_ms"].items()))
    print("sort by, UI CPU (ms):", ", ".join(f"{k} {v}" for k, v in result["live_filter"]["sort_ms"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ui.json"))
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    ok = (result["keypress"]["p95_ms"] <= 100 and result["peak_rss_mb"] <= 250
          and result["live_filter"]["apply_max_ms"] <= 100
          and result[f"new_event_{args.events // 1000}k"]["ui_p50_ms"] <= 5)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
