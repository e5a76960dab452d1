"""Running headless pilot-tui processes as pilot-sim nodes, and reading their state, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIM_BIN = str(Path(sys.executable).with_name("pilot-sim"))

BURST_RULES = """
[[filter]]
name = "e2e"
prefix = 'e2e\\[\\d+\\]: '

[[filter.patterns]]
id = "hit"
regex = 'alert from (?P<ip>[0-9.]+)$'

[[rule]]
name = "e2e-hit"
filter = "e2e"
patterns = ["hit"]
anomaly = "e2e_test"
severity = "low"
maxretry = 1
findtime = 60
cooldown = 3600
"""


def burst_lines(start: int, count: int) -> str:
    """``count`` log lines, each one detection from a distinct IP (with BURST_RULES)."""
    return "".join(
        f"Nov 25 12:00:01 host e2e[1]: alert from 198.18.{i // 256}.{i % 256}\n" for i in range(start, start + count)
    )


class Proc:
    """A headless pilot-tui process; stdout goes to a file so the test can read every line it wrote.

    ``err`` sends stderr to a file too (use it for long runs: a headless orchestrator writes a status line per
    payload there, which would fill a pipe nobody reads and block the process).
    """

    def __init__(self, mode: str, args: list[str], env: dict[str, str], out: Path, err: Path | None = None) -> None:
        self.out = out
        self.err = err
        full_env = {**os.environ, **env, "PILOTCTL": SIM_BIN, "PYTHONUNBUFFERED": "1"}
        self.handle = out.open("ab")
        self.err_handle = err.open("ab") if err is not None else None
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pilot_tui", mode, "--headless", *args],
            env=full_env, stdout=self.handle, stderr=self.err_handle or subprocess.PIPE, stdin=subprocess.DEVNULL,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(5)
        self.handle.close()
        if self.err_handle is not None:
            self.err_handle.close()
        return code

    def stderr(self) -> str:
        if self.err is not None:
            return self.err.read_text("utf-8", "replace") if self.err.exists() else ""
        return self.popen.stderr.read().decode("utf-8", "replace") if self.popen.stderr else ""


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read another process's SQLite state (WAL: readers do not block the writer)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_until(cond: Callable[[], bool], timeout: float, what: str, procs: list[Proc] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.popen.poll() is not None:
                raise AssertionError(f"{what}: a process exited early ({p.popen.returncode}): {p.stderr()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
