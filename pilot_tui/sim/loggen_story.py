"""The live "attack story" for the demo: a scripted hundred seconds of attacks appended to real-format logs.

Acts (seconds from the start, at ``speed=1``), over benign background (web visitors, CRON, an admin's login). They
overlap on purpose so the feed is never empty for long: the first detection lands within a second, and four
attackers are on screen by 25 s (see :data:`FIRST_DETECTIONS`).

1. 0–30 s    SSH brute force on root from 203.0.113.7: a fast burst of five, then one every 1.5 s (with rsyslog
             "message repeated" and a max-auth disconnect)
2. 3–10 s    port scan from 2001:db8:bad:1::17 (IPv6, UFW BLOCK lines)
3. 9–40 s    web attack from 192.0.2.77: SQL injection first, then scanner user agent and probe paths (a 404
             burst), traversal
4. 14–40 s   SSH user enumeration from 198.51.100.23 (a dozen invalid user names, no password tried)
5. 45–55 s   port scan from 198.51.100.99 (IPv4)
6. 60–70 s   mallory logs in from 192.0.2.55, fails sudo three times, then is not in sudoers

then the story loops. Files written in ``directory``: ``auth.log``, ``access.log`` (nginx) and ``ufw.log``. Lines
carry the wall-clock time they are written, so the oracle's windows see the story as it unfolds. The script is
plain data (:func:`story_script`), so a test can check it fires every built-in anomaly, and when, without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import loggen_formats as lg

STORY_FILES = ("auth.log", "access.log", "ufw.log")
STORY_SECONDS = 100.0
"""Length of one pass of the story at ``speed=1``."""

FIRST_DETECTIONS = {"203.0.113.7": 0.5, "2001:db8:bad:1::17": 6.0, "192.0.2.77": 9.0, "198.51.100.23": 22.0}
"""When (story seconds, ``speed=1``) each early attacker's first detection is due at the latest — the demo's promise
that the feed fills at once (a test checks the script keeps it)."""


@dataclass(frozen=True, slots=True)
class StoryStep:
    """At ``at`` seconds into the story, append ``make(clock)``'s lines to ``file``."""

    at: float
    file: str
    make: Callable[[lg.Clock], list[str]]


