"""Where pilot-tui keeps things. Every path the program uses comes from here.

Defaults follow the platform conventions (platformdirs: ``~/.local/state/pilot-tui`` and ``~/.config/pilot-tui`` on
Linux); ``--state-dir`` / ``--config`` or ``$PILOT_TUI_STATE_DIR`` / ``$PILOT_TUI_CONFIG`` override them. Each mode
keeps its own database file so an oracle and an orchestrator on one machine never share state by accident.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from platformdirs import user_config_path, user_state_path

APP = "pilot-tui"


class StateError(ValueError):
    """The state directory or a state file cannot be used safely (unsafe permissions, a symlink, unwritable, corrupt).

    Its message is one line meant for the user as is: commands print it and exit 1 instead of a traceback.
    """


def check_private_dir(path: Path) -> None:
    """Refuse a state directory others could plant files or symlinks in (raises :class:`StateError`).

    A group/world-writable directory lets another user swap ``orchestrator.db`` for a link to a file of ours, which
    we would then chmod and overwrite; whoever owns it, we refuse rather than silently change its mode.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StateError(f"state dir {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state dir {path} is not a directory")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if st.st_uid != os.geteuid():
            raise StateError(f"state dir {path} is writable by others and owned by uid {st.st_uid}, not you: "
                             "refusing to use it (pass --state-dir with a private directory)")
        raise StateError(f"state dir {path} is writable by group/others: refusing to use it "
                         f"(fix with: chmod 700 {path})")


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` 0700 if missing, then :func:`check_private_dir` it; any OS error becomes one StateError line."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateError(f"cannot create state dir {path}: {exc.strerror or exc}") from None
    check_private_dir(path)
    return path


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory (created 0700 if missing; refused when others may write to it)."""
    chosen = override or os.environ.get("PILOT_TUI_STATE_DIR")
    path = Path(chosen).expanduser() if chosen else user_state_path(APP)
    return ensure_private_dir(path)


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
