"""Copy the snapshot tests' SVGs into ``screenshots/`` under their README names (no network, no Pilot install).

    python scripts/screenshots.py [--check]

The pictures in ``screenshots/`` are the very images ``tests/test_ui_snapshots.py`` compares the UI against (sample
engines, fixed clock, keys an analyst presses), so they cannot drift from the UI: after ``pytest
tests/test_ui_snapshots.py --snapshot-update`` run this script, and ``tests/test_screenshots.py`` fails until you do.
``--check`` only reports the pictures that differ from their snapshot (exit status 1 if any).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "__snapshots__" / "test_ui_snapshots"
OUT = ROOT / "screenshots"

SHOTS: dict[str, str] = {
    # screenshots/<name>.svg: the snapshot test it is (tests/__snapshots__/test_ui_snapshots/<test>.svg)
    "orchestrator-feed": "test_feed[120x40]",
    "orchestrator-feed-80x24": "test_feed[80x24]",
    "orchestrator-detail": "test_feed_detail[120x40]",
    "orchestrator-detail-80x24": "test_feed_detail[80x24]",
    "orchestrator-filter": "test_feed_filtered",
    "orchestrator-incidents": "test_incidents[120x40]",
    "orchestrator-incidents-80x24": "test_incidents[80x24]",
    "orchestrator-sensors": "test_sensors_and_trust[120x40]",
    "orchestrator-sensors-80x24": "test_sensors_and_trust[80x24]",
    "orchestrator-quarantine": "test_quarantine[120x40]",
    "orchestrator-quarantine-80x24": "test_quarantine[80x24]",
    "orchestrator-mitigate-80x24": "test_mitigate_confirmation",
    "oracle": "test_oracle[120x40]",
    "oracle-80x24": "test_oracle[80x24]",
    "executor": "test_executor[120x40]",
    "executor-80x24": "test_executor[80x24]",
    "executor-blocks-80x24": "test_executor_blocks",
    "demo": "test_demo_layout[120x40]",
    "demo-80x24": "test_demo_layout[80x24]",
    "help": "test_help[120x40]",
    "help-80x24": "test_help[80x24]",
}


def stale() -> list[str]:
    """Names whose picture is missing or differs from its snapshot."""
    out = []
    for name, test in SHOTS.items():
        picture, source = OUT / f"{name}.svg", SNAPSHOTS / f"{test}.svg"
        if not picture.exists() or picture.read_bytes() != source.read_bytes():
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the pictures that differ (exit 1 if any)")
    args = parser.parse_args(argv)
    missing = [t for t in SHOTS.values() if not (SNAPSHOTS / f"{t}.svg").exists()]
    if missing:
        print(f"no snapshot for {', '.join(missing)}: run pytest tests/test_ui_snapshots.py --snapshot-update first")
        return 1
    if args.check:
        for name in stale():
            print(f"screenshots/{name}.svg differs from its snapshot {SHOTS[name]}")
        return 1 if stale() else 0
    OUT.mkdir(exist_ok=True)
    for name, test in SHOTS.items():
        shutil.copyfile(SNAPSHOTS / f"{test}.svg", OUT / f"{name}.svg")
        print(OUT / f"{name}.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
