"""Command palette (ctrl+p) entries for the main actions of every view that exists."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

ENTRIES: tuple[tuple[str, str, str, str], ...] = (
    ("feed", "filter", "Feed: filter events", "By IP, anomaly, sensor or any text (/)"),
    ("feed", "severity", "Feed: cycle minimum severity", "info → low → medium → high → critical (s)"),
    ("feed", "hide_handled", "Feed: hide / show handled events", "Acknowledged, mitigated, false positives (h)"),
    ("feed", "acknowledge", "Feed: acknowledge selected event", "With an optional note (a)"),
    ("feed", "false_positive", "Feed: mark selected event as false positive", "With an optional note (f)"),
    ("feed", "reopen", "Feed: reopen selected event", "Back to new (o)"),
    ("feed", "mitigate", "Feed: mitigate — block the source IP", "Asks the executor node, after confirming (m)"),
    ("feed", "follow", "Feed: follow new events on / off", "Newest selected, or the selection stays put (F)"),
    ("feed", "sort", "Feed: sort by the next column", "Received → severity → count → source (S)"),
    ("feed", "copy('address')", "Feed: copy the selected address", "Terminal clipboard and a file in the state dir (c)"),
    ("feed", "copy('event')", "Feed: copy the selected event as JSON", "Terminal clipboard and a file (C)"),
    ("feed", "incidents", "Feed: incidents by source IP", "One row per attacker across sensors (i)"),
    ("feed", "sensors", "Feed: sensors and trust requests", "Approve or reject new nodes (t)"),
    ("feed", "quarantine", "Feed: quarantined payloads", "What was refused and why (x)"),
    ("oracle", "toggle_pause", "Oracle: pause / resume sending", "Detections keep queueing in the outbox (p)"),
    ("oracle", "retry", "Oracle: retry sending now", "Skip the current back-off (r)"),
    ("executor", "decision_detail", "Executor: detail of the selected decision", "Commands run and full detail (enter)"),
)
"""(view, action on that view's screen, title, help)."""

VIEW_NAMES = {"demo": "demo layout", "feed": "threat feed", "oracle": "oracle send view",
              "executor": "executor view"}


class PilotCommands(Provider):
    """Actions of the views the app has, plus switching between them."""

    def _commands(self) -> list[tuple[str, str, object]]:
        app = self.app
        views: list[str] = list(getattr(app, "views", []))
        out: list[tuple[str, str, object]] = []
        for view in views:
            out.append((f"Go to {VIEW_NAMES.get(view, view)}", f"Switch view ({views.index(view) + 1})",
                        partial(app.action_switch_view, view)))  # type: ignore[attr-defined]
        for view, action, title, help_text in ENTRIES:
            if view in views:
                out.append((title, help_text, partial(app.run_view_action, view, action)))  # type: ignore[attr-defined]
        out.append(("Show keys (help)", "Every key of the current view (?)", app.action_help))  # type: ignore[attr-defined]
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)  # type: ignore[arg-type]
