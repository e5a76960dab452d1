"""Fault injection for a sim node: the bad network days the real Pilot has, on demand and reproducible.

A node reads these environment variables when it starts (set them on ``pilot-sim daemon start``):

``PILOT_SIM_DROP_RATE`` (0..1)
    Fraction of incoming streams to user ports (connect / SDK dial; not the 1001/1002 services) whose data is
    lost. The dial succeeds, the bytes vanish, nothing is delivered to the listener and nothing comes back, so
    the sender's ``connect`` ends with ``timeout`` (exit 1) after its ``--timeout`` — what a lossy path looks
    like to pilotctl.
``PILOT_SIM_LATENCY_MS``
    Milliseconds added to every incoming dial (the cost of each delivery: connect, send-message, publish).
``PILOT_SIM_SLOW_RATE`` (0..1) and ``PILOT_SIM_SLOW_MS`` (default 270)
    A fraction of incoming dials (any port) take a fixed extra delay: the tail real 1.18 daemons show (~2 % of
    bare connects take ~270 ms inside Pilot, a retransmission or re-keying timer). Drawn from the seeded generator.
``PILOT_SIM_REFUSE_DIALS`` (N)
    The next N incoming dials (any port) are refused: the sender gets ``connection_failed``.
``PILOT_SIM_LOSE_FIRST_STREAM_AFTER_RESTART=1``
    The first stream to a user port after the node starts loses its data while "the tunnel re-keys": the
    listener accepts it but reads nothing (EOF once the sender closes, or its read deadline), as the contract
    measured after a peer restart. A sender that trusts "connect exited 0" loses data here.
``PILOT_SIM_SEED``
    Seed of the random generator behind ``DROP_RATE``, so a run can be replayed.

Faults are applied by the *receiving* node. A test can change them while the node runs by writing
``<node config dir>/sim-faults.json`` (keys ``drop_rate``, ``latency_ms``, ``refuse_dials``,
``lose_first_stream_after_restart``, ``slow_rate``, ``slow_ms``, ``seed``; see :func:`pilot_tui.sim.cluster.set_faults`): each time the file
changes, the keys in it are applied (``refuse_dials`` restarts its count, ``seed`` re-seeds); absent keys keep
their current value.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAULTS_FILE = "sim-faults.json"

ENV_DOCS = {
    "PILOT_SIM_HOME": "directory shared by all sim nodes on this machine (registry, trust); default /tmp/pilot-sim-<uid>",
    "PILOT_SIM_DROP_RATE": "0..1 - fraction of connects to user ports whose data is lost (sender: timeout)",
    "PILOT_SIM_LATENCY_MS": "milliseconds added to every incoming dial",
    "PILOT_SIM_SLOW_RATE": "0..1 - fraction of incoming dials that take PILOT_SIM_SLOW_MS extra (the real tail)",
    "PILOT_SIM_SLOW_MS": "milliseconds a slow dial takes extra (default 270)",
    "PILOT_SIM_REFUSE_DIALS": "N - refuse the next N incoming dials (sender: connection_failed)",
    "PILOT_SIM_LOSE_FIRST_STREAM_AFTER_RESTART": "1 - the first stream after start loses its data (re-keying)",
    "PILOT_SIM_SEED": "seed for DROP_RATE, for reproducible runs",
    "PILOT_SIM_OWNER_PID": "the node stops when this process exits (set by pilot_tui.sim.cluster)",
}


@dataclass
class Decision:
    """What happens to one incoming dial before it reaches a port."""

    refuse: bool = False
    delay: float = 0.0


def _num(value: Any, kind: Callable[[Any], float], default: float) -> float:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


class Faults:
    """The fault state of one node: env defaults, live overrides from the faults file, a seeded RNG."""

    def __init__(self, env: Mapping[str, str], config_dir: Path) -> None:
        self._file = Path(config_dir) / FAULTS_FILE
        self._stamp: tuple[int, int, int] | None = None
        self.drop_rate = min(1.0, max(0.0, _num(env.get("PILOT_SIM_DROP_RATE", 0), float, 0.0)))
        self.latency_ms = max(0.0, _num(env.get("PILOT_SIM_LATENCY_MS", 0), float, 0.0))
        self.refuse_left = max(0, int(_num(env.get("PILOT_SIM_REFUSE_DIALS", 0), int, 0)))
        self.slow_rate = min(1.0, max(0.0, _num(env.get("PILOT_SIM_SLOW_RATE", 0), float, 0.0)))
        self.slow_ms = max(0.0, _num(env.get("PILOT_SIM_SLOW_MS", 270), float, 270.0))
        self.lose_next = env.get("PILOT_SIM_LOSE_FIRST_STREAM_AFTER_RESTART", "") not in ("", "0", "false")
        seed = env.get("PILOT_SIM_SEED")
        self._rng = random.Random(int(_num(seed, int, 0)) if seed not in (None, "") else None)
        self._stamp = self._file_stamp()  # a file left from an earlier run is history: only changes count

    def _refresh(self) -> None:
        """Apply the faults file when it changed since the last look (cheap: one stat per dial)."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            cfg = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(cfg, dict):
            return
        if "drop_rate" in cfg:
            self.drop_rate = min(1.0, max(0.0, _num(cfg["drop_rate"], float, 0.0)))
        if "latency_ms" in cfg:
            self.latency_ms = max(0.0, _num(cfg["latency_ms"], float, 0.0))
        if "slow_rate" in cfg:
            self.slow_rate = min(1.0, max(0.0, _num(cfg["slow_rate"], float, 0.0)))
        if "slow_ms" in cfg:
            self.slow_ms = max(0.0, _num(cfg["slow_ms"], float, 270.0))
        if "refuse_dials" in cfg:
            self.refuse_left = max(0, int(_num(cfg["refuse_dials"], int, 0)))
        if "lose_first_stream_after_restart" in cfg:
            self.lose_next = bool(cfg["lose_first_stream_after_restart"])
        if cfg.get("seed") is not None:
            self._rng.seed(int(_num(cfg["seed"], int, 0)))

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._file.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)  # a replace-by-rename always gets a new inode

    def incoming(self) -> Decision:
        """Decide the fate of one incoming dial (any port): added delay, refused or not."""
        self._refresh()
        decision = Decision(delay=self.latency_ms / 1000.0)
        if self.slow_rate > 0 and self._rng.random() < self.slow_rate:
            decision.delay += self.slow_ms / 1000.0
        if self.refuse_left > 0:
            self.refuse_left -= 1
            decision.refuse = True
        return decision

    def on_delivery(self) -> str:
        """For a stream about to reach a user port's listener: ``"drop"``, ``"lose"`` or ``""`` (delivered).

        One random draw per delivered stream when a drop rate is set, so a seed replays the same pattern.
        """
        if self.drop_rate > 0 and self._rng.random() < self.drop_rate:
            return "drop"
        if self.lose_next:
            self.lose_next = False
            return "lose"
        return ""

    def snapshot(self) -> dict[str, object]:
        """The current settings (shown by ``info`` so a test can check what a node runs with)."""
        return {
            "drop_rate": self.drop_rate,
            "latency_ms": self.latency_ms,
            "refuse_dials": self.refuse_left,
            "slow_rate": self.slow_rate,
            "slow_ms": self.slow_ms,
            "lose_first_stream_after_restart": self.lose_next,
        }
