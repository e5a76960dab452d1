"""A fake pilotctl driver for the executor and inbox-watcher tests (this module holds no tests of its own).

It keeps an in-memory inbox with the real listing's shape (newest first, RFC 3339 nanosecond ``received_at``),
records every ``send-message``, and can be told to fail the next calls with typed :class:`PilotError`s.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any

from pilot_tui.pilot.driver import DaemonStatus, InboxMessage, SendAck
from pilot_tui.pilot.errors import NotFound, PilotError

EXECUTOR_ADDR = "0:0000.0000.0003"
ORCH_ADDR = "0:0000.0000.0002"
STRANGER_ADDR = "0:0000.0000.0009"


def rfc3339_ns(epoch: float) -> str:
    """The daemon's ``received_at`` form: nanoseconds and ``Z``."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(round((epoch % 1) * 1e9)):09d}Z"


class FakePilot:
    """Async methods with :class:`~pilot_tui.pilot.driver.Pilotctl`'s signatures over an in-memory node."""

    def __init__(self, *, address: str = EXECUTOR_ADDR, hostname: str = "aws-exec-node",
                 inbox_dir: str = "", hosts: dict[str, str] | None = None) -> None:
        self.address = address
        self.hostname = hostname
        self.inbox_dir = inbox_dir
        self.hosts = dict(hosts or {})
        self.messages: list[dict[str, Any]] = []  # oldest first; listed newest first like pilotctl
        self.sent: list[dict[str, Any]] = []
        self.errors: dict[str, list[PilotError]] = {}
        self.calls: dict[str, int] = {}
        self.cleared_before: list[float | None] = []

    # -- test helpers ----------------------------------------------------------------------------------------

    def deliver(self, sender: str, data: bytes | str, *, at: float | None = None, message_id: str | None = None,
                received_at: str | None = None) -> str:
        """Put a message into the inbox as the daemon would; returns its id."""
        mid = message_id or uuid.uuid4().hex
        text = data.decode() if isinstance(data, bytes) else data
        self.messages.append({"message_id": mid, "from": sender, "data": text, "type": "JSON", "bytes": len(text),
                              "received_at": received_at or rfc3339_ns(time.time() if at is None else at)})
        return mid

    def fail_next(self, method: str, *errors: PilotError) -> None:
        self.errors.setdefault(method, []).extend(errors)

    def _enter(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        queue = self.errors.get(method)
        if queue:
            raise queue.pop(0)

    # -- the driver API ------------------------------------------------------------------------------------------

    async def inbox_listing(self, *flags: str) -> tuple[str, list[InboxMessage]]:
        self._enter("inbox_listing")
        full = "--full" in flags
        listed = []
        for m in reversed(self.messages):
            d = dict(m)
            if not full:
                d["preview"] = d.pop("data")[:64]
            listed.append(InboxMessage.from_dict(d))
        return self.inbox_dir, listed

    async def inbox_clear(self, *, before: float | None = None) -> int:
        self._enter("inbox_clear")
        self.cleared_before.append(before)
        now = time.time()
        from pilot_tui.pilot.inbox import parse_iso

        keep = [m for m in self.messages if before is not None and now - (parse_iso(m["received_at"]) or 0) < before]
        cleared = len(self.messages) - len(keep)
        self.messages = keep
        return cleared

    async def send_message(self, target: str, data: bytes, *, msg_type: str = "json", reply_to: str | None = None,
                           wait: float | None = None) -> SendAck:
        self._enter("send_message")
        self.sent.append({"target": target, "data": data, "type": msg_type, "reply_to": reply_to})
        return SendAck(message_id=uuid.uuid4().hex, target=target, bytes=len(data), ack="ACK", reply=None,
                       elapsed=0.001)

    async def daemon_status(self) -> DaemonStatus:
        self._enter("daemon_status")
        return DaemonStatus(running=True, responsive=True, address=self.address, hostname=self.hostname, node_id=3,
                            socket="/tmp/x.sock", uptime_secs=1, raw={})

    async def info(self) -> dict[str, Any]:
        self._enter("info")
        return {"address": self.address, "hostname": self.hostname, "node_id": 3}

    async def find(self, hostname: str) -> dict[str, Any]:
        self._enter("find")
        if hostname not in self.hosts:
            raise NotFound(f'cannot resolve "{hostname}"')
        address = self.hosts[hostname]
        return {"address": address, "hostname": hostname, "node_id": int(address.rsplit(".", 1)[-1], 16),
                "public": False}
