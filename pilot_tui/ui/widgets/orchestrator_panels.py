"""Panels around the threat feed: the status lines (receivers, totals, filter) and the stats strip.

The text builders are pure functions of engine state, so tests call them without an app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label

from ..filters import ViewFilter
from ..format import fmt_age, safe
from ..tones import BAD, BAD_SOFT, GOOD_SOFT, INFO, WARN_SOFT
from .spark import Bars
from .status_line import StatusLine

RECEIVER_STYLES = {"running": GOOD_SOFT, "degraded": WARN_SOFT, "starting": INFO, "restarting": WARN_SOFT,
                   "error": BAD_SOFT}


def receivers_text(receivers: Mapping[str, Any], now: float) -> Text:
    """``stream sdk running · 0 restarts · last 3s`` for each supervised receiver (or ``no receivers``)."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    if not receivers:
        text.append("receivers: none running", style="dim")
        return text
    for i, (name, state) in enumerate(sorted(receivers.items())):
        if i:
            text.append("  ")
        text.append(f"{name}", style="bold")
        if state.kind and state.kind != name:
            text.append(f" {state.kind}")
        text.append(f" {state.state}", style=RECEIVER_STYLES.get(state.state, ""))
        if state.restarts:
            text.append(f" ↻{state.restarts}", style=WARN_SOFT)
        last = None if state.last_message_at is None else now - state.last_message_at
        text.append(f" last {fmt_age(last)}", style="dim")
    return text


RECEIVER_KINDS = {"sdk": "SDK stream server (replies with stored ids)", "sim": "pilot-sim stream server",
                  "recv": "pilotctl recv fallback (cannot reply)", "inbox": "daemon inbox (send-message)"}


def receiver_lines(receivers: Mapping[str, Any], now: float) -> Text:
    """One line per receiver: name, what backs it, state, restarts, last message age, detail."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    if not receivers:
        return Text("No receiver is running (this orchestrator was started without them).", style="dim")
    for i, (name, state) in enumerate(sorted(receivers.items())):
        if i:
            text.append("\n")
        text.append(f"{name:<7}", style="bold")
        text.append(f"{RECEIVER_KINDS.get(state.kind, state.kind or '—')}  ")
        text.append(state.state, style=RECEIVER_STYLES.get(state.state, ""))
        text.append(f"  restarts {state.restarts}", style=WARN_SOFT if state.restarts else "dim")
        last = None if state.last_message_at is None else now - state.last_message_at
        text.append(f"  last message {fmt_age(last)}{' ago' if last is not None else ''}", style="dim")
        if state.detail:
            text.append(f"  {safe(state.detail)}", style="italic dim")
    return text


def status_text(*, receivers: Mapping[str, Any], total: int, shown: int, quarantined: int, exec_node: str | None,
                flt: ViewFilter, now: float, counting: bool = False) -> Text:
    """The two status lines over the feed."""
    text = receivers_text(receivers, now)
    text.append("  exec ", style="dim")
    text.append(safe(exec_node) if exec_node else "off", style="bold" if exec_node else "dim")
    text.append("\n")
    text.append(f"{total:,}", style="bold")
    text.append(" events")
    if flt.active:
        text.append(" · showing ")
        text.append(f"≥{shown:,} (counting…)" if counting else f"{shown:,}", style="bold")
        text.append(" · filter ")
        text.append(safe(flt.describe()), style="italic")
    text.append(" · quarantine ")
    text.append(f"{quarantined:,}", style=BAD if quarantined else "dim")
    return text


def top_sources_text(rows: Sequence[tuple[str, int]], limit: int = 5) -> Text:
    """Top source IPs with their event counts, one per line: the count first (right-aligned), so a long IPv6
    address in a narrow box can only push its own end off the line, never the count."""
    if not rows:
        return Text("no events yet", style="dim")
    shown = [(safe(ip), f"{n:,}") for ip, n in rows[:limit]]
    width = max(len(n) for _, n in shown)
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    for i, (ip, n) in enumerate(shown):
        if i:
            text.append("\n")
        text.append(n.rjust(width), style="bold")
        text.append(f"  {ip}")
    return text


class StatsStrip(Horizontal):
    """Top sources and an events-per-minute sparkline (last 30 minutes)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="top-box"):
            yield Label("Top sources", classes="panel-title")
            yield StatusLine(id="top-sources")
        with Vertical(id="rate-box"):
            yield StatusLine(id="rate-title", classes="panel-title")
            yield Bars(id="rate")

    def show(self, top: Sequence[tuple[str, int]], per_minute: Sequence[int]) -> None:
        self.query_one("#top-sources", StatusLine).show(top_sources_text(top))
        self.query_one("#rate", Bars).show(per_minute)
        peak = max(per_minute) if per_minute else 0
        self.query_one("#rate-title", StatusLine).show(Text(f"Events / minute (30 min) · peak {peak:,}"))
