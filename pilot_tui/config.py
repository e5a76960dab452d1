"""The TOML config file: the same settings as the flags, flags win.

Layout (every key optional)::

    pilotctl = "/usr/local/bin/pilotctl"
    state_dir = "/var/lib/pilot-tui"

    [oracle]
    peer = "local-threat-orchestrator"
    port = 1000
    transport = "stream"          # or "message"
    logs = ["/var/log/auth.log", "/var/log/nginx/access.log"]
    journal = ["ssh.service"]     # systemd units to follow
    rules = "/etc/pilot-tui/rules.toml"
    sensor = "gcp-web-1"
    allowlist = ["10.0.0.0/8"]

    [orchestrator]
    port = 1000
    exec_node = "aws-exec-node"
    on_event = "python3 examples/agent_consumer.py"
    publish = "soc-broker"        # fan the feed out to followers through this node
    topic = "pilot-tui.threats"

    [executor]
    backend = "dry-run"
    block_duration = "1h"         # a request without a duration blocks this long (or seconds: 3600)
    obey = ["local-threat-orchestrator"]
    allowlist = ["192.0.2.10"]

    [follow]
    topic = "pilot-tui.threats"
    exec_node = "aws-exec-node"

Unknown keys are an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .paths import default_config_file

TOP_KEYS = {"pilotctl", "state_dir", "oracle", "orchestrator", "executor", "follow"}
MODE_KEYS: dict[str, set[str]] = {
    "oracle": {"peer", "port", "transport", "logs", "journal", "rules", "sensor", "allowlist", "from_start", "state_dir",
               "pilotctl"},
    "orchestrator": {"port", "exec_node", "on_event", "state_dir", "pilotctl", "stream_backend", "publish", "topic"},
    "follow": {"topic", "exec_node", "state_dir", "pilotctl"},
    "executor": {"backend", "obey", "allowlist", "state_dir", "pilotctl", "block_duration"},
}
# config key -> argparse dest, where they differ
DEST = {"logs": "log"}


class ConfigError(ValueError):
    """The config file is unreadable or holds an unknown key or a wrong type."""


def load(path: Path | None, mode: str) -> dict[str, Any]:
    """Read the settings for ``mode`` (top-level shared keys merged under the mode's table).

    A missing default config file is fine (empty settings); a missing explicitly named one is an error.
    """
    explicit = path is not None
    path = path or default_config_file()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    merged = {k: v for k, v in data.items() if k in ("pilotctl", "state_dir")}
    table = data.get(mode, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [{mode}] must be a table")
    unknown = set(table) - MODE_KEYS.get(mode, set())
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) in [{mode}]: {', '.join(sorted(unknown))}")
    merged.update(table)
    return merged


def apply(args: argparse.Namespace, mode: str) -> argparse.Namespace:
    """Fill every flag the user did not give (``None``) from the config file; flags win."""
    settings = load(Path(args.config).expanduser() if getattr(args, "config", None) else None, mode)
    for key, value in settings.items():
        dest = DEST.get(key, key)
        current = getattr(args, dest, None)
        if current is None or current is False:
            setattr(args, dest, value)
    return args
