"""The ids of the app's key bindings: what a ``[keymap]`` table in the config file may rebind.

Every binding the app defines carries an ``id`` (``Binding(..., id="filter")``); Textual's ``App.set_keymap``
replaces the keys of the bindings with those ids. The set of ids is read from the live ``BINDINGS`` of every
class in ``pilot_tui.ui`` rather than kept as a list here, so a new binding is rebindable (and a removed one an
error in the config file) without touching this module.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache

from textual.binding import Binding
from textual.dom import DOMNode

import pilot_tui.ui


@cache
def binding_ids() -> frozenset[str]:
    """Every binding id defined by the app, its screens and its widgets."""
    ids: set[str] = set()
    for info in pkgutil.walk_packages(pilot_tui.ui.__path__, "pilot_tui.ui."):
        module = importlib.import_module(info.name)
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, DOMNode):
                continue
            ids.update(b.id for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding) and b.id)
    return frozenset(ids)
