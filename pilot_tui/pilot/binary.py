"""Finding the pilotctl binary.

Order (design.md): ``--pilotctl PATH``, then ``$PILOTCTL``, then ``pilotctl`` on ``PATH``, then the binary shipped
inside the installed ``pilotprotocol`` wheel (``<site-packages>/pilotprotocol/bin/pilotctl``). The last one matters
for tests: the wheel's console script copies itself into ``~/.pilot/bin`` on first use, the inner binary does not.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .errors import BinaryNotFound

INSTALL_HINT = "install it with: pip install 'pilot-tui[pilot]'  (or pass --pilotctl PATH / set $PILOTCTL)"


def packaged_pilotctl() -> Path | None:
    """The pilotctl binary inside the installed ``pilotprotocol`` package, if any (found without importing it)."""
    spec = importlib.util.find_spec("pilotprotocol")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "pilotctl"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_pilotctl(explicit: str | None = None, *, environ: dict[str, str] | None = None) -> str:
    """Return the path of the pilotctl (or pilot-sim) to run, or raise :class:`BinaryNotFound` with a hint.

    An explicit path or ``$PILOTCTL`` that does not exist is an error (the user asked for that one), not a reason to
    fall back silently to another binary.
    """
    env = os.environ if environ is None else environ
    for origin, value in (("--pilotctl", explicit), ("$PILOTCTL", env.get("PILOTCTL"))):
        if value:
            found = shutil.which(value, path=env.get("PATH")) if os.sep not in value else value
            if found and os.path.isfile(found) and os.access(found, os.X_OK):
                return found
            raise BinaryNotFound(f"{origin} {value!r} is not an executable file", hint=INSTALL_HINT)
    on_path = shutil.which("pilotctl", path=env.get("PATH"))
    if on_path:
        return on_path
    packaged = packaged_pilotctl()
    if packaged:
        return str(packaged)
    raise BinaryNotFound("pilotctl not found (not on PATH, no pilotprotocol package)", hint=INSTALL_HINT)
