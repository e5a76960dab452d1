"""The analyst's feed filter: parsing what is typed after ``/`` into a store query.

``ip:203.0.113.7 anomaly:brute sensor:web-1 sev:high root`` means: that exact source IP (or an IP fragment such as
``ip:203.0.113.``), anomaly containing "brute", sensor containing "web-1", at least high severity, and "root"
anywhere (IP, anomaly, sensor or the raw event). A ``word:`` prefix that is not a known field (``foo:bar``) is an
error, not free text, so a typo never silently filters on the wrong thing; an IPv6 address is free text.

The minimum severity is part of the text (``sev:high``): the ``/`` box shows it when reopened, and replacing the text
replaces it too — what the box says is the whole typed filter.

:class:`ViewFilter` extends the store's :class:`~pilot_tui.store.feed.FeedFilter` with per-column fragments; it
only adds read-only ``WHERE`` clauses (``feed.count`` / ``feed.window`` call ``where()``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from pilot_tui.model import SEVERITY_RANK
from pilot_tui.store.feed import FeedFilter

MAX_QUERY_CHARS = 200
"""A filter longer than this is cut: it is one SQL parameter per term, never SQL text."""

FIELDS = "ip: anomaly: sensor: sev:"
"""The keys the filter knows (for error messages and the box's placeholder)."""

HANDLED_STATUSES = ("applied", "already_applied")
"""Mitigation outcomes that make a row read ``blocked`` (see :func:`pilot_tui.ui.format.state_label`)."""


class FilterError(ValueError):
    """What is wrong with a typed filter, in one line for the analyst."""


@dataclass(frozen=True, slots=True)
class ViewFilter(FeedFilter):
    """A :class:`FeedFilter` with what the UI needs to show and edit it (the query text, a one-line summary)."""

    @property
    def active(self) -> bool:
        """True when anything is filtered out."""
        return bool(self.text or self.min_severity or self.hide_handled or self.source_ip or self.ip_part
                    or self.anomaly or self.sensor)

    def where(self) -> tuple[str, list[Any]]:
        """The store's clauses, except that "hide handled" hides exactly the rows whose STATE reads handled or
        blocked: a row whose source was blocked reads ``blocked`` even while its triage state is still new."""
        where, args = FeedFilter.where(replace(self, hide_handled=False))
        if not self.hide_handled:
            return where, args
        statuses = ", ".join(f"'{s}'" for s in HANDLED_STATUSES)
        clause = ("state IN ('new', 'mitigating') AND (mitigation IS NULL OR NOT json_valid(mitigation) OR "
                  f"COALESCE(json_extract(mitigation, '$.status'), '') NOT IN ({statuses}))")
        return (f"{where} AND {clause}" if where else f" WHERE {clause}"), args

    def query(self) -> str:
        """The text form of the typed part (what the ``/`` box shows when reopened), severity included."""
        parts = []
        if self.source_ip or self.ip_part:
            parts.append(f"ip:{self.source_ip or self.ip_part}")
        if self.anomaly:
            parts.append(f"anomaly:{self.anomaly}")
        if self.sensor:
            parts.append(f"sensor:{self.sensor}")
        if self.min_severity:
            parts.append(f"sev:{_severity_key(self.min_severity)}")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def describe(self) -> str:
        """One line for the status bar, e.g. ``ip:1.2.3.4 · ≥high · open only``."""
        typed = replace(self, min_severity=0).query()
        parts = [typed] if typed else []
        if self.min_severity:
            parts.append(f"≥{_severity_key(self.min_severity)}")
        if self.hide_handled:
            parts.append("open only")
        return " · ".join(parts) if parts else "all events"


def _severity_key(rank: int) -> str:
    return next(k for k, v in SEVERITY_RANK.items() if v == rank)


def _is_address(token: str) -> bool:
    try:
        ipaddress.ip_address(token.strip("[]"))
    except ValueError:
        return False
    return True


def parse_query(query: str, base: ViewFilter | None = None) -> ViewFilter:
    """Turn the ``/`` box text into a filter, keeping ``base``'s hide-handled setting.

    The text is the whole typed filter: fields it does not name are cleared (``sev:`` included). Raises
    :class:`FilterError` for an unknown ``field:`` or a severity that does not exist.
    """
    base = base or ViewFilter()
    ip = ip_part = anomaly = sensor = ""
    min_sev = 0
    free: list[str] = []
    for token in query[:MAX_QUERY_CHARS].split():
        key, sep, value = token.partition(":")
        key = key.lower()
        if not sep or _is_address(token) or not key.isalpha():
            free.append(token)
        elif not value:
            raise FilterError(f"{key}: needs a value, e.g. {key}:something")
        elif key in ("ip", "src", "source"):
            try:
                ip = str(ipaddress.ip_address(value))
            except ValueError:
                ip_part = value
        elif key in ("anomaly", "a"):
            anomaly = value
        elif key in ("sensor", "s"):
            sensor = value
        elif key in ("sev", "severity"):
            if value.lower() not in SEVERITY_RANK:
                raise FilterError(f"unknown severity {value!r}: use {', '.join(SEVERITY_RANK)}")
            min_sev = SEVERITY_RANK[value.lower()]
        else:
            raise FilterError(f"unknown field {key!r}: use {FIELDS} or plain text")
    return replace(base, text=" ".join(free), source_ip=ip, ip_part=ip_part, anomaly=anomaly, sensor=sensor,
                   min_severity=min_sev)
