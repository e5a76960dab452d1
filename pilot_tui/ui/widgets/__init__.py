"""Widgets the screens are built from; each renders engine state handed to it, none talks to an engine."""
