"""Where pilot-tui keeps things. Every path the program uses comes from here.

Defaults follow the platform conventions (platformdirs: ``~/.local/state/pilot-tui`` and ``~/.config/pilot-tui`` on
Linux); ``--state-dir`` / ``--config`` or ``$PILOT_TUI_STATE_DIR`` / ``$PILOT_TUI_CONFIG`` override them. Each mode
keeps its own database file so an oracle and an orchestrator on one machine never share state by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_config_path, user_state_path

APP = "pilot-tui"


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory (created 0700 if missing)."""
    chosen = override or os.environ.get("PILOT_TUI_STATE_DIR")
    path = Path(chosen).expanduser() if chosen else user_state_path(APP)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def db_path(mode: str, override: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file of one mode (``oracle``, ``orchestrator``, ``executor``)."""
    return state_dir(override) / f"{mode}.db"


def default_config_file() -> Path:
    """The TOML config read when ``--config`` is not given (it need not exist)."""
    env = os.environ.get("PILOT_TUI_CONFIG")
    return Path(env).expanduser() if env else user_config_path(APP) / "config.toml"


def signing_key_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The orchestrator's Ed25519 key for what it publishes to followers (kept so their pinned key stays valid)."""
    return state_dir(override) / "orchestrator-signing.key"


def pinned_key_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The orchestrator public key a follower pinned (``pilot-tui follow``), so a restart does not trust anew."""
    return state_dir(override) / "follow-pinned.pub"
