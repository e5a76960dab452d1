"""pilot-tui: move threat detections between machines over the Pilot Protocol network."""

__version__ = "0.1.0"
