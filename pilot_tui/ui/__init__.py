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
* ``feedquery.py`` / ``filters.py`` — the paged feed window and the ``/`` filter. The UI reads engines only
  through their read API (``engine.query``, see ``engines/queries.py`` and ``store/queries.py``; slow reads through
  the app's ``reader``, in a worker thread), never their stores, SQL, sender or outbox, and dispatches updates on
  their classes, never their names: ``tests/test_layers.py`` checks both.
* ``format.py`` / ``notices.py`` — pure helpers; attacker text only ever becomes ``rich.text.Text``.

The deterministic sample engines and data behind the screenshots, snapshot tests and the bench are test code:
``tests/ui_sample.py``.

Importing this package does not import Textual; ``pilot_tui.ui.app`` does.
"""