def story_script(seed: int = 7) -> list[StoryStep]:
    """The story's steps in time order (deterministic for a seed)."""
    rng = random.Random(seed)
    steps: list[StoryStep] = []
    pid = [4100]

    def next_pid() -> int:
        pid[0] += 1
        return pid[0]

    def add(at: float, file: str, make: Callable[[lg.Clock], list[str]]) -> None:
        steps.append(StoryStep(at, file, make))

    # background: visitors, cron, an admin logging in
    t = 0.0
    while t < STORY_SECONDS:
        ip, path = (
            rng.choice(("198.51.100.200", "198.51.100.201", "2001:db8:cafe::5")),
            rng.choice(lg.NORMAL_PATHS),
        )

        def visit(c: lg.Clock, ip: str = ip, path: str = path) -> list[str]:
            return [lg.nginx(c, ip, "GET", path, 200, 5120, lg.BROWSER_AGENTS[0])]

        add(t, "access.log", visit)
        t += rng.uniform(1.0, 4.0)
    for at in (2.0, 22.0, 42.0, 62.0, 82.0):
        cron_pid = next_pid()

        def cron(c: lg.Clock, p: int = cron_pid) -> list[str]:
            return lg.cron(c, p)

        add(at, "auth.log", cron)
    admin_pid = next_pid()
    add(8.0, "auth.log", lambda c: lg.ssh_login(c, admin_pid, "deploy", "192.0.2.10", 50122, 41))

    # act 1: brute force — a bot's opening burst (five tries in under a second: detected at once), then steady
    for i in range(25):
        p, port = next_pid(), 40000 + i

        def attempt(c: lg.Clock, p: int = p, port: int = port, i: int = i) -> list[str]:
            lines = lg.ssh_failed(c, p, "root", "203.0.113.7", port, invalid=False)
            if i % 5 == 4:
                lines.append(lg.ssh_repeated(c, p, "root", "203.0.113.7", port, 2))
            if i == 24:
                lines += lg.ssh_max_auth(c, p, "root", "203.0.113.7", port)
            return lines

        add(i * 0.1 if i < 5 else 1.5 + (i - 5) * 1.4, "auth.log", attempt)

    # act 2: port scan over IPv6 (15 distinct ports detect it)
    for i in range(40):

        def scan6(c: lg.Clock, i: int = i) -> list[str]:
            return [lg.ufw_block(c, "2001:db8:bad:1::17", "", 20 + i * 7, 45000, 9000.0 + i)]

        add(3.0 + i * 0.18, "ufw.log", scan6)

    # act 3: web attack — SQL injection (one line is enough), then the scanner's probe paths and traversal
    for i, path in enumerate(lg.SQLI_PATHS[:3] + lg.TRAVERSAL_PATHS[:3]):
        status = 500 if i < 3 else 400

        def inject(c: lg.Clock, path: str = path, s: int = status) -> list[str]:
            return [lg.nginx(c, "192.0.2.77", "GET", path, s, 157, lg.BROWSER_AGENTS[3])]

        add(9.0 + i * (1.0 if i < 3 else 4.0), "access.log", inject)
    agent = lg.SCANNER_AGENTS[2]
    for i in range(30):
        path = lg.PROBE_PATHS[i % len(lg.PROBE_PATHS)]

        def probe(c: lg.Clock, path: str = path) -> list[str]:
            return [lg.nginx(c, "192.0.2.77", "GET", path, 404, 162, agent)]

        add(12.0 + i * 0.5, "access.log", probe)

    # act 4: user enumeration (five distinct invalid users detect it)
    for i, user in enumerate(lg.ATTACK_USERS[1:13]):
        probe_pid = next_pid()

        def enumerate_user(c: lg.Clock, u: str = user, p: int = probe_pid, i: int = i) -> list[str]:
            return lg.ssh_probe_user(c, p, u, "198.51.100.23", 51000 + i)

        add(14.0 + i * 1.8, "auth.log", enumerate_user)

    # act 5: port scan over IPv4
    for i in range(30):

        def scan4(c: lg.Clock, i: int = i) -> list[str]:
            return [lg.ufw_block(c, "198.51.100.99", "10.0.0.5", 1000 + i, 51515, 9100.0 + i)]

        add(45.0 + i * 0.3, "ufw.log", scan4)

    # act 6: an insider on sudo
    insider_pid = next_pid()
    add(60.0, "auth.log", lambda c: lg.ssh_login(c, insider_pid, "mallory", "192.0.2.55", 40404, 77))
    add(64.0, "auth.log", lambda c: lg.sudo_fail(c, "mallory", 3, "/bin/bash"))
    add(68.0, "auth.log", lambda c: [lg.sudo_not_in_sudoers(c, "mallory", "/bin/cat /etc/shadow")])

    steps.sort(key=lambda s: s.at)
    return steps


async def play_story(
    directory: str | Path,
    speed: float = 1.0,
    loop: bool = True,
    *,
    seed: int = 7,
    clock: Callable[[], float] = time.time,
) -> int:
    """Append the story to the files in ``directory`` (created if needed) in real time divided by ``speed``.

    Runs until cancelled when ``loop`` is true; otherwise returns after one pass with the number of lines written.
    Files are flushed after every step so a tailer sees each line as it is "logged".
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    handles: dict[str, TextIO] = {name: open(root / name, "a", encoding="utf-8") for name in STORY_FILES}  # noqa: SIM115
    written = 0
    try:
        while True:
            steps = story_script(seed)
            began = time.monotonic()
            for step in steps:
                delay = began + step.at / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lines = step.make(lg.Clock(clock()))
                out = handles[step.file]
                out.write("".join(lines))
                out.flush()
                written += len(lines)
            if not loop:
                return written
            rest = began + STORY_SECONDS / speed - time.monotonic()
            await asyncio.sleep(max(rest, 0.0))
    finally:
        for handle in handles.values():
            handle.close()
