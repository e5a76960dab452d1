"""The shared directory that stands in for Pilot's registry: who exists, where they listen, who trusts whom.

All sim nodes on one machine share ``$PILOT_SIM_HOME/registry.json``. It plays the part of the real registry
(node ids, addresses, hostnames) plus the trust state the real daemons keep, so that trust survives a node
restart exactly as the real one does. Writers hold an ``flock`` and replace the file atomically (write + rename),
so readers never see a half-written file and need no lock.

Trust model (what the contract measured): ``handshake`` on A records a request and shows on B as pending;
``approve`` on B gives both nodes a trust record, so traffic flows both ways; ``approve`` with nothing pending says
success and changes nothing; two nodes that handshake each other end up trusting each other, like a handshake
answered by a handshake.

Each trust record carries the ``mutual`` flag pilotctl's ``trust`` shows, set the way the real 1.18 daemon sets it
(measured 2026-12-04, and ``pkg/daemon/handshake.go``): the approver's record of the requester says
``mutual: false`` (``ApproveHandshake`` writes no flag) while the requester's record says ``mutual: true`` (set
when the peer's accept arrives); a handshake answered by a handshake is ``true`` on both sides. The flag is not a
trust test: a tunnel needs both records (:meth:`Registry.mutual`), never the flag. A handshake from a node that
already holds a record of the peer sends nothing (the daemon's ``SendRequest`` returns early), so the approver's
reverse handshake leaves no pending request on the requester.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .proto import format_addr


class RegistryError(Exception):
    """A registry operation that cannot be done (hostname taken, unknown node)."""


class Registry:
    """Read/modify the shared registry file. Cheap to create; holds no open files between calls."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / "registry.json"
        self._lock_path = self.home / "registry.lock"

    # -- storage -------------------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """The whole registry (an empty one when the file does not exist yet)."""
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("next_id", 1)
        for key in ("nodes", "pending", "trust", "requests"):
            data.setdefault(key, {})
        return data

    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        """Exclusive read-modify-write; the new content becomes visible in one rename."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.load()
            yield data
            tmp = self.path.with_name(f"registry.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)

    # -- nodes ---------------------------------------------------------------------------------------------

    def register(
        self, public_key: str, hostname: str, socket: str, pid: int, public: bool, auto_approve: bool = False
    ) -> dict[str, Any]:
        """Register (or re-register after a restart) the node owning ``public_key``; returns its record."""
        with self._edit() as data:
            nodes = data["nodes"]
            record = next((n for n in nodes.values() if n["public_key"] == public_key), None)
            if hostname:
                for other in nodes.values():
                    if other["hostname"] == hostname and other is not record:
                        if other.get("online") and pid_alive(int(other.get("pid", 0))):
                            raise RegistryError(
                                f"hostname {hostname!r} is already taken by node {other['node_id']}"
                            )
                        other["hostname"] = ""  # a stopped node's name lapses, like the registry's TTL
            if record is None:
                node_id = int(data["next_id"])
                data["next_id"] = node_id + 1
                record = {"node_id": node_id, "address": format_addr(node_id), "public_key": public_key}
                nodes[str(node_id)] = record
            record.update(
                hostname=hostname,
                socket=socket,
                pid=pid,
                public=public,
                auto_approve=auto_approve,
                online=True,
                started_at=time.time(),
            )
            return dict(record)

    def set_offline(self, node_id: int, pid: int) -> None:
        """Mark a node stopped (only if ``pid`` still owns the record: a newer start may have replaced it)."""
        with self._edit() as data:
            record = data["nodes"].get(str(node_id))
            if record and int(record.get("pid", 0)) == pid:
                record["online"] = False

    def node(self, node_id: int) -> dict[str, Any] | None:
        """The record of node ``node_id``, or None."""
        record: dict[str, Any] | None = self.load()["nodes"].get(str(node_id))
        return record

    def by_hostname(self, hostname: str) -> dict[str, Any] | None:
        """The record holding ``hostname``, or None."""
        if not hostname:
            return None
        return next((n for n in self.load()["nodes"].values() if n["hostname"] == hostname), None)

    # -- trust ---------------------------------------------------------------------------------------------

    def trusts(self, node_id: int, peer_id: int, data: dict[str, Any] | None = None) -> bool:
        """True when ``node_id`` has approved ``peer_id``."""
        data = data or self.load()
        return str(peer_id) in data["trust"].get(str(node_id), {})

    def mutual(self, a: int, b: int) -> bool:
        """True when a and b each hold a trust record of the other (what a tunnel between private nodes needs).

        Not pilotctl's ``mutual`` flag: after an approve the approver's record says ``mutual: false`` although this
        is True and traffic flows both ways."""
        data = self.load()
        return self.trusts(a, b, data) and self.trusts(b, a, data)

    def handshake(self, src: int, dst: int, justification: str, auto_approve: bool) -> str:
        """Ask ``dst`` to trust ``src``. Returns ``sent``, ``approved`` or ``already_trusted``.

        ``already_trusted`` whenever ``src`` holds a record of ``dst`` — on either side of an approve, as the real
        daemon's ``SendRequest`` (nothing is sent, so nothing shows as pending on ``dst``)."""
        now = int(time.time())
        with self._edit() as data:
            if str(dst) not in data["nodes"]:
                raise RegistryError(f"node {dst} not found")
            if self.trusts(src, dst, data):
                return "already_trusted"
            if str(src) in data["requests"].get(str(dst), {}):  # a handshake answered by a handshake
                _record_trust(data, src, dst, now, src_mutual=True, dst_mutual=True)
                return "approved"
            if auto_approve:  # dst approves at once, as if its operator had run ``approve``
                _record_trust(data, src, dst, now, src_mutual=True, dst_mutual=False)
                return "approved"
            data["requests"].setdefault(str(src), {})[str(dst)] = now
            queue = [p for p in data["pending"].get(str(dst), []) if p["node_id"] != src]
            queue.append(
                {"node_id": src, "justification": justification, "public_key": "", "received_at": now}
            )
            data["pending"][str(dst)] = queue
            return "sent"

    def approve(self, node_id: int, peer_id: int) -> bool:
        """``node_id`` approves ``peer_id``'s pending request; False (and no change) when none was pending."""
        with self._edit() as data:
            if not any(p["node_id"] == peer_id for p in data["pending"].get(str(node_id), [])):
                return False
            # the requester learns of the approval (its record: mutual), the approver's own record is not
            _record_trust(data, peer_id, node_id, int(time.time()), src_mutual=True, dst_mutual=False)
            return True

    def reject(self, node_id: int, peer_id: int) -> bool:
        """Drop ``peer_id``'s pending request to ``node_id``; False when none was pending."""
        with self._edit() as data:
            queue = data["pending"].get(str(node_id), [])
            kept = [p for p in queue if p["node_id"] != peer_id]
            data["pending"][str(node_id)] = kept
            data["requests"].get(str(peer_id), {}).pop(str(node_id), None)
            return len(kept) != len(queue)

    def pending(self, node_id: int) -> list[dict[str, Any]]:
        """Requests waiting for ``node_id``'s approval, oldest first."""
        return list(self.load()["pending"].get(str(node_id), []))

    def trusted(self, node_id: int) -> list[dict[str, Any]]:
        """The peers ``node_id`` trusts, in pilotctl's ``trust`` shape (``mutual`` as the real daemon sets it)."""
        data = self.load()
        out = []
        for peer, rec in data["trust"].get(str(node_id), {}).items():
            other = data["nodes"].get(peer, {})
            mutual = rec.get("mutual")
            if mutual is None:  # a registry written before the flag was kept
                mutual = self.trusts(int(peer), node_id, data)
            out.append(
                {
                    "approved_at": rec["approved_at"],
                    "hostname": other.get("hostname", ""),
                    "mutual": bool(mutual),
                    "network": 0,
                    "node_id": int(peer),
                    "public_key": other.get("public_key", ""),
                }
            )
        return out


def _record_trust(
    data: dict[str, Any], src: int, dst: int, now: int, *, src_mutual: bool, dst_mutual: bool
) -> None:
    """Give ``src`` (the requester) and ``dst`` a trust record of each other, with the ``mutual`` flag each one's
    daemon would show, and clear the requests/pending entries between them."""
    for x, y, flag in ((src, dst, src_mutual), (dst, src, dst_mutual)):
        data["trust"].setdefault(str(x), {})[str(y)] = {"approved_at": now, "mutual": flag}
        data["requests"].get(str(x), {}).pop(str(y), None)
        data["pending"][str(x)] = [p for p in data["pending"].get(str(x), []) if p["node_id"] != y]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (a stopped daemon whose parent has not reaped it yet)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
