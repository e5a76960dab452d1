"""The one retry back-off every loop uses: how long it waits, that it stops growing, and that it starts over."""

from __future__ import annotations

import random

import pytest

from pilot_tui.backoff import Backoff


def test_delays_double_up_to_the_cap_and_stay_in_the_jitter_band() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(40)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(40)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0 and all(4.0 <= d for d in delays[5:])  # capped, never below half the cap
    assert len(set(delays[5:])) > 1  # jittered: many oracles do not retry in the same second
    assert backoff.failures == 40 and backoff.last == delays[-1]


def test_without_jitter_the_sequence_is_exact() -> None:
    backoff = Backoff(1.0, 5.0, jitter=0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_reset_starts_again_from_the_shortest_delay() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0)
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0 and backoff.last == 0.0
    assert backoff.next_delay() == 1.0


def test_immediate_retries_come_first_then_the_doubling() -> None:
    """The receivers' supervisor: one ending is restarted at once; only repeated fast failures wait."""
    backoff = Backoff(0.4, 5.0, jitter=0, immediate=1)
    assert [backoff.next_delay() for _ in range(7)] == [0.0, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 0.0


def test_thousands_of_failures_do_not_overflow() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(5000):
        assert backoff.next_delay() <= 30.0


@pytest.mark.parametrize(("first", "cap", "jitter"), [(0, 1, 0.5), (-1, 1, 0.5), (2, 1, 0.5), (1, 2, 1.5)])
def test_settings_that_cannot_work_are_refused(first: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(first, cap, jitter=jitter)
