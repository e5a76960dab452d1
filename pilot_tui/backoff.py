"""How long a loop waits before trying again after a failure: one rule for every retrying loop in pilot-tui.

The receivers' supervisor, the ``--on-event`` hook, the oracle's sender, the inbox watcher and the journal source
all retry something that failed (a receiver, a child process, a send, a ``pilotctl`` call). They share one shape —
the wait doubles while failures continue, stops growing at a cap, and starts small again once things work — so they
share this class, and a change to that rule (or a bug in it) is made once.

Why not ``tenacity``/``backoff``: those wrap *a call* to retry; these loops are supervisors and pollers that keep
running, report each wait to the operator, and decide for themselves what counts as "working again". They need
only the sequence of delays, which is these few lines.

The delays are jittered (each drawn from the upper part of its ceiling): many oracles cut off by the same outage
then do not all come back in the same second. :meth:`Backoff.next_delay` returns the very delay the caller waits,
so what a status line says ("retry in 7 s") is what happens.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for retrying after consecutive failures: ``first``, then doubling up to ``cap``, jittered.

    ``jitter`` is the fraction of each ceiling that is random: a delay is drawn from
    ``[ceiling * (1 - jitter), ceiling]`` (0: exact doubling; the default 0.5 never waits less than half).
    ``immediate`` failures after a :meth:`reset` are retried at once (delay 0) before the doubling starts: a
    supervisor restarts a receiver that ended once without delay, and backs off only while it keeps failing.
    """

    __slots__ = ("first", "cap", "jitter", "immediate", "failures", "last", "_rng")

    def __init__(self, first: float, cap: float, *, jitter: float = 0.5, immediate: int = 0,
                 rng: random.Random | None = None) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < first <= cap, got first={first} cap={cap}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"backoff jitter is a fraction from 0 to 1, got {jitter}")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self.immediate = max(0, immediate)
        self.failures = 0
        """Delays handed out since the last :meth:`reset` (the failures in a row)."""
        self.last = 0.0
        """The delay :meth:`next_delay` returned last (0 after a reset)."""
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The longest the next delay can be (0 while retries still go at once)."""
        steps = self.failures - self.immediate
        if steps < 0:
            return 0.0
        return min(self.cap, self.first * 2.0 ** min(steps, 64))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next try (the caller waits exactly this)."""
        top = self.ceiling()
        self.failures += 1
        self.last = self._rng.uniform(top * (1.0 - self.jitter), top) if top and self.jitter else top
        return self.last

    def reset(self) -> None:
        """It worked (or ran long enough to count as working): the next failure starts from the shortest delay."""
        self.failures = 0
        self.last = 0.0
