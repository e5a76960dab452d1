"""The README's screenshots are the snapshot tests' own images, so they cannot drift from the UI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_screenshot_is_its_snapshot_byte_for_byte() -> None:
    script = load_script()
    assert not script.stale(), (  # type: ignore[attr-defined]
        "screenshots/ differ from the snapshot tests' SVGs: run python scripts/screenshots.py")


def test_every_picture_in_screenshots_comes_from_a_snapshot() -> None:
    script = load_script()
    names = {p.stem for p in (ROOT / "screenshots").glob("*.svg")}
    assert names == set(script.SHOTS), names ^ set(script.SHOTS)  # type: ignore[attr-defined]
    readme = (ROOT / "README.md").read_text()
    for ref in {part.split(")")[0] for part in readme.split("](screenshots/")[1:]}:
        assert Path(ref).stem in names, ref
