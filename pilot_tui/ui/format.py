"""Small, pure formatting helpers shared by the views (no Textual import, so plain tests cover them).

Everything that may carry attacker-controlled text (evidence lines, user names, log paths, sensor names,
handshake justifications, payload samples) goes through :func:`safe_text`: it is passed through
:func:`pilot_tui.model.printable` and wrapped in a :class:`rich.text.Text` — never interpolated into markup.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from rich.text import Text

from pilot_tui.model import SEVERITIES, printable

SEVERITY_SHORT: dict[int, str] = {0: "info", 1: "low", 2: "medium", 3: "high", 4: "critical"}
"""Severity rank → label shown in tables."""


def severity_name(rank: int) -> str:
    """Label of a severity rank (clamped to the known range)."""
    return SEVERITIES[max(0, min(len(SEVERITIES) - 1, rank))]


def fmt_age(seconds: float | None) -> str:
    """A compact age: ``4s``, ``12m``, ``3h``, ``2d``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    s = max(0.0, seconds)
    if s < 60:
        return f"{int(s)}s"
    if s < 3600:
        return f"{int(s // 60)}m"
    if s < 86400:
        return f"{int(s // 3600)}h"
    return f"{int(s // 86400)}d"


def fmt_remaining(seconds: float | None) -> str:
    """Time left until something happens (``12m`` / ``expired``)."""
    if seconds is None:
        return "—"
    if seconds <= 0:
        return "expired"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def fmt_bytes(n: int | None) -> str:
    """Human sizes with binary units: ``512 B``, ``1.2 KiB``, ``3.4 MiB``."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def fmt_hms(epoch: float | None) -> str:
    """``HH:MM:SS`` (UTC) of a Unix time."""
    if epoch is None:
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(epoch))


def fmt_iso(epoch: float | None) -> str:
    """``2026-11-25 12:00:03Z`` (UTC) of a Unix time."""
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def fmt_when(epoch: float | None, now: float, *, narrow: bool = False) -> str:
    """When something happened, in UTC: ``12:00:03`` today, else the date too (``11-24 12:00``; ``Nov 24`` when
    ``narrow`` — eight cells; the detail pane has the full time); ``2025-11-24`` from another year."""
    if epoch is None:
        return "—"
    when, today = time.gmtime(epoch), time.gmtime(now)
    if when[:3] == today[:3]:
        return time.strftime("%H:%M:%S", when)
    if when.tm_year != today.tm_year:
        return time.strftime("%Y-%m-%d", when)
    return time.strftime("%b %d" if narrow else "%m-%d %H:%M", when)


def _ts_utc(ts: str | None) -> datetime | None:
    """An event's ISO ``ts`` as an aware UTC time (a zone-less one is read as UTC); ``None`` when missing or
    unreadable — the event's own text, so anything may be in it."""
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def ts_hms(ts: str | None) -> str:
    """``HH:MM:SS`` of an event's ISO ``ts`` (shown in UTC); empty when missing or unreadable."""
    dt = _ts_utc(ts)
    return dt.strftime("%H:%M:%S") if dt is not None else ""


def ts_when(ts: str | None, now: float) -> str:
    """An event's ISO ``ts`` as :func:`fmt_when` shows it (the date too when not today); empty when unreadable."""
    dt = _ts_utc(ts)
    return fmt_when(dt.timestamp(), now) if dt is not None else ""


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells with an ellipsis (cell widths of plain ASCII; wide glyphs are rare here)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if width > 1 else text[:1]


def safe(value: object) -> str:
    """Attacker-controlled value as a terminal-safe plain string (control/bidi characters made visible)."""
    return printable("" if value is None else str(value))


def safe_text(value: object, style: str = "") -> Text:
    """Attacker-controlled value as a ``Text`` object: never parsed as markup, control characters made visible."""
    return Text(safe(value), style=style)


MITIGATION_LABELS: dict[str, str] = {
    "requested": "blocking…",
    "sent": "blocking…",
    "applied": "blocked",
    "already_applied": "blocked",
    "refused": "refused",
    "failed": "block failed",
    "expired": "unblocked",
}
"""How a mitigation request's status reads in the feed's state column."""


def state_label(state: str, mitigation: Mapping[str, Any] | None) -> tuple[str, str]:
    """The feed's state cell and a style key (``new``, ``handled``, ``mitigated``, ``pending``, ``bad``).

    A mitigation outcome wins over the triage state, so "the outcome shows on the row".
    """
    status = str(mitigation.get("status", "")) if mitigation else ""
    if status in ("applied", "already_applied"):
        return MITIGATION_LABELS[status], "mitigated"
    if status in ("requested", "sent") or state == "mitigating":
        return "blocking…", "pending"
    if status in ("refused", "failed"):
        return MITIGATION_LABELS[status], "bad"
    if state == "mitigated":
        return "blocked", "mitigated"
    if state == "acknowledged":
        return "ack", "handled"
    if state == "false_positive":
        return "false pos.", "handled"
    if status == "expired":
        return "unblocked", "new"
    return state, "new"
