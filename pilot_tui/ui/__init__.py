"""The Textual dashboard: shows engine state, sends user intents; no business logic (see shared/design.md).

Map:

* ``app.py`` — :func:`make_app` (the factory the CLI and tests share), the App: views as modes, engine workers,
  the update pump (engine bus → bounded :mod:`bridge` → one :class:`messages.EngineUpdates` per tick), the one
  place worker errors become notifications.
* ``screens/`` — ``feed`` (orchestrator), ``oracle``, ``executor``, ``demo`` views; ``incidents``, ``sensors``
  (receivers, sensors and trust), ``quarantine`` pushed over the feed; ``dialogs``, ``help``, ``detail``.
  Each screen has its ``.tcss`` next to it.
* ``widgets/`` — the virtual ``FeedTable`` (Line API over the store), detail pane, panels (pure text builders),
  status lines and key hints that repaint without re-layout, ``widgets.tcss``.
* ``feedquery.py`` / ``filters.py`` / ``reader.py`` — read-only store access: the paged feed window, the ``/``
  filter, aggregate queries in a worker thread.
* ``format.py`` / ``notices.py`` — pure helpers; attacker text only ever becomes ``rich.text.Text``.
* ``sample.py`` — deterministic sample engines and data for screenshots, snapshot tests and the bench.

Importing this package does not import Textual; ``pilot_tui.ui.app`` does.
"""
