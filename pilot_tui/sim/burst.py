"""Synthetic "one line, one detection" logs for the end-to-end tests, the chaos run and the benchmarks.

With :data:`BURST_RULES` every ``burst[1]: alert from IP`` line fires exactly one event (``maxretry = 1``) and each
line names a distinct address, so no window or cooldown merges two lines: the set of source IPs an orchestrator
stored can be compared line for line with what was written.
"""

from __future__ import annotations

ANOMALY = "burst_test"
"""The anomaly every burst line produces."""

BURST_RULES = f"""
[[filter]]
name = "burst"
prefix = 'burst\\[\\d+\\]: '

[[filter.patterns]]
id = "hit"
regex = 'alert from (?P<ip>[0-9.]+)$'

[[rule]]
name = "burst-hit"
filter = "burst"
patterns = ["hit"]
anomaly = "{ANOMALY}"
severity = "low"
maxretry = 1
findtime = 60
cooldown = 3600
"""
"""A rules file (``--rules``) in which each burst line is one detection."""


def burst_ip(i: int) -> str:
    """The ``i``-th distinct address (198.18.0.0/15, RFC 2544's benchmarking range; 131,072 of them)."""
    return f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 255}.{i & 255}"


def burst_line(i: int) -> str:
    """One log line (with its newline) that :data:`BURST_RULES` turns into one detection from ``burst_ip(i)``."""
    return f"Nov 25 12:00:01 host burst[1]: alert from {burst_ip(i)}\n"


def burst_lines(start: int, count: int) -> str:
    """Lines ``start … start+count-1``."""
    return "".join(burst_line(i) for i in range(start, start + count))
