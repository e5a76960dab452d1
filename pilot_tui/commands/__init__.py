"""One module per pilot-tui mode: each has ``run(args) -> int`` and wires engines, stores and the UI."""
