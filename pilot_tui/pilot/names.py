"""What Pilot accepts as a hostname, an address, a message id and a topic — checked before pilotctl runs.

Kept apart from the driver (only ``re``) so the command line can validate its arguments without importing the
driver's dependencies: ``pilot-tui --help`` must start fast.
"""

from __future__ import annotations

import re

HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ADDRESS_RE = re.compile(r"^\d+:[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$")
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
TOPIC_RE = re.compile(r"^(\*|[A-Za-z0-9._:/-]{1,128})$")
"""A topic to subscribe to; ``*`` (every topic) is not a topic one can publish on."""
