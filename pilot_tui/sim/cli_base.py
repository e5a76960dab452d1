"""What every pilot-sim subcommand shares: the run context, pilotctl's flag parser, envelopes and errors.

The flag parser is a port of pilotctl's own (``--key value``, ``--key=value``, bare ``--flag`` = "true", a
value may be ``-`` or a negative number), so argument quirks match too. Output follows pilotctl: with ``--json``
one envelope line (``{"data":…,"status":"ok"}`` on stdout, ``{"code":…,"error":…,"hint":…,"message":…,
"status":"error"}`` on stderr); without it ``error: <msg>`` / ``hint:  <hint>`` on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from .client import Control, DaemonDown
from .proto import atoi, go_duration_str, go_json, parse_duration_or_seconds, socket_path


class CliError(Exception):
    """A failure to report the pilotctl way: ``code`` (invalid_argument, not_found, ...), message, hint."""

    def __init__(self, code: str, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.exit_code = code, message, hint, exit_code


@dataclass
class Ctx:
    """The environment of one invocation (replaceable in tests, httpie-style)."""

    env: Mapping[str, str]
    stdin: IO[bytes]
    stdout: IO[str]
    stderr: IO[str]
    json: bool = False

    @property
    def socket(self) -> str:
        """The node socket this invocation talks to (``$PILOT_SOCKET`` …)."""
        return socket_path(self.env)

    def control(self) -> Control:
        """A connection to the node, or the ``not_running`` error pilotctl gives."""
        try:
            return Control(self.socket)
        except DaemonDown:
            raise not_running(self.socket) from None

    def out(self, text: str) -> None:
        """One line on stdout, flushed (subscribe/recv stream their output)."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        """One line on stderr."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def ok(self, data: Any, plain: str | None = None) -> int:
        """Success: the JSON envelope, or ``plain`` text (default: indented JSON, as pilotctl prints maps)."""
        if self.json:
            self.out(go_json({"data": data, "status": "ok"}))
        elif plain is not None:
            if plain:
                self.out(plain)
        else:
            self.out(go_json(data, indent=True) if isinstance(data, dict) else str(data))
        return 0

    def fail(self, exc: CliError) -> int:
        """Report ``exc`` and return its exit status."""
        if self.json:
            env: dict[str, str] = {
                "code": exc.code,
                "error": exc.message,
                "message": exc.message,
                "status": "error",
            }
            if exc.hint:
                env["hint"] = exc.hint
            self.err(go_json(env))
        else:
            self.err(f"error: {exc.message}")
            if exc.hint:
                self.err(f"hint:  {exc.hint}")
        return exc.exit_code


def not_running(sock: str) -> CliError:
    """pilotctl's answer when nothing listens on the socket."""
    return CliError(
        "not_running",
        "daemon is not running",
        f"start the daemon with: pilotctl daemon start  (tried {sock})",
    )


# ------------------------------------------------------------------------------------------------- flags


def _is_numeric(text: str) -> bool:
    return bool(text) and all(c == "." or c.isdigit() for c in text)


def _is_flag_value(tok: str) -> bool:
    if not tok.startswith("-") or tok == "-":
        return True
    if tok.startswith("--"):
        return False
    rest = tok[1:]
    return _is_numeric(rest) or rest[0].isdigit()


def parse_flags(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """pilotctl's ``parseFlags``: (flags, positional arguments)."""
    flags: dict[str, str] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        key = ""
        if a.startswith("--"):
            key = a[2:]
        elif a.startswith("-") and len(a) > 1 and not _is_numeric(a[1:]):
            key = a[1:]
        if key:
            if "=" in key:
                name, _, value = key.partition("=")
                flags[name] = value
            elif i + 1 < len(args) and _is_flag_value(args[i + 1]):
                flags[key] = args[i + 1]
                i += 1
            else:
                flags[key] = "true"
        else:
            pos.append(a)
        i += 1
    return flags, pos


def flag_bool(flags: dict[str, str], key: str) -> bool:
    """True for ``--key``, ``--key=true``, ``--key=1``."""
    return key in flags and flags[key] in ("true", "1", "")


def flag_int(flags: dict[str, str], key: str, default: int) -> int:
    """An integer flag; invalid_argument with strconv's text otherwise."""
    if key not in flags:
        return default
    try:
        return atoi(flags[key])
    except ValueError as exc:
        raise CliError("invalid_argument", f"invalid integer for --{key}: {exc}") from None


def flag_duration(flags: dict[str, str], key: str, default: float) -> float:
    """A Go-duration flag (a bare number is seconds); invalid_argument with Go's text otherwise."""
    if key not in flags:
        return default
    try:
        return parse_duration_or_seconds(flags[key])
    except ValueError as exc:
        raise CliError("invalid_argument", f"invalid duration for --{key}: {exc}") from None


def dur(seconds: float) -> str:
    """Go's Duration.String(), for messages like ``no response within 30s``."""
    return go_duration_str(seconds)
