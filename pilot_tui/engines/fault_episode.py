"""One failing state file, told once: the start of a fault episode, a change of reason, and the recovery.

Why a class: the oracle (outbox), the orchestrator (event store) and the executor (blocks) retry a failing write
for as long as it fails — once per payload, batch or request. Each must say so once per episode (a flood would
otherwise print thousands of lines) and say once, with how long it took, when a write works again. The three
engines differ only in the words and in what else they update, so the bookkeeping lives here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pilot_tui.store.db import StoreFault

Say = Callable[[str, str], None]
"""``say(level, message)``: how an engine tells it (a Notice on its bus, a log line), level ``error`` or ``info``."""


class FaultEpisode:
    """Tracks whether a state file is failing and says the start and the end of each episode once.

    ``failing`` and ``recovered`` are templates: ``{fault}`` becomes the reason (with its hint), ``{seconds}``
    how long the episode lasted.
    """

    def __init__(self, say: Say, failing: str, recovered: str) -> None:
        self._say = say
        self._failing = failing
        self._recovered = recovered
        self.fault: str | None = None
        """Why the file is failing (one line), or ``None`` while it works."""
        self._since = 0.0

    def failed(self, fault: StoreFault) -> bool:
        """Record a failure; says so when an episode starts. True when the reason changed (views may update)."""
        text = str(fault)
        if self.fault == text:
            return False
        first = self.fault is None
        self.fault = text
        if first:
            self._since = time.monotonic()
            hint = f" ({fault.hint})" if fault.hint else ""
            self._say("error", self._failing.format(fault=text + hint))
        return True

    def ok(self) -> bool:
        """Record a write that worked; says so when it ends an episode. True when it did."""
        if self.fault is None:
            return False
        self.fault = None
        self._say("info", self._recovered.format(seconds=time.monotonic() - self._since))
        return True
