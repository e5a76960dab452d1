"""Deterministic attack-log generator for the demo, the tests and the scan benchmark.

Two uses share the same line formats (real OpenSSH/sudo/pam syslog lines, nginx "combined" access lines, UFW kernel
BLOCK lines), so what the demo shows is what ``pilot-tui scan`` is measured on:

Line formats live in :mod:`pilot_tui.sim.loggen_formats` (re-exported here).

* :func:`generate` writes a big file fast (millions of lines in seconds): a seeded mix of benign traffic (accepted
  publickey logins, pam sessions, CRON, legitimate sudo; normal web hits; nothing for UFW) and attacks (brute force,
  user enumeration, max-auth, sudo failures; traversal, SQLi, scanners, 404 bursts; port scans). The same seed
  always gives the same bytes. Syslog times are written in UTC without a year, like rsyslog's traditional format.
* :func:`pilot_tui.sim.loggen_story.play_story` (built on this module's line formats) appends a scripted live
  attack story with current timestamps.

Attackers come only from documentation ranges (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, 2001:db8::/32), so
nothing generated here ever names a real host.

CLI: ``python -m pilot_tui.sim.loggen --kind auth --lines 1000000 --seed 1 OUT``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .loggen_formats import (  # re-exported: the line formats are part of this module's API
    ATTACK_USERS,
    BROWSER_AGENTS,
    HOST,
    LOCAL_USERS,
    NORMAL_PATHS,
    PROBE_PATHS,
    SCANNER_AGENTS,
    SQLI_PATHS,
    TRAVERSAL_PATHS,
    Clock,
    cron,
    nginx,
    ssh_failed,
    ssh_login,
    ssh_logout,
    ssh_max_auth,
    ssh_probe_user,
    ssh_repeated,
    sshd,
    sudo_fail,
    sudo_not_in_sudoers,
    sudo_ok,
    ufw_block,
)

KINDS = ("auth", "nginx", "ufw")
"""Kinds :func:`generate` writes: auth.log (sshd/sudo/pam/CRON), nginx access.log, UFW kernel log."""

DEFAULT_START = 1_793_491_200.0
"""Default first timestamp (2026-11-01T00:00:00Z): fixed so a seed always yields the same file."""

DEFAULT_SPAN = 7 * 86400.0
"""A generated file covers at most about this many seconds, however big (keeps syslog year inference unambiguous)."""

LINE_GAP = 0.6
"""Mean seconds between lines (a busy server's auth.log); 1M lines then cover about a week."""


def attacker_ips(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct attacker addresses from the documentation ranges, about one in eight IPv6."""
    v4 = [f"{net}.{host}" for net in ("203.0.113", "198.51.100", "192.0.2") for host in range(2, 255)]
    rng.shuffle(v4)
    out: list[str] = []
    for i in range(n):
        if i % 8 == 7 or not v4:
            out.append(
                f"2001:db8:{rng.randrange(1, 0xFFFF):x}:{rng.randrange(0, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"
            )
        else:
            out.append(v4.pop())
    return out


class _Campaigns:
    """Attacks come in campaigns: one address hammers for a while, then goes. ``width`` run at once.

    Real logs look like this (an attacker's lines cluster in minutes, not spread evenly over a week), and only
    clustered lines cross the rules' windows, so the events a scan reports resemble a real server's.
    """

    def __init__(self, rng: random.Random, ips: list[str], width: int, size: Callable[[], int]) -> None:
        self.rng, self.ips, self.width, self.size = rng, ips, width, size
        self.active: list[list[Any]] = []  # [ip, attempts left, state dict]

    def pick(self) -> tuple[str, dict[str, Any]]:
        """The address of a running campaign (starting one if fewer than ``width`` run) and its scratch state."""
        rng = self.rng
        if len(self.active) < self.width:
            self.active.append([rng.choice(self.ips), self.size(), {}])
        i = rng.randrange(len(self.active))
        entry = self.active[i]
        entry[1] -= 1
        if entry[1] <= 0:
            self.active.pop(i)
        return entry[0], entry[2]


class _Pids:
    """Increasing process ids (wrapping like Linux's pid_max): a reused pid would glue unrelated sshd lines together."""

    def __init__(self, rng: random.Random) -> None:
        self.next = rng.randrange(1000, 50000)

    def __call__(self) -> int:
        self.next = self.next + 1 if self.next < 4_194_303 else 1000
        return self.next


def _auth_events(rng: random.Random, clock: Clock) -> list[Callable[[], list[str]]]:
    """Weighted event makers for auth.log; each returns the lines of one event."""
    attackers = attacker_ips(rng, 600)
    benign = [f"192.0.2.{i}" for i in range(240, 250)]
    pid = _Pids(rng)
    brute = _Campaigns(rng, attackers, 3, lambda: int(rng.paretovariate(1.2) * 4))
    enum = _Campaigns(rng, attackers, 2, lambda: rng.randrange(2, 40))

    def port() -> int:
        return rng.randrange(1024, 65535)

    def brute_force() -> list[str]:
        ip, state = brute.pick()
        user = state.setdefault("user", rng.choice(ATTACK_USERS[:4]))
        p, pp, invalid = pid(), port(), user != "root"
        out = ssh_failed(clock, p, user, ip, pp, invalid)
        roll = rng.random()
        if roll < 0.3:
            out.append(ssh_repeated(clock, p, user, ip, pp, rng.randrange(2, 6), invalid))
        elif roll < 0.45 and not invalid:
            out.extend(ssh_max_auth(clock, p, user, ip, pp))
        return out

    def enumerate_users() -> list[str]:
        ip, _ = enum.pick()
        return ssh_probe_user(clock, pid(), rng.choice(ATTACK_USERS[1:]), ip, port())

    def login() -> list[str]:
        user, ip, p, pp = rng.choice(LOCAL_USERS), rng.choice(benign), pid(), port()
        return ssh_login(clock, p, user, ip, pp, rng.randrange(1, 9999)) + ssh_logout(clock, p, user, ip, pp)

    def sudo() -> list[str]:
        roll = rng.random()
        if roll < 0.85:
            return sudo_ok(clock, rng.choice(LOCAL_USERS), "/usr/bin/systemctl restart nginx")
        if roll < 0.97:
            return sudo_fail(clock, "mallory", rng.randrange(1, 4), "/bin/bash")
        return [sudo_not_in_sudoers(clock, "mallory", "/bin/cat /etc/shadow")]

    return (
        [brute_force] * 10
        + [enumerate_users] * 3
        + [login] * 3
        + [lambda: cron(clock, pid())] * 7
        + [sudo] * 2
    )


def _nginx_events(rng: random.Random, clock: Clock) -> list[Callable[[], list[str]]]:
    attackers = attacker_ips(rng, 200)
    visitors = [f"198.51.100.{i}" for i in range(200, 255)] + [f"2001:db8:cafe::{i:x}" for i in range(1, 40)]
    scanners = _Campaigns(rng, attackers, 2, lambda: rng.randrange(5, 120))
    injectors = _Campaigns(rng, attackers, 1, lambda: rng.randrange(1, 15))

    def normal() -> list[str]:
        path = rng.choice(NORMAL_PATHS)
        status = 200 if rng.random() < 0.95 else rng.choice((304, 404))
        agent = rng.choice(BROWSER_AGENTS)
        return [nginx(clock, rng.choice(visitors), "GET", path, status, rng.randrange(200, 40000), agent)]

    def scan() -> list[str]:
        ip, state = scanners.pick()
        agent = state.setdefault("agent", rng.choice(SCANNER_AGENTS))
        return [
            nginx(clock, ip, "GET", rng.choice(PROBE_PATHS), 404, 162, agent)
            for _ in range(rng.randrange(1, 4))
        ]

    def inject() -> list[str]:
        ip, _ = injectors.pick()
        if rng.random() < 0.5:
            return [
                nginx(clock, ip, "GET", rng.choice(TRAVERSAL_PATHS), 400, 157, rng.choice(BROWSER_AGENTS))
            ]
        return [nginx(clock, ip, "GET", rng.choice(SQLI_PATHS), 500, 0, rng.choice(BROWSER_AGENTS))]

    return [normal] * 40 + [scan] * 4 + [inject] * 2


def _ufw_events(rng: random.Random, clock: Clock) -> list[Callable[[], list[str]]]:
    attackers = attacker_ips(rng, 300)
    common = (
        21,
        22,
        23,
        25,
        53,
        80,
        110,
        135,
        139,
        143,
        443,
        445,
        1433,
        3306,
        3389,
        5432,
        5900,
        6379,
        8080,
        8443,
    )
    start = clock.t
    scans = _Campaigns(rng, attackers, 2, lambda: rng.randrange(3, 60))

    def scan() -> list[str]:
        ip, state = scans.pick()
        base = state.setdefault("port", rng.randrange(1, 60000))
        state["port"] = base + 10
        sport = rng.randrange(32768, 61000)
        return [
            ufw_block(clock, ip, "10.0.0.5", base + i, sport, clock.t - start + 1000.0) for i in range(10)
        ]

    def stray() -> list[str]:
        return [
            ufw_block(
                clock,
                rng.choice(attackers),
                "10.0.0.5",
                rng.choice(common),
                rng.randrange(32768, 61000),
                clock.t - start + 1000.0,
            )
        ]

    return [scan] + [stray] * 12


_MAKERS = {"auth": _auth_events, "nginx": _nginx_events, "ufw": _ufw_events}


def generate(
    path: str | Path,
    kind: str,
    lines: int,
    seed: int = 1,
    *,
    start: float = DEFAULT_START,
    span: float = DEFAULT_SPAN,
) -> int:
    """Write exactly ``lines`` lines of ``kind`` (see :data:`KINDS`) to ``path``; return that number.

    Deterministic: the same arguments give the same bytes. Time starts at ``start`` and advances about
    :data:`LINE_GAP` seconds a line, faster when needed to stay within ``span``; within an event lines share a
    second, like a bot's burst does. The file's mtime is set to
    its last line's time, as a real log's would be (``scan`` uses it to place year-less syslog times).
    """
    if kind not in _MAKERS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    rng = random.Random(seed)
    clock = Clock(start)
    makers = _MAKERS[kind](rng, clock)
    step = 2.0 * min(span / max(lines, 1), LINE_GAP)
    written = 0
    buf: list[str] = []
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        while written < lines:
            event = rng.choice(makers)()
            event = event[: lines - written]
            buf.extend(event)
            written += len(event)
            clock.t += rng.random() * step * len(event)
            if len(buf) >= 65536:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    os.utime(path, (clock.t, clock.t))
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m pilot_tui.sim.loggen --kind auth --lines N --seed S OUT``; returns an exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m pilot_tui.sim.loggen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", help="file to write (overwritten)")
    parser.add_argument("--kind", choices=KINDS, default="auth")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.lines < 0:
        parser.error("--lines must be >= 0")
    began = time.perf_counter()
    n = generate(args.out, args.kind, args.lines, args.seed)
    print(f"wrote {n} {args.kind} lines to {args.out} in {time.perf_counter() - began:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "DEFAULT_SPAN",
    "DEFAULT_START",
    "KINDS",
    "LINE_GAP",
    "generate",
    "main",
    "HOST",
    "ATTACK_USERS",
    "LOCAL_USERS",
    "SCANNER_AGENTS",
    "BROWSER_AGENTS",
    "NORMAL_PATHS",
    "PROBE_PATHS",
    "TRAVERSAL_PATHS",
    "SQLI_PATHS",
    "Clock",
    "sshd",
    "ssh_failed",
    "ssh_repeated",
    "ssh_max_auth",
    "ssh_probe_user",
    "ssh_login",
    "ssh_logout",
    "cron",
    "sudo_ok",
    "sudo_fail",
    "sudo_not_in_sudoers",
    "nginx",
    "ufw_block",
]
