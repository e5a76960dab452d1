"""A banner over the feed when nothing can arrive: this node's Pilot daemon is down, or a receiver keeps failing.

The receivers' line shows ``stream restarting ↻7`` in a few cells and the reason only in the trust panel, cut to
``not_running: daemon is not …``; an analyst watching a quiet feed must not take "nothing arrives" for "nothing
happens". So the banner says it in words, with the fix, and the receiver's own reason in full. It reads the engine's
``receivers`` itself twice a second (a view only has to place it) and hides when all is well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from ..format import safe
from ..tones import ALARM, BAD, PAUSED, WARN

FAILING = ("restarting", "error")


def daemon_down(state: Any) -> bool:
    """Whether a receiver fails because this node's daemon is not running (pilotctl's ``not_running``)."""
    detail = str(getattr(state, "detail", "") or "")
    return state.state in FAILING and ("not_running" in detail or "daemon is not running" in detail)


def receiver_banner_text(receivers: Mapping[str, Any]) -> Text | None:
    """The banner for these receiver states, or ``None`` when none is failing (a daemon that is down at once; any
    other failure once a receiver is in error or has restarted twice — one restart is a blip, not news)."""
    failing = [(name, s) for name, s in sorted(receivers.items())
               if daemon_down(s) or s.state == "error" or (s.state == "restarting" and s.restarts >= 2)]
    if not failing:
        return None
    text = Text(end="")
    down = [(name, s) for name, s in failing if daemon_down(s)]
    if down:
        text.append(" PILOT DAEMON DOWN ", style=ALARM)
        text.append(" nothing can arrive until this node's daemon runs — start it with: pilotctl daemon start",
                    style=BAD)
        shown = down
    else:
        text.append(" RECEIVER FAILING ", style=PAUSED)
        text.append(" " + ", ".join(f"{name} {s.state}" for name, s in failing) + " — events sent now may not arrive",
                    style=WARN)
        shown = failing
    for name, state in shown:
        text.append(f"\n{name}", style="bold")
        text.append(f" (retried {state.restarts}×): " if state.restarts else ": ", style="dim")
        text.append(safe(state.detail or state.state))
    return text


class ReceiverBanner(Static):
    """Shown only while a receiver of ``engine`` fails (see :func:`receiver_banner_text`)."""

    DEFAULT_CSS = """
    ReceiverBanner {
        height: auto;
        padding: 0 1;
        background: $error 15%;
        display: none;
    }
    """

    def __init__(self, engine: Any, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.engine = engine
        self._plain: str | None = None

    def on_mount(self) -> None:
        self.check()
        self.set_interval(0.5, self.check)

    def check(self) -> None:
        """Re-read the receivers; repaint (and show or hide) only when the text changed."""
        text = receiver_banner_text(getattr(self.engine, "receivers", {}) or {})
        plain = None if text is None else text.plain
        if plain == self._plain:
            return
        self._plain = plain
        self.display = text is not None
        if text is not None:
            self.update(text)
