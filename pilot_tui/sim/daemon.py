"""One emulated Pilot node: ``python -m pilot_tui.sim.daemon`` (started by ``pilot-sim daemon start``).

The node listens on its Unix socket (``$PILOT_SOCKET``) for three kinds of callers:

* the CLI and the SDK twin asking questions (one JSON line in, one JSON line out: ``info``, ``resolve``, ...);
* the CLI and the SDK opening streams: ``dial`` (to another node's port), ``listen`` (bind a port; the
  connection holds the binding) and ``accept`` (wait for the next stream on a bound port). After the ``ok``
  line such a connection carries raw bytes;
* other nodes' daemons delivering a stream: ``peer_dial``. The bytes of a ``connect`` travel
  client -> daemon A -> daemon B -> listener, so every delivery really crosses two processes.

Fault injection (``PILOT_SIM_DROP_RATE``, ``PILOT_SIM_LATENCY_MS``, ``PILOT_SIM_REFUSE_DIALS``,
``PILOT_SIM_LOSE_FIRST_STREAM_AFTER_RESTART``, ``PILOT_SIM_SEED``) is read from this process's environment and
documented in :mod:`pilot_tui.sim.faults`. Stream handling lives in :mod:`pilot_tui.sim.streams`; ports 1001
and 1002 are always bound by the node itself (:mod:`pilot_tui.sim.services`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .faults import Faults
from .proto import (
    SERVICE_PORTS,
    VERSION,
    dumps_line,
    format_addr,
    inbox_dir,
)
from .registry import Registry, RegistryError, pid_alive
from .services import EventBroker
from .streams import Streams

log = logging.getLogger("pilot_sim.daemon")


class Node:
    """The daemon state: identity, port table, peers seen, counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.socket = args.socket
        self.hostname = args.hostname or ""
        self.public = bool(args.public)
        self.auto_approve = bool(args.trust_auto_approve)
        self.config_dir = Path(args.config_dir)
        self.inbox = inbox_dir(os.environ)
        self.registry = Registry(Path(args.sim_home))
        self.faults = Faults(os.environ, self.config_dir)
        self.broker = EventBroker()
        self.started = time.time()
        self.peers: dict[int, float] = {}
        self.streams = Streams(self)
        self._stop = asyncio.Event()
        self.node_id = 0
        self.address = ""
        self.public_key = _identity(self.config_dir)

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Register, serve the socket until SIGTERM/SIGINT or until the socket file is taken away."""
        record = self.registry.register(
            self.public_key, self.hostname, self.socket, os.getpid(), self.public, self.auto_approve
        )
        self.node_id, self.address = record["node_id"], record["address"]
        Path(self.socket).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        server = await asyncio.start_unix_server(self._client, path=self.socket, limit=1 << 20)
        ino = os.stat(self.socket).st_ino
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        log.info("node %d (%s) %s listening on %s", self.node_id, self.address, self.hostname, self.socket)
        watchdog = asyncio.create_task(self._watch_socket(ino))
        try:
            await self._stop.wait()
        finally:
            watchdog.cancel()
            server.close()
            self.broker.close()
            with contextlib.suppress(OSError):
                if os.stat(self.socket).st_ino == ino:
                    os.unlink(self.socket)
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.registry.set_offline(self.node_id, os.getpid())
            log.info("node %d stopped", self.node_id)

    async def _watch_socket(self, ino: int) -> None:
        """Exit when our socket file disappears (its temp dir was removed) or when the owner process named by
        ``PILOT_SIM_OWNER_PID`` (set by :mod:`pilot_tui.sim.cluster`) is gone: no orphaned nodes after a killed
        test run or demo."""
        owner = int(os.environ.get("PILOT_SIM_OWNER_PID") or 0)
        while True:
            await asyncio.sleep(1.0)
            try:
                if os.stat(self.socket).st_ino != ino:
                    break
            except OSError:
                break
            if owner and not pid_alive(owner):
                log.info("owner process %d is gone; stopping", owner)
                break
        log.info("stopping (socket %s or owner gone)", self.socket)
        self._stop.set()

    # -- dispatch ------------------------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            while line:
                req = json.loads(line)
                op = req.get("op", "")
                if op in ("dial", "listen", "accept", "peer_dial"):
                    await getattr(self.streams, f"op_{op}")(req, reader, writer)
                    return
                if op == "shutdown":
                    writer.write(dumps_line({"ok": True, "pid": os.getpid()}))
                    await writer.drain()
                    self._stop.set()
                    return
                writer.write(dumps_line(self._rpc(op, req)))
                await writer.drain()
                line = await reader.readline()
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            log.debug("client connection ended: %s", exc)
        except Exception:  # one bad connection must never take the node down
            log.exception("unexpected error on a client connection")
        finally:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                writer.close()

    def _rpc(self, op: str, req: dict[str, Any]) -> dict[str, Any]:
        """Question/answer operations. Errors come back as ``{"error": msg}``."""
        try:
            if op == "info":
                return self.info()
            if op == "resolve":
                rec = self.registry.by_hostname(str(req.get("hostname", "")))
                if rec is None:
                    return {"error": f"hostname {req.get('hostname')!r} not found"}
                return {k: rec[k] for k in ("node_id", "address", "hostname", "public")}
            if op == "lookup":
                rec = self.registry.node(int(req["node_id"]))
                return {"error": "node not found"} if rec is None else {"node": rec}
            if op == "trust_check":
                return self._trust_check(int(req["node_id"]))
            if op == "handshake":
                peer = int(req["node_id"])
                if peer == self.node_id:
                    return {"error": "cannot handshake with self"}
                target = self.registry.node(peer) or {}
                auto = bool(target.get("auto_approve"))
                status = self.registry.handshake(self.node_id, peer, str(req.get("justification", "")), auto)
                return {"status": "already_trusted" if status == "already_trusted" else "sent"}
            if op == "approve":
                self.registry.approve(self.node_id, int(req["node_id"]))
                return {"status": "approved"}
            if op == "reject":
                self.registry.reject(self.node_id, int(req["node_id"]))
                return {"status": "rejected"}
            if op == "pending":
                return {"pending": self.registry.pending(self.node_id)}
            if op == "trusted":
                return {"trusted": self.registry.trusted(self.node_id)}
        except (RegistryError, KeyError, TypeError, ValueError) as exc:
            return {"error": str(exc).strip("'\"")}
        return {"error": f"unknown command: {op}"}

    def _trust_check(self, peer: int) -> dict[str, Any]:
        """May this node open a tunnel to ``peer``? (self: yes; the dial itself then fails, as measured)."""
        rec = self.registry.node(peer)
        if peer == self.node_id:
            return {"trusted": True, "known": True, "public": self.public}
        if rec is None:
            return {"trusted": False, "known": False, "public": False}
        return {
            "trusted": self.registry.mutual(self.node_id, peer),
            "known": True,
            "public": bool(rec["public"]),
        }

    def info(self) -> dict[str, Any]:
        """``pilotctl --json info``'s fields, with the emulator's own numbers."""
        now = time.time()
        peer_list = [
            {
                "address": format_addr(p),
                "authenticated": True,
                "encrypted": True,
                "node_id": p,
                "relay": False,
            }
            for p in sorted(self.peers)
        ]
        return {
            "address": self.address,
            "bytes_recv": self.streams.bytes_recv,
            "bytes_sent": self.streams.bytes_sent,
            "connections": self.streams.active,
            "emulator": "pilot-sim",
            "encrypt": True,
            "encrypted_peers": len(peer_list),
            "event_subscribers": self.broker.subscribers,
            "faults": self.faults.snapshot(),
            "handshake_pending_count": len(self.registry.pending(self.node_id)),
            "hostname": self.hostname,
            "identity": True,
            "node_id": self.node_id,
            "peer_list": peer_list,
            "peers": len(peer_list),
            "pid": os.getpid(),
            "pkts_recv": 0,
            "pkts_sent": 0,
            "ports": len(self.streams.bindings) + len(SERVICE_PORTS),
            "public": self.public,
            "public_key": self.public_key,
            "relay_peer_count": 0,
            "uptime_secs": int(now - self.started),
            "version": VERSION,
        }


def _identity(config_dir: Path) -> str:
    """This node's persistent key (the registry maps it to the node id, so a restart keeps the address)."""
    path = config_dir / "sim-identity.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(path.read_text())["public_key"])
    config_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32).hex()
    path.write_text(json.dumps({"public_key": key}))
    return key


def main(argv: list[str] | None = None) -> int:
    """Entry point of the node process (stdout/stderr go to the node's log file)."""
    parser = argparse.ArgumentParser(prog="python -m pilot_tui.sim.daemon", description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--hostname", default="")
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--sim-home", required=True)
    parser.add_argument("--public", action="store_true")
    parser.add_argument("--trust-auto-approve", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(Node(args).run())
    except (RegistryError, OSError) as exc:
        sys.stderr.write(f"pilot-sim node: cannot start: {exc}\n")  # last log line: `daemon start` shows it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
