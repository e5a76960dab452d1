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

    [keymap]                      # the dashboard's keys, by binding id (README: "Keys")
    filter = "ctrl+f"
    quit = "ctrl+q,q"

Unknown keys are an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .paths import default_config_file

TOP_KEYS = {"pilotctl", "state_dir", "oracle", "orchestrator", "executor", "follow", "keymap"}
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
    """The config file is unreadable or holds an unknown key or a value its flag would refuse."""


def _read(path: Path | None, mode: str) -> tuple[Path, list[tuple[str, str, Any]], dict[str, str]]:
    """``(file, [(section, key, value), …], keymap)`` for ``mode``: top-level shared keys first, then the mode's
    table; the ``[keymap]`` table, validated, last.

    A missing default config file is fine (no settings); a missing explicitly named one is an error.
    """
    explicit = path is not None
    path = path or default_config_file()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return path, [], {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    items = [("", k, v) for k, v in data.items() if k in ("pilotctl", "state_dir")]
    table = data.get(mode, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [{mode}] must be a table")
    unknown = set(table) - MODE_KEYS.get(mode, set())
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) in [{mode}]: {', '.join(sorted(unknown))}")
    items += [(mode, k, v) for k, v in table.items()]
    return path, items, _keymap(path, data.get("keymap", {}))


def _keymap(path: Path, table: Any) -> dict[str, str]:
    """The ``[keymap]`` table (binding id → keys, as Textual's ``App.set_keymap`` takes it), checked.

    Checked in every mode, so a typo fails at start like any other key. The known ids are read from the UI's
    bindings (which imports Textual), only when the table is not empty.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [keymap] must be a table")
    if not table:
        return {}
    from .ui.keymap import binding_ids

    known = binding_ids()
    out: dict[str, str] = {}
    for binding_id, keys in table.items():
        where = f"config file {path}: [keymap] {binding_id}"
        if binding_id not in known:
            near = difflib.get_close_matches(binding_id, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else " (the README's \"Keys\" section lists them)"
            raise ConfigError(f"{where}: not a key binding id{hint}")
        spec = keys.replace(" ", "") if isinstance(keys, str) else ""
        if not spec or "" in spec.split(","):
            raise ConfigError(f"{where}: expected keys as text, e.g. \"ctrl+f\" or \"slash,f\", got {keys!r}")
        out[binding_id] = spec
    return out


def load(path: Path | None, mode: str) -> dict[str, Any]:
    """The raw settings for ``mode`` (top-level shared keys merged under the mode's table), not yet validated."""
    return {key: value for _, key, value in _read(path, mode)[1]}


def _flag_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """dest → the argparse action of a mode's parser.

    argparse has no public accessor for its actions; ``_actions`` has been stable since Python 2.7, and
    ``tests/test_config.py`` fails loudly if it ever changes.
    """
    return {action.dest: action for action in parser._actions}


def _convert(action: argparse.Action, value: Any) -> Any:
    """``value`` as the flag would have produced it, or ``ValueError`` with the flag's own message.

    TOML has types of its own, so each is checked against what the flag means: a switch takes true/false; a port or
    a duration may be a number; everything else is text (``publish = 42`` is not a hostname).
    """
    if action.nargs == 0:  # store_true switches
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    if many:
        values = value if isinstance(value, list) else [value]
        return [_convert_one(action, v) for v in values]
    if isinstance(value, list):
        raise ValueError(f"expected one value, got a list {value!r}")
    return _convert_one(action, value)


def _convert_one(action: argparse.Action, value: Any) -> Any:
    numeric = getattr(action.type, "__name__", "") in NUMERIC_TYPES
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (
        isinstance(value, (int, float)) and not numeric
    ):
        raise ValueError(f"expected text, got {value!r}")
    text = str(value)
    if callable(action.type):
        try:
            converted = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ValueError(str(exc) or f"invalid value {value!r}") from None
    else:
        converted = text
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


NUMERIC_TYPES = {"port_number", "duration", "int", "float"}
"""Flag types whose config value may be a TOML number (``port = 1000``, ``block_duration = 3600``)."""


def apply(args: argparse.Namespace, mode: str, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Fill every flag the user did not give (``None``) from the config file; flags win.

    Each value goes through the flag's own type function and choices (``parser`` is the mode's sub-parser; built
    when not given), so ``[orchestrator] port = "abc"`` fails exactly as ``--port abc`` would, naming the file,
    the table and the key. The ``[keymap]`` table lands in ``args.keymap`` for the dashboard.
    """
    path, items, keymap = _read(Path(args.config).expanduser() if getattr(args, "config", None) else None, mode)
    args.keymap = keymap
    if not items:
        return args
    if parser is None:
        from .cli import mode_parser

        parser = mode_parser(mode)
    actions = _flag_actions(parser)
    for section, key, value in items:
        dest = DEST.get(key, key)
        where = f"config file {path}: " + (f"[{section}] " if section else "") + key
        action = actions.get(dest)
        if action is None:  # a key MODE_KEYS allows but this mode's parser lacks: a bug in this table
            raise ConfigError(f"{where}: not a setting of {mode}")
        try:
            converted = _convert(action, value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        current = getattr(args, dest, None)
        if current is None or current is False:
            setattr(args, dest, converted)
    return args
