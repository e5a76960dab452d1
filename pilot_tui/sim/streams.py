"""Streams inside a sim node: the port table, listen/accept, dials to other nodes, and the byte relay.

A ``connect`` travels client -> daemon A -> daemon B -> listener: ``dial`` on A opens ``peer_dial`` on B's
socket, B answers once the port is bound (or refuses), then each daemon pipes bytes both ways. EOF is forwarded
hop by hop as a half-close, which is what gives connect/recv their measured timer behaviour (connect waits for
one reply or a close, recv reads until EOF or its deadline). Streams that arrive before anyone accepts wait in
the binding's backlog, like a TCP accept queue. Faults (:mod:`pilot_tui.sim.faults`) are applied here, on the
receiving side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import TYPE_CHECKING, Any

from pilot_tui.aiotime import within

from .proto import PORT_DATAEXCHANGE, PORT_ECHO, PORT_EVENTSTREAM, SERVICE_PORTS, dumps_line
from .services import serve_dataexchange

if TYPE_CHECKING:
    from .daemon import Node

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Binding:
    """A bound user port: streams that arrived but are not accepted yet wait in ``backlog``."""

    def __init__(self, port: int, lid: int) -> None:
        self.port, self.lid = port, lid
        self.backlog: asyncio.Queue[tuple[Stream, str]] = asyncio.Queue()
        self.closed = asyncio.Event()


class Streams:
    """The stream side of one node (``node`` gives identity, registry, faults and services)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.bindings: dict[int, Binding] = {}
        self.active = 0
        self.bytes_sent = self.bytes_recv = 0
        self._lids = itertools.count(1)

    async def op_listen(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Bind a port for as long as this connection stays open."""
        port = int(req["port"])
        if port in SERVICE_PORTS or port == PORT_ECHO or port in self.bindings or not 0 < port < 65536:
            writer.write(dumps_line({"error": f"bind: daemon: port {port} already bound"}))
            await writer.drain()
            return
        binding = Binding(port, next(self._lids))
        self.bindings[port] = binding
        try:
            writer.write(dumps_line({"ok": True, "lid": binding.lid, "port": port}))
            await writer.drain()
            while await reader.read(4096):
                pass
        finally:
            binding.closed.set()
            if self.bindings.get(port) is binding:
                del self.bindings[port]
            while not binding.backlog.empty():  # streams nobody accepted: their senders see a close
                (_, w), _ = binding.backlog.get_nowait()
                w.close()

    async def op_accept(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Wait for the next stream on a bound port; then this connection carries its bytes."""
        binding = self.bindings.get(int(req["port"]))
        if binding is None or binding.lid != int(req.get("lid", -1)):
            writer.write(dumps_line({"error": "accept: listener closed"}))
            await writer.drain()
            return
        get = asyncio.ensure_future(binding.backlog.get())
        gone = asyncio.ensure_future(reader.read(1))  # the caller closed its accept (Listener.close)
        closed = asyncio.ensure_future(binding.closed.wait())
        await asyncio.wait({get, gone, closed}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (gone, closed):
            fut.cancel()
        if not get.done():
            get.cancel()
            writer.write(dumps_line({"error": "accept: listener closed"}))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            return
        peer_stream, remote = get.result()
        if gone.done() and not gone.cancelled():  # raced with a close: hand the stream back
            binding.backlog.put_nowait((peer_stream, remote))
            return
        writer.write(dumps_line({"ok": True, "remote": remote, "port": binding.port}))
        await writer.drain()
        await self._relay((reader, writer), peer_stream)

    async def op_dial(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Open a stream to ``addr``/``port`` on another node and pipe it to this client."""
        node, port = int(req["node_id"]), int(req["port"])
        timeout = float(req.get("timeout") or 30.0)
        try:
            peer = await within(self._open_peer(node, port), timeout)
        except asyncio.TimeoutError:
            peer = "dial: daemon: dial timeout"
        if isinstance(peer, str):
            writer.write(dumps_line({"error": peer}))
            await writer.drain()
            return
        writer.write(dumps_line({"ok": True}))
        await writer.drain()
        await self._relay((reader, writer), peer, outgoing=True)

    async def _open_peer(self, node: int, port: int) -> Stream | str:
        """Connect to node's daemon and ask it for ``port``; a str is the error."""
        if node == self.node.node_id:
            return "dial: daemon: cannot dial own address"
        rec = self.node.registry.node(node)
        if rec is None:
            return f"dial: daemon: no route to node {node}"
        if not rec.get("public") and not self.node.registry.mutual(self.node.node_id, node):
            return f"dial: daemon: node {node} is private and not trusted"
        try:
            r, w = await asyncio.open_unix_connection(rec["socket"], limit=1 << 20)
        except OSError:
            return "dial: daemon: dial timeout"  # the peer daemon is down
        w.write(
            dumps_line(
                {"op": "peer_dial", "from_node": self.node.node_id, "from": self.node.address, "port": port}
            )
        )
        try:
            await w.drain()
            answer = json.loads(await r.readline() or b'{"error": "connection reset"}')
        except asyncio.CancelledError:  # the dial timed out
            w.close()
            raise
        except (ConnectionError, OSError, ValueError):  # the peer died half-way
            w.close()
            return "dial: daemon: connection reset"
        if "error" in answer:
            w.close()
            return f"dial: daemon: {answer['error']}"
        self.node.peers[node] = time.time()
        return r, w

    async def op_peer_dial(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Another node's daemon delivers a stream to one of our ports."""
        src, sender, port = int(req["from_node"]), str(req["from"]), int(req["port"])
        decision = self.node.faults.incoming()
        if decision.delay:
            await asyncio.sleep(decision.delay)
        binding = self.bindings.get(port)
        error = ""
        if decision.refuse:
            error = "connection refused"
        elif not self.node.public and not self.node.registry.mutual(self.node.node_id, src):
            error = "connection refused: peer not trusted"
        elif port not in SERVICE_PORTS and port != PORT_ECHO and binding is None:
            error = "connection refused"
        if error:
            writer.write(dumps_line({"error": error}))
            await writer.drain()
            return
        writer.write(dumps_line({"ok": True}))
        await writer.drain()
        self.node.peers[src] = time.time()
        if port == PORT_DATAEXCHANGE:
            await self._count(serve_dataexchange(reader, writer, sender, self.node.inbox))
        elif port == PORT_EVENTSTREAM:
            await self._count(self.node.broker.serve(reader, writer, sender))
        elif port == PORT_ECHO:
            await self._count(_serve_echo(reader, writer))
        elif binding is not None:
            fate = self.node.faults.on_delivery()
            if (
                fate == "drop"
            ):  # lost in transit: swallow the bytes, answer nothing, until the sender gives up
                await _discard(reader)
                return
            if fate == "lose":  # "the tunnel re-keyed": the listener gets the stream but none of its data
                reader = _emptied(reader)
            if binding.closed.is_set():
                return
            binding.backlog.put_nowait(((reader, writer), sender))
            # the accepting side's relay owns the stream from here; keep this handler alive until it closes
            await writer.wait_closed()

    async def _count(self, coro: Any) -> None:
        self.active += 1
        try:
            await coro
        finally:
            self.active -= 1

    async def _relay(self, a: Stream, b: Stream, outgoing: bool = False) -> None:
        """Pipe bytes both ways until both directions reached EOF; EOF is forwarded as a half-close."""
        self.active += 1
        try:
            await asyncio.gather(self._pump(a[0], b[1], outgoing), self._pump(b[0], a[1], not outgoing))
        finally:
            self.active -= 1
            for w in (a[1], b[1]):
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, sending: bool) -> None:
        try:
            while data := await src.read(65536):
                if sending:
                    self.bytes_sent += len(data)
                else:
                    self.bytes_recv += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                if dst.can_write_eof():
                    dst.write_eof()


async def _serve_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The built-in echo service (port 7) that ``ping`` measures: every chunk goes straight back."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        writer.close()


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while await reader.read(65536):
            pass


def _emptied(reader: asyncio.StreamReader) -> asyncio.StreamReader:
    """A reader that yields nothing but the EOF of ``reader``: the stream 'lost while the tunnel re-keyed'."""
    out = asyncio.StreamReader()

    async def drain() -> None:
        await _discard(reader)
        out.feed_eof()

    task = asyncio.ensure_future(drain())
    out._sim_task = task  # type: ignore[attr-defined]  # keep a reference so the task is not collected
    return out
