"""Write SVG screenshots of every view into ``screenshots/`` (no network, no Pilot install needed).

    python scripts/screenshots.py [--out screenshots] [--size 120x40]

Engines run over temp-dir stores filled with the deterministic sample events of :mod:`pilot_tui.ui.sample`; their
run loops are not started (a :class:`~pilot_tui.ui.sample.StubPilot` stands in for pilotctl), and a fixed clock
freezes every age, so the pictures are the same on every run. Each picture is taken by a test pilot pressing the
keys an analyst would, then ``app.save_screenshot``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pilot_tui.ui.app import PilotApp, make_app  # noqa: E402
from pilot_tui.ui.sample import (  # noqa: E402
    SAMPLE_PENDING,
    FixedClock,
    StubPilot,
    fill_executor,
    sample_executor,
    sample_oracle,
    sample_orchestrator,
    sample_receivers,
    sample_send_results,
)

SHOTS: list[tuple[str, str, tuple[str, ...], str]] = [
    # (file name, first view, keys to press, what it shows)
    ("orchestrator-feed", "feed", (), "threat feed, newest first, receivers and stats"),
    ("orchestrator-detail", "feed", ("down", "down", "enter"), "detail pane: evidence shown literally"),
    ("orchestrator-filter", "feed", ("slash", *"anomaly:ssh", "enter", "s", "s", "s"), "filtered feed"),
    ("orchestrator-incidents", "feed", ("i",), "incidents: one row per source IP across sensors"),
    ("orchestrator-sensors", "feed", ("t",), "sensors and pending trust requests"),
    ("orchestrator-quarantine", "feed", ("x",), "quarantined payloads"),
    ("orchestrator-mitigate", "feed", ("m",), "mitigation confirmation"),
    ("oracle", "oracle", (), "oracle send view"),
    ("executor", "executor", (), "executor view (dry-run)"),
    ("demo", "demo", (), "the demo layout: all three nodes"),
    ("help", "feed", ("question_mark",), "keys of the feed"),
]


async def build(tmp: Path) -> PilotApp:
    clock = FixedClock()
    orchestrator = sample_orchestrator(str(tmp / "events.db"), 400,
                                       pilot=StubPilot(pending_requests=list(SAMPLE_PENDING)))
    sample_receivers(orchestrator)
    oracle = sample_oracle(str(tmp))
    executor = sample_executor(str(tmp / "exec.db"), clock)
    await fill_executor(executor, clock)
    return make_app(orchestrator=orchestrator, oracle=oracle, executor=executor, demo=True, clock=clock,
                    start_engines=False)


async def settle(pilot: Any) -> None:
    app: PilotApp = pilot.app
    await pilot.pause(0.05)
    workers = [w for w in app.workers if w.group not in ("engines", "background")]
    if workers:
        await app.workers.wait_for_complete(workers)
    app.pump()
    await pilot.pause()


async def shoot(name: str, view: str, keys: Sequence[str], out: Path, size: tuple[int, int]) -> Path:
    with tempfile.TemporaryDirectory(prefix="pilot-shots-") as tmp:
        app = await build(Path(tmp))
        async with app.run_test(size=size) as pilot:
            oracle = app.engines["oracle"]
            for update in sample_send_results():
                oracle.bus.emit(update)
            oracle.sender.peer_state = "no-trust"
            await pilot.press(str(app.views.index(view) + 1))
            await settle(pilot)
            if keys:
                await pilot.press(*keys)
            await settle(pilot)
            path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
    return Path(path)


async def main_async(out: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for size in sizes:
        suffix = "" if size == sizes[0] else f"-{size[0]}x{size[1]}"
        for name, view, keys, _what in SHOTS:
            written.append(await shoot(name + suffix, view, keys, out, size))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "screenshots"))
    parser.add_argument("--size", action="append", default=None,
                        help="WIDTHxHEIGHT (repeatable; default 120x40 and 80x24)")
    args = parser.parse_args(argv)
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in (args.size or ["120x40", "80x24"])]
    for path in asyncio.run(main_async(Path(args.out), sizes)):  # type: ignore[arg-type]
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
