"""Colours of the Rich text the views build in Python, as theme variables, so light mode and user themes apply.

Panels and table cells are built as ``rich.text.Text`` by pure functions (they do not know the app). Their
styles name a theme variable instead of a colour (``"bold $text-error"``, the constants below); the app
registers each of these names as a Rich theme style on its console, resolved against the current Textual
theme, and again whenever the theme changes (:func:`rich_theme`). Text rendered outside the app (a plain Rich
console, in tests) shows the words without those colours.

The variables are the ones the ``.tcss`` files use for the same meanings (the feed table's severities, for one):
``$text-error`` for failures, ``$text-warning`` for what needs attention, ``$text-success`` for what worked,
``$text-primary`` for neutral information.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.style import Style
from rich.theme import Theme
from textual.color import Color

BAD = "bold $text-error"
BAD_SOFT = "$text-error"
WARN = "bold $text-warning"
WARN_SOFT = "$text-warning"
GOOD = "bold $text-success"
GOOD_SOFT = "$text-success"
INFO = "$text-primary"
PAUSED = "bold reverse $text-warning"
ALARM = "bold reverse $text-error"

TONES = (BAD, BAD_SOFT, WARN, WARN_SOFT, GOOD, GOOD_SOFT, INFO, PAUSED, ALARM)
"""Every style name that mentions a theme variable (the only ones :func:`rich_theme` defines)."""

SEVERITY = ("dim", INFO, WARN_SOFT, WARN, BAD)
"""info → critical, as the feed table's ``.feed-table--sev-*`` rules colour them."""


def resolve(name: str, variables: Mapping[str, str]) -> Style:
    """``name`` with each ``$variable`` replaced by its colour in ``variables`` (``App.theme_variables``)."""
    words = [Color.parse(variables[w[1:]]).hex6 if w.startswith("$") else w for w in name.split()]
    return Style.parse(" ".join(words))


def rich_theme(variables: Mapping[str, str]) -> Theme:
    """The Rich theme that gives each of :data:`TONES` its colour in the current Textual theme."""
    return Theme({name: resolve(name, variables) for name in TONES}, inherit=False)
