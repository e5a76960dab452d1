"""Pieces of the oracle view: status lines, the send log's lines, and rows for the files and detections tables.

Pure functions of engine state and updates (no Textual import), so plain tests cover them.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from pilot_tui.engines.queries import SendStatus
from pilot_tui.engines.updates import SendResult
from pilot_tui.model import ThreatEvent

from ..format import fmt_age, fmt_bytes, fmt_hms, safe, truncate, ts_hms, ts_when
from ..tones import BAD, BAD_SOFT, GOOD, GOOD_SOFT, PAUSED, SEVERITY, WARN, WARN_SOFT

PEER_STYLES = {"reachable": GOOD, "unknown": "dim", "unreachable": BAD, "no-trust": WARN,
               "daemon-down": BAD, "stalled": WARN}


def oracle_status_text(*, sensor: str, status: SendStatus, lines_read: int, detections: int,
                       last_error: str = "") -> Text:
    """Two lines: who sends to whom and how, then the outbox and counters."""
    paused, peer_state, peer, port, transport = status.paused, status.peer_state, status.peer, status.port, \
        status.transport
    depth, oldest_age, counts, in_flight, hedges = status.depth, status.oldest_age, status.counts, \
        status.in_flight, status.hedges
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append("sending ", style="dim")
    text.append(" PAUSED " if paused else "on", style=PAUSED if paused else GOOD)
    text.append(" · pilot ", style="dim")
    text.append(peer_state, style=PEER_STYLES.get(peer_state, ""))
    text.append(" · ", style="dim")
    text.append(safe(sensor or "this node"), style="bold")
    text.append(" → ", style="dim")
    text.append(f"{safe(peer)}:{port}", style="bold")
    text.append(" via ", style="dim")
    text.append(transport, style="bold")
    text.append("\n")
    text.append("outbox ", style="dim")
    text.append(f"{depth:,} pending", style=WARN if depth else "bold")
    text.append(" · oldest ")
    text.append(fmt_age(oldest_age), style=BAD if oldest_age and oldest_age > 60 else "bold")
    if in_flight:
        text.append(f" · {in_flight} in flight")
    text.append(f" · delivered {counts.get('delivered', 0):,} · rejected {counts.get('rejected', 0):,}")
    if hedges:
        text.append(f" · resent slow {hedges:,}", style="dim")
    text.append(f" · lines {lines_read:,} · detections {detections:,}", style="dim")
    if last_error:
        text.append("  ")
        text.append(safe(last_error), style=BAD_SOFT)
    return text


def send_result_text(result: SendResult) -> Text:
    """One send-log entry: time, outcome, size, latency, and the pilotctl error code and hint on failure (long
    failures wrap onto more lines)."""
    text = Text(end="")
    text.append(fmt_hms(result.at), style="dim")
    if result.ok:
        text.append(" ✓ ", style=GOOD)
    else:
        text.append(" ✗ ", style=BAD)
    text.append(f"{result.events:>3} ev {fmt_bytes(result.bytes):>9} {result.latency_ms:6.0f} ms ")
    if result.ok:
        text.append(result.ack, style=GOOD_SOFT if result.ack == "stored" else WARN_SOFT)
        if result.hedged:
            text.append(" (sent twice: first try slow)", style="dim")
        if result.duplicates:
            text.append(f" dup {result.duplicates}", style="dim")
        if result.rejected:
            text.append(f" rejected {result.rejected}", style=BAD)
    else:
        text.append(safe(result.error_code or "error"), style=BAD)
        if result.error:
            text.append(f" {safe(truncate(result.error, 60))}")
        if result.hint:
            text.append(" — hint: ", style="dim")
            text.append(safe(truncate(result.hint, 80)), style="italic")
        if result.retry_in_s:
            text.append(f" · retry in {result.retry_in_s:.0f}s", style="dim")
    return text


def file_row(stats: Any) -> tuple[Text, str, str, str, str, Text]:
    """(path, size, offset, lines/s, rotations, state) of one followed file (``FileStats`` or journal stats)."""
    path = getattr(stats, "path", None) or "journal:" + ",".join(getattr(stats, "units", ()) or ("all",))
    state = str(getattr(stats, "state", ""))
    rotations = getattr(stats, "rotations", getattr(stats, "restarts", 0))
    size = getattr(stats, "size", None)
    offset = getattr(stats, "offset", None)
    return (
        Text(safe(path), overflow="ellipsis", no_wrap=True),
        fmt_bytes(size) if size is not None else "—",
        fmt_bytes(offset) if offset is not None else "—",
        f"{getattr(stats, 'lines_per_s', 0.0):.1f}",
        str(rotations),
        Text(safe(state), style=BAD_SOFT if state.startswith("error") else GOOD_SOFT if state == "following" else WARN_SOFT),
    )




def detection_row(event: ThreatEvent, now: float | None = None) -> tuple[str, Text, Text, str, Text]:
    """(event time, severity, source IP, count, anomaly) of one detection: what must never be cut comes first,
    the anomaly name (the one that may be cut) last. The date shows when the event is not from today."""
    return (
        ts_when(event.ts, now) if now is not None else ts_hms(event.ts),
        Text(event.severity, style=SEVERITY[event.severity_rank]),
        Text(safe(event.source_ip), style="bold"),
        str(event.count or ""),
        Text(safe(event.anomaly), no_wrap=True, overflow="ellipsis"),
    )
