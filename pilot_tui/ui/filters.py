"""The analyst's feed filter: parsing what is typed after ``/`` into a store query.

``ip:203.0.113.7 anomaly:brute sensor:web-1 sev:high root`` means: that exact source IP (or an IP fragment such as
``ip:203.0.113.``), anomaly containing "brute", sensor containing "web-1", at least high severity, and "root"
anywhere (IP, anomaly, sensor or the raw event). Unknown ``key:`` prefixes are kept as free text.

:class:`ViewFilter` extends the store's :class:`~pilot_tui.store.feed.FeedFilter` with per-column fragments; it
only adds read-only ``WHERE`` clauses (``feed.count`` / ``feed.window`` call ``where()``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from pilot_tui.model import SEVERITY_RANK
from pilot_tui.store.feed import FeedFilter

MAX_QUERY_CHARS = 200
"""A filter longer than this is cut: it is one SQL parameter per term, never SQL text."""


@dataclass(frozen=True, slots=True)
class ViewFilter(FeedFilter):
    """A :class:`FeedFilter` with what the UI needs to show and edit it (the query text, a one-line summary)."""

    @property
    def active(self) -> bool:
        """True when anything is filtered out."""
        return bool(self.text or self.min_severity or self.hide_handled or self.source_ip or self.ip_part
                    or self.anomaly or self.sensor)

    def query(self) -> str:
        """The text form of the typed part (what the ``/`` box shows when reopened)."""
        parts = []
        if self.source_ip or self.ip_part:
            parts.append(f"ip:{self.source_ip or self.ip_part}")
        if self.anomaly:
            parts.append(f"anomaly:{self.anomaly}")
        if self.sensor:
            parts.append(f"sensor:{self.sensor}")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def describe(self) -> str:
        """One line for the status bar, e.g. ``ip:1.2.3.4 · ≥high · open only``."""
        parts = [self.query()] if self.query() else []
        if self.min_severity:
            parts.append(f"≥{next(k for k, v in SEVERITY_RANK.items() if v == self.min_severity)}")
        if self.hide_handled:
            parts.append("open only")
        return " · ".join(parts) if parts else "all events"


def parse_query(query: str, base: ViewFilter | None = None) -> ViewFilter:
    """Turn the ``/`` box text into a filter, keeping ``base``'s severity and hide-handled settings.

    ``sev:`` sets the minimum severity; the other keys replace the typed part entirely.
    """
    base = base or ViewFilter()
    ip = ip_part = anomaly = sensor = ""
    min_sev = base.min_severity
    free: list[str] = []
    for token in query[:MAX_QUERY_CHARS].split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if sep and value and key in ("ip", "src", "source"):
            try:
                ip = str(ipaddress.ip_address(value))
            except ValueError:
                ip_part = value
        elif sep and value and key in ("anomaly", "a"):
            anomaly = value
        elif sep and value and key in ("sensor", "s"):
            sensor = value
        elif sep and value and key in ("sev", "severity") and value.lower() in SEVERITY_RANK:
            min_sev = SEVERITY_RANK[value.lower()]
        else:
            free.append(token)
    return replace(base, text=" ".join(free), source_ip=ip, ip_part=ip_part, anomaly=anomaly, sensor=sensor,
                   min_severity=min_sev)
