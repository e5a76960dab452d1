"""sim layer: ``pilot-sim``, a pilotctl-compatible emulator of Pilot nodes on one machine (tests, demo).

Map: ``cli*.py`` + ``inbox.py`` are the command line (short-lived, stdlib only, no asyncio); ``daemon.py``,
``streams.py``, ``services.py`` are one node process; ``registry.py`` is the shared directory that replaces
Pilot's registry and keeps trust; ``faults.py`` injects bad-network behaviour; ``sdk.py`` is the twin of the
``pilotprotocol`` SDK; ``cluster.py`` starts groups of nodes from Python. ``loggen*.py`` generate attack logs.
Nothing is imported here so that each ``pilot-sim`` invocation stays fast.
"""
