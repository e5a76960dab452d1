"""``python -m pilot_tui`` — same as the ``pilot-tui`` command."""

import sys

from pilot_tui.cli import main

sys.exit(main())
