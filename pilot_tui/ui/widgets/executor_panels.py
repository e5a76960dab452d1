"""Pieces of the executor view as pure functions: status, banner, block and decision rows, decision detail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..format import fmt_hms, fmt_iso, fmt_remaining, safe, safe_text, truncate

OUTCOME_STYLES = {"applied": "bold green", "already_applied": "green", "refused": "bold yellow",
                  "failed": "bold red", "expired": "cyan", "duplicate": "dim"}


def banner_text(dry_run: bool) -> Text:
    """The dry-run banner (empty when a real backend is in use)."""
    if not dry_run:
        return Text("")
    return Text(" DRY-RUN · nothing is applied to the firewall · decisions show what would run ", style="bold",
                justify="center")


def executor_status_text(state: Any, now: float) -> Text:
    """Two lines: identity, backend and whom we obey (a pinned hostname as ``name=address``); then the inbox watcher
    and counters. A third, red, line per ``--obey`` hostname that now resolves to another node than its pin — the
    sign of a hostname takeover, so it must not scroll away in a notification only."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append("node ", style="dim")
    text.append(safe(state.hostname), style="bold")
    text.append(f" ({safe(state.address or 'address unknown')})", style="dim")
    text.append("  backend ", style="dim")
    text.append(safe(state.backend), style="bold yellow" if state.backend == "dry-run" else "bold")
    text.append("  obeys ", style="dim")
    pinned = {address: host for host, address in getattr(state, "obey_pins", ())}
    obey = [*(f"{pinned[a]}={a}" if a in pinned else a for a in state.obey_addresses),
            *(f"{h}?" for h in state.obey_unresolved)]
    text.append(safe(", ".join(obey)) if obey else "nobody (start with --obey)", style="bold" if obey else "bold red")
    text.append("\n")
    inbox = state.inbox
    text.append("inbox ", style="dim")
    text.append(safe(inbox.state), style="green" if inbox.state in ("watching", "polling") else "yellow")
    if inbox.last_message_at:
        text.append(f" · last message {fmt_hms(inbox.last_message_at)}", style="dim")
    if inbox.last_error is not None:
        err = inbox.last_error
        text.append(f"  {safe(err.code)}: {safe(err.message)}", style="red")
        if err.hint:
            text.append(f" (hint: {safe(err.hint)})", style="italic")
    text.append(f" · {state.active_blocks} active block{'s' if state.active_blocks != 1 else ''}")
    text.append(f" · {state.pending_replies} repl{'ies' if state.pending_replies != 1 else 'y'} pending",
                style="yellow" if state.pending_replies else "dim")
    for conflict in getattr(state, "obey_conflicts", ()):
        text.append("\n")
        text.append("OBEY PIN CONFLICT ", style="bold reverse red")
        text.append(" " + safe(conflict), style="bold red")
    return text


def block_row(block: Any, now: float) -> tuple[Text, Text, str, Text, Text]:
    """(IP, time left, backend, requester, reason) of one active block."""
    left = block.expires_at - now
    return (
        Text(safe(block.ip), style="bold"),
        Text(fmt_remaining(left), style="yellow" if left < 300 else ""),
        safe(block.backend),
        Text(truncate(safe(block.sender), 20)),
        Text(truncate(safe(block.reason or "—"), 24)),
    )


def outcome(row: Mapping[str, Any]) -> str:
    """The outcome label of a history row (duplicates are marked as such)."""
    return "duplicate" if row.get("kind") == "duplicate" else str(row.get("status") or "?")


DECISION_COLUMNS = ("TIME", "OUTCOME", "IP", "DETAIL", "ACTION", "FROM")


def decision_row(row: Mapping[str, Any]) -> tuple[str, Text, Text, Text, str, Text]:
    """One decision as (time, outcome, IP, detail, action, sender) — the columns of :data:`DECISION_COLUMNS`."""
    label = outcome(row)
    return (
        fmt_hms(row.get("at")),
        Text(label.replace("already_applied", "already"), style=OUTCOME_STYLES.get(label, "")),
        Text(safe(row.get("ip") or "—"), style="bold"),
        Text(truncate(safe(row.get("detail") or ""), 60)),
        safe(row.get("action") or "—"),
        Text(truncate(safe(row.get("sender") or "—"), 18)),
    )


def decision_detail(row: Mapping[str, Any]) -> RenderableType:
    """Every field of a decision, including the argv of each command run (or that would run in dry-run)."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for key in ("kind", "status", "action", "ip", "sender", "request_id", "message_id", "detail"):
        grid.add_row(key, safe_text(row.get(key) or "—"))
    grid.add_row("at", safe_text(fmt_iso(row.get("at"))))
    parts: list[RenderableType] = [grid, Text(""), Text("commands", style="bold underline")]
    argv = row.get("argv") or []
    for cmd in argv:
        parts.append(safe_text(" ".join(str(a) for a in cmd)))
    if not argv:
        parts.append(Text("none", style="dim italic"))
    return Group(*parts)
