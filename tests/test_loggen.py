"""The attack-log generator: deterministic, real formats, fast; the live story fires every built-in anomaly."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest
from task_helpers import stop_tasks

from pilot_tui.detect import Detector, load_rules, scan_files
from pilot_tui.sim import loggen
from pilot_tui.sim.loggen_story import STORY_FILES, play_story, story_script

SYSLOG = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d web-1 (sshd|CRON|sudo|systemd-logind|kernel)(\[\d+\])?: "
)
NGINX = re.compile(
    r'^[0-9a-f:.]+ - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \S+ HTTP/1\.1" \d{3} \d+ '
    r'"-" "[^"]+"$'
)
DOC_RANGES = re.compile(r"\b(?:203\.0\.113|198\.51\.100|192\.0\.2)\.\d+\b|\b2001:db8:[0-9a-f:]+")


@pytest.mark.parametrize("kind", loggen.KINDS)
def test_generate_is_deterministic_and_exact(tmp_path: Path, kind: str) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert loggen.generate(a, kind, 5000, seed=9) == 5000
    loggen.generate(b, kind, 5000, seed=9)
    loggen.generate(c, kind, 5000, seed=10)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    lines = a.read_text().splitlines()
    assert len(lines) == 5000
    shape = NGINX if kind == "nginx" else SYSLOG
    assert all(shape.match(line) for line in lines), next(x for x in lines if not shape.match(x))
    # the file's mtime is its last line's time, as a real log's would be
    assert loggen.DEFAULT_START < os.path.getmtime(a) < loggen.DEFAULT_START + 2 * loggen.DEFAULT_SPAN


def test_attackers_only_use_documentation_ranges(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    loggen.generate(path, "auth", 5000, seed=1)
    report = scan_files([path])
    assert report.ip_hits and all(DOC_RANGES.fullmatch(ip) for ip in report.ip_hits)


def test_auth_log_has_benign_and_attack_lines(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    loggen.generate(path, "auth", 20_000, seed=1)
    text = path.read_text()
    for needle in (
        "Accepted publickey",
        "session opened",
        "session closed",
        "CRON[",
        "Failed password",
        "Invalid user",
        "message repeated",
        "maximum authentication attempts",
        "[preauth]",
        "incorrect password attempt",
        "NOT in sudoers",
    ):
        assert needle in text, needle
    anomalies = {e.anomaly for e in scan_files([path]).events}
    assert {"brute_force_ssh", "ssh_user_enumeration", "sudo_auth_failure"} <= anomalies


def test_generate_is_fast(tmp_path: Path) -> None:
    began = time.perf_counter()
    loggen.generate(tmp_path / "big.log", "auth", 200_000, seed=1)
    assert time.perf_counter() - began < 5.0  # ~0.6 s here: millions of lines take seconds


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "ufw.log"
    assert loggen.main(["--kind", "ufw", "--lines", "100", "--seed", "4", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 100
    with pytest.raises(ValueError, match="unknown kind"):
        loggen.generate(out, "apache", 1)


def test_story_fires_every_builtin_anomaly(tmp_path: Path) -> None:
    written = asyncio.run(play_story(tmp_path, speed=2000.0, loop=False))
    assert written > 150
    report = scan_files([tmp_path / name for name in STORY_FILES], reference=time.time())
    assert {e.anomaly for e in report.events} == {r.anomaly for r in load_rules().rules}
    sources = {e.anomaly: e.source_ip for e in report.events}
    assert sources["port_scan"] in ("2001:db8:bad:1::17", "198.51.100.99")
    assert sources["sudo_auth_failure"] == "192.0.2.55"  # mallory's SSH address
    assert all(DOC_RANGES.fullmatch(e.source_ip) for e in report.events)


def test_story_streams_live_and_loops_until_cancelled(tmp_path: Path) -> None:
    async def main() -> None:
        det = Detector(load_rules())
        task = asyncio.create_task(play_story(tmp_path, speed=400.0, loop=True))
        await asyncio.sleep(0.15)  # partway through the first pass
        partial = (tmp_path / "auth.log").read_text().count("\n")
        await asyncio.sleep(0.35)  # one pass is 100 s / 400 = 0.25 s: now into the second
        await stop_tasks(task)
        with pytest.raises(asyncio.CancelledError):
            await task
        lines = (tmp_path / "auth.log").read_text().splitlines()
        assert 0 < partial < len(lines)
        assert sum("Failed password for root from 203.0.113.7" in x for x in lines) > 20  # brute force twice
        events = [e for x in lines for e in det.feed(x, "auth.log")]
        assert any(e.anomaly == "brute_force_ssh" for e in events)

    asyncio.run(main())


def test_story_script_is_ordered_and_bounded() -> None:
    steps = story_script()
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert steps[-1].at < 100.0 and {s.file for s in steps} == set(STORY_FILES)
    with pytest.raises(ValueError):
        asyncio.run(play_story("/nonexistent-never", speed=0))
