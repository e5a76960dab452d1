"""Typed errors for everything that can go wrong talking to Pilot.

pilotctl reports failures as a JSON envelope on stderr (``code``, ``message``, ``hint``; exit 1). We map each
``code`` to a subclass so callers can ``except TrustRequired`` instead of comparing strings, and so the UI can show
the hint pilotctl gave. ``retryable`` tells the sender whether backing off and trying again can help.
"""

from __future__ import annotations

from typing import Any

import orjson


class PilotError(Exception):
    """A pilotctl call failed. ``code`` is pilotctl's error code; ``hint`` is its advice (may be empty)."""

    code = "internal"
    retryable = False

    def __init__(self, message: str, *, hint: str = "", exit_status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_status = exit_status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """``code: message (hint)`` for a status line or a log."""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.code}: {self.message}{hint}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "exit_status": self.exit_status}


class InvalidArgument(PilotError):
    """pilotctl refused the arguments; retrying the same call cannot help."""

    code = "invalid_argument"


class NotFound(PilotError):
    """The hostname does not resolve (wrong name, or no mutual trust yet)."""

    code = "not_found"
    retryable = True


class NotRunning(PilotError):
    """The local Pilot daemon is not running (or its socket is stale)."""

    code = "not_running"
    retryable = True


class ConnectionFailed(PilotError):
    """The dial failed: the peer is down, unreachable, or nobody is bound on that port."""

    code = "connection_failed"
    retryable = True


class TrustRequired(PilotError):
    """The peer is private and there is no mutual trust: a handshake + approve is needed."""

    code = "trust_required"
    retryable = True


class PermissionDenied(PilotError):
    code = "permission_denied"


class Timeout(PilotError):
    """No answer in time. For ``connect`` the data may have been delivered anyway: resend and dedup."""

    code = "timeout"
    retryable = True


class AlreadyExists(PilotError):
    code = "already_exists"


class Internal(PilotError):
    code = "internal"
    retryable = True


class BinaryNotFound(PilotError):
    """No pilotctl binary could be found; the hint says how to install one."""

    code = "binary_not_found"


class BadResponse(PilotError):
    """pilotctl answered with something that is not the JSON envelope we expect (version skew, crash)."""

    code = "bad_response"
    retryable = True


ERRORS_BY_CODE: dict[str, type[PilotError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        NotRunning,
        ConnectionFailed,
        TrustRequired,
        PermissionDenied,
        Timeout,
        AlreadyExists,
        Internal,
    )
}


def error_from_envelope(stderr: bytes, exit_status: int) -> PilotError:
    """Build the typed error for a failed call from its stderr.

    Understands the JSON envelope (``error`` and ``message`` are the same text; older builds lack ``error``) and
    falls back to the plain ``error: …`` / ``hint:  …`` form, or to the raw text, so a surprise never becomes a crash.
    """
    text = stderr.strip()
    last = text.splitlines()[-1] if text else b""
    try:
        env = orjson.loads(last)
    except orjson.JSONDecodeError:
        env = None
    if isinstance(env, dict) and env.get("status") == "error":
        code = str(env.get("code") or "internal")
        message = str(env.get("message") or env.get("error") or "pilotctl failed")
        cls = ERRORS_BY_CODE.get(code, PilotError)
        return cls(message, hint=str(env.get("hint") or ""), exit_status=exit_status, code=code)
    plain = text.decode("utf-8", "replace")
    message, hint = plain or f"pilotctl exited with status {exit_status}", ""
    for line in plain.splitlines():
        if line.startswith("error: "):
            message = line[len("error: ") :].strip()
        elif line.startswith("hint:"):
            hint = line[len("hint:") :].strip()
    if exit_status == 2:
        return InvalidArgument(message[:400], hint=hint, exit_status=exit_status)
    return Internal(message[:400], hint=hint, exit_status=exit_status)
