"""``python -m pilot_tui.sim`` runs the pilot-sim command line (same as the ``pilot-sim`` script)."""

import sys

from .cli import main

sys.exit(main())
