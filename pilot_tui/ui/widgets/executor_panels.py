"""Pieces of the executor view as pure functions: status, banner, block and decision rows, decision detail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..format import fmt_hms, fmt_iso, fmt_remaining, fmt_when, safe, safe_text, truncate
from ..tones import ALARM, BAD, BAD_SOFT, GOOD, GOOD_SOFT, INFO, WARN, WARN_SOFT

OUTCOME_STYLES = {"applied": GOOD, "already_applied": GOOD_SOFT, "refused": WARN,
                  "failed": BAD, "expired": INFO, "duplicate": "dim"}


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
    text.append(safe(state.backend), style=WARN if state.backend == "dry-run" else "bold")
    text.append("  obeys ", style="dim")
    pinned = {address: host for host, address in getattr(state, "obey_pins", ())}
    obey = [*(f"{pinned[a]}={a}" if a in pinned else a for a in state.obey_addresses),
            *(f"{h}?" for h in state.obey_unresolved)]
    text.append(safe(", ".join(obey)) if obey else "nobody (start with --obey)", style="bold" if obey else BAD)
    text.append("\n")
    inbox = state.inbox
    text.append("inbox ", style="dim")
    text.append(safe(inbox.state), style=GOOD_SOFT if inbox.state in ("watching", "polling") else WARN_SOFT)
    if inbox.last_message_at:
        text.append(f" · last message {fmt_hms(inbox.last_message_at)}", style="dim")
    if inbox.last_error is not None:
        err = inbox.last_error
        text.append(f"  {safe(err.code)}: {safe(err.message)}", style=BAD_SOFT)
        if err.hint:
            text.append(f" (hint: {safe(err.hint)})", style="italic")
    text.append(f" · {state.active_blocks} active block{'s' if state.active_blocks != 1 else ''}")
    text.append(f" · {state.pending_replies} repl{'ies' if state.pending_replies != 1 else 'y'} pending",
                style=WARN_SOFT if state.pending_replies else "dim")
    for conflict in getattr(state, "obey_conflicts", ()):
        text.append("\n")
        text.append("OBEY PIN CONFLICT ", style=ALARM)
        text.append(" " + safe(conflict), style=BAD)
    return text


def peer_label(address: str, name: str | None) -> str:
    """Who asked, as the operator knows them: the node's hostname when known (an ``--obey`` pin), else its Pilot
    address (``operator`` for what was done at this console)."""
    return safe(name or address)


def block_row(block: Any, now: float, name: str | None = None) -> tuple[Text, Text, Text, Text]:
    """(IP, time left, requester, reason) of one active block — the executor view's panel (the blocks view,
    ``b``, has every column)."""
    left = block.expires_at - now
    return (
        Text(safe(block.ip), style="bold"),
        Text(fmt_remaining(left), style=WARN_SOFT if left < 300 else ""),
        Text(truncate(peer_label(block.sender, name), 26)),
        Text(truncate(safe(block.reason or "—"), 24)),
    )


BLOCK_COLUMNS = ("ADDRESS", "STATE", "EXPIRES IN", "ASKED BY", "BACKEND", "UNTIL", "SINCE", "REASON")

STATE_STYLES = {"in force": GOOD_SOFT, "not applied": WARN, "removal failed": BAD}


def blocks_view_row(block: Any, state: str, name: str | None, now: float) -> tuple[Text, ...]:
    """One row of the blocks view (:data:`BLOCK_COLUMNS`): the address is never cut; the reason goes last."""
    left = block.expires_at - now
    return (
        Text(safe(block.ip), style="bold"),
        Text(state, style=STATE_STYLES.get(state, "")),
        Text(fmt_remaining(left), style=WARN_SOFT if left < 300 else ""),
        Text(truncate(peer_label(block.sender, name), 26)),
        Text(safe(block.backend)),
        Text(fmt_when(block.expires_at, now)),
        Text(fmt_when(block.created_at, now)),
        Text(truncate(safe(block.reason or "—"), 24)),
    )


def blocks_summary(blocks: list[Any], backend: str, dry_run: bool) -> Text:
    """The line above the blocks list: how many, with which backend, and what ``in force`` means in dry-run."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(f"{len(blocks)} active block{'s' if len(blocks) != 1 else ''}", style="bold")
    text.append(f" · backend {safe(backend)}")
    if dry_run:
        text.append(" · DRY-RUN: nothing is in the kernel, \"in force\" means on record", style=WARN)
    return text


def outcome(row: Mapping[str, Any]) -> str:
    """The outcome label of a history row (duplicates are marked as such)."""
    return "duplicate" if row.get("kind") == "duplicate" else str(row.get("status") or "?")


DECISION_COLUMNS = ("TIME", "OUTCOME", "IP", "FROM", "DETAIL")
"""The detail goes last: it is the one cell that may be cut (Enter shows it whole, with the action and commands)."""

NARROW_DECISION_COLUMNS = ("TIME", "OUTCOME", "IP", "DETAIL")
"""Below 120 columns FROM is dropped so the detail (the reason) stays readable: a refusal of a stranger names the
sender in its detail, and everything else comes from the node the status line names under "obeys"."""


def decision_row(row: Mapping[str, Any], names: Mapping[str, str] | None = None, *, narrow: bool = False
                 ) -> tuple[str | Text, ...]:
    """One decision as (time, outcome, IP, sender, detail) — the columns of :data:`DECISION_COLUMNS` (without the
    sender when ``narrow``); ``names`` maps a sender's Pilot address to its hostname (the ``--obey`` pins)."""
    label = outcome(row)
    sender = str(row.get("sender") or "—")
    cells: list[str | Text] = [
        fmt_hms(row.get("at")),
        Text(label.replace("already_applied", "already"), style=OUTCOME_STYLES.get(label, "")),
        Text(safe(row.get("ip") or "—"), style="bold"),
        Text(truncate(peer_label(sender, (names or {}).get(sender)), 26)),
        Text(truncate(safe(row.get("detail") or ""), 90)),
    ]
    if narrow:
        del cells[3]
    return tuple(cells)


def decision_detail(row: Mapping[str, Any], names: Mapping[str, str] | None = None) -> RenderableType:
    """Every field of a decision, including the argv of each command run (or that would run in dry-run); the
    sender with its hostname when known."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for key in ("kind", "status", "action", "ip", "sender", "request_id", "message_id", "detail"):
        value = row.get(key) or "—"
        if key == "sender" and (names or {}).get(str(value)):
            value = f"{(names or {})[str(value)]} ({value})"
        grid.add_row(key, safe_text(value))
    grid.add_row("at", safe_text(fmt_iso(row.get("at"))))
    parts: list[RenderableType] = [grid, Text(""), Text("commands", style="bold underline")]
    argv = row.get("argv") or []
    for cmd in argv:
        parts.append(safe_text(" ".join(str(a) for a in cmd)))
    if not argv:
        parts.append(Text("none", style="dim italic"))
    return Group(*parts)
