"""Screens: one per engine view (feed, oracle, executor, demo), secondary views, dialogs and help."""
