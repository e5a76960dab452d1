"""Which engine updates deserve a notification, and how an error reads in one line. No Textual import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pilot_tui.engines import executor_updates as xu
from pilot_tui.engines import updates as u
from pilot_tui.model import printable

Level = Literal["information", "warning", "error"]
"""A notification's severity: the values of Textual's ``SeverityLevel`` (this module imports no Textual)."""

NOTICE_LEVELS: dict[str, Level] = {"error": "error", "warning": "warning"}
"""A :class:`~pilot_tui.engines.updates.Notice` level as a notification's severity (any other: information)."""

MITIGATION_NOTICES: dict[str, tuple[Level, str]] = {
    "applied": ("information", "blocked"),
    "already_applied": ("information", "already blocked"),
    "refused": ("warning", "block refused"),
    "failed": ("error", "block failed"),
    "expired": ("information", "block expired"),
}

SELF_SPEAKING = ("expiry extended", "not blocked")
"""``already_applied`` details that say what happened on their own ("expiry extended to …" for a re-block, "not
blocked by this executor" for an unblock): prefixing "already blocked" would repeat or contradict them."""


def describe_error(exc: BaseException | None) -> str:
    """One line for a notification: pilotctl errors give ``code: message (hint)``; ``ValueError`` its message."""
    if exc is None:
        return "unknown error"
    one_line = getattr(exc, "one_line", None)
    if callable(one_line):
        return printable(str(one_line()))[:300]
    if isinstance(exc, ValueError):
        return printable(str(exc))[:300]
    return printable(f"{type(exc).__name__}: {exc}")[:300]


def notices_for(updates: Iterable[Any]) -> list[tuple[Level, str]]:
    """(severity, text) notifications for a batch of updates: notices, mitigation outcomes, sensor alerts."""
    out: list[tuple[Level, str]] = []
    for update in updates:
        match update:
            case u.Notice():
                level = NOTICE_LEVELS.get(update.level, "information")
                out.append((level, printable(update.message)[:300]))
            case u.MitigationUpdate() if update.status in MITIGATION_NOTICES:
                level, verb = MITIGATION_NOTICES[update.status]
                if update.status == "already_applied" and update.detail.startswith(SELF_SPEAKING):
                    out.append((level, printable(f"{update.source_ip}: {update.detail}")[:300]))  # says it: once
                    continue
                detail = f" — {update.detail}" if update.detail else ""
                out.append((level, printable(f"{update.source_ip}: {verb}{detail}")[:300]))
            case u.SensorAlert():
                out.append(("warning", printable(f"sensor {update.sensor}: {update.kind} — {update.detail}")[:300]))
            case u.SourceError():
                out.append(("warning", printable(f"log source {update.source}: {update.message}")[:300]))
            case xu.ActionFailed():
                out.append(("error",
                            printable(f"firewall {update.backend} failed for {update.ip}: {update.detail}")[:300]))
    return out
