"""Which matched lines are failures: per-connection state, with the meaning fail2ban's sshd filter gives it.

One sshd login attempt writes several lines ("Invalid user", pam_unix's "authentication failure", "Failed
password", "Connection closed … [preauth]"). Counting lines would count one attempt two or three times; fail2ban
counts some of those lines as failures and treats the others as context, tied together by the sshd process id.
A filter whose prefix has a ``conn`` group (the process id) gets that treatment here, per pattern kind:

* a plain pattern is a **failure**: it counts, under its own address or, when it names none ("Disconnecting: Too
  many authentication failures"), under the address an earlier line of the connection gave; with no address known
  yet the failure is **pending** and the next line of the connection that brings one counts it;
* a ``nofail`` pattern is **context** (pam_unix's "authentication failure", a publickey a legitimate user's agent
  offered, "Connection from"): it gives the connection its address and user and counts only when a failure is
  pending, or when the connection has now tried more than one user name;
* a ``success`` pattern ("Accepted …") clears a pending failure and is context too — unless the connection tried
  other user names before, which fail2ban counts (a login after guessing several accounts is not innocent);
* a ``closes`` pattern ends the connection: its state is forgotten after this line.

These are fail2ban 1.0.2's F-NOFAIL, F-MLFGAINED and F-MLFFORGET rules (``filter.py``, ``_mergeFailure``), restated;
``tests/test_detect_conformance.py`` checks the per-address counts against ``fail2ban-regex`` on a hand-written log.
Like fail2ban, at most :data:`MAX_CONNECTIONS` connections are remembered and the oldest opened is forgotten first.
That is also sshd's own ceiling (``MaxStartups`` 10:30:100 refuses the 101st unauthenticated connection), so on a
real log nothing is forgotten that could still matter.
"""

from __future__ import annotations

MAX_CONNECTIONS = 100
"""Open connections remembered per filter (fail2ban's multi-line cache holds 100 too)."""

NOFAIL = 1
CLOSES = 2
SUCCESS = 4
UNTRACKED = 8
"""Pattern kinds (bits). ``UNTRACKED``: a ``login`` pattern that is not a ``success`` in a connection-tracked
filter — it records where a user logged in from and takes no part in the connection's story."""


class _Conn:
    """What the lines of one open connection said so far. ``users`` is whether it named more than one user: the
    first name seen is kept in ``first``, and any other name sets it for good (cheaper than a set of names)."""

    __slots__ = ("ip", "user", "first", "users", "pending")

    def __init__(self, ip: str | None, user: str | None) -> None:
        self.ip = ip
        self.user = user
        self.first = user or None
        self.users = False
        self.pending = False


class Connections:
    """The open connections of one filter, keyed by the ``conn`` group's text (see the module doc)."""

    __slots__ = ("_open", "max_connections")

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._open: dict[str, _Conn] = {}  # insertion order = opening order: the first is the oldest
        self.max_connections = max_connections

    def __len__(self) -> int:
        return len(self._open)

    def judge(self, conn: str | None, kind: int, ip: str | None, user: str | None) -> tuple[str, str | None] | None:
        """A line of connection ``conn`` matched a pattern of ``kind`` naming ``ip`` and ``user`` (either may be
        None): ``(address, user)`` to count it as one failure, or None when it is not one."""
        quiet = kind & (NOFAIL | SUCCESS)
        state = self._open.get(conn) if conn is not None else None
        if state is not None:
            if user:
                first = state.first
                if first is None:
                    state.first = user
                elif user != first:
                    state.users = True
                state.user = user
            if ip:
                state.ip = ip
            if kind & SUCCESS:
                state.pending = False
            if kind & CLOSES:
                del self._open[conn]  # type: ignore[arg-type]  # state is not None only when conn is not None
        elif conn is not None and not kind & CLOSES:
            state = _Conn(ip, user)
            opened = self._open
            if len(opened) >= self.max_connections:
                del opened[next(iter(opened))]
            opened[conn] = state
        else:  # a line that closes a connection we never saw opening (or has no connection): judged alone
            if quiet or not ip:
                return None
            return ip, user
        if state.pending or state.users:
            state.pending = False
            quiet = 0
        if quiet:
            return None
        if state.ip is None:
            state.pending = True
            return None
        return state.ip, user or state.user


def kind_of(nofail: bool, success: bool, closes: bool, login: bool) -> int:
    """The kind bits of a pattern of a connection-tracked filter, from its attributes (see :mod:`.rules`)."""
    if login and not success:
        return UNTRACKED
    return (NOFAIL if nofail else 0) | (SUCCESS if success else 0) | (CLOSES if closes else 0)
