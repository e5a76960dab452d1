"""Running headless pilot-tui processes as pilot-sim nodes, and reading their state, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pilot_tui.sim.burst import BURST_RULES, burst_ip, burst_lines  # noqa: F401  (re-exported for tests)
from pilot_tui.store.db import query_readonly as query  # noqa: F401

SIM_BIN = str(Path(sys.executable).with_name("pilot-sim"))

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


def wait_until(cond: Callable[[], bool], timeout: float, what: str, procs: list[Proc] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.popen.poll() is not None:
                raise AssertionError(f"{what}: a process exited early ({p.popen.returncode}): {p.stderr()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
