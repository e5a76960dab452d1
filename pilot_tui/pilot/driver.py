"""The pilotctl subprocess driver: the one place that runs pilotctl.

Every call is an asyncio subprocess with an argv list (never a shell), always ``--json``, bounded by a timeout, and
returns the envelope's ``data`` or raises a typed :class:`~pilot_tui.pilot.errors.PilotError` parsed from the stderr
envelope. Arguments are validated before spawning so a bad hostname is a clear error here, not pilotctl usage text.

The same driver runs ``pilot-sim`` (our emulator) unchanged: it speaks the same command line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pilot_tui.aiotime import within
from pilot_tui.subproc import kill_and_reap, spawn

from .errors import BadResponse, InvalidArgument, PilotError, Timeout, error_from_envelope
from .names import ADDRESS_RE, HOSTNAME_RE, MESSAGE_ID_RE, TOPIC_RE

SUBSCRIBE_LINE_LIMIT = 8 * 2**20
"""Longest ``subscribe`` line (one event, its data JSON-escaped) we read; a longer one is skipped and counted."""

DEFAULT_CALL_TIMEOUT = 15.0
"""Seconds any one pilotctl call may take before we kill it (calls that wait, like recv, add their own wait)."""


def check_target(target: str) -> str:
    """Validate a peer given as hostname or Pilot address; raise :class:`InvalidArgument` with a clear message."""
    if HOSTNAME_RE.match(target) or ADDRESS_RE.match(target):
        return target
    raise InvalidArgument(
        f"bad peer {target[:80]!r}: expected a Pilot hostname (lowercase letters, digits, hyphens, 1-63, no "
        "leading/trailing hyphen) or an address like 0:0000.0000.0002"
    )


def check_port(port: int) -> int:
    """Validate a Pilot port (1-65535)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidArgument(f"bad port {port!r}: expected 1-65535")
    return port


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string, the form pilotctl's ``--timeout``/``--wait`` take."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """What ``connect`` returned: the peer's reply (``""`` when it closed without one) and how long it took."""

    target: str
    port: int
    response: str
    sent_bytes: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class RecvMessage:
    """One message a ``recv`` run collected (no sender address: pilotctl gives none)."""

    port: int
    seq: int
    data: str


@dataclass(frozen=True, slots=True)
class SendAck:
    """The receiving daemon's acknowledgement of ``send-message``; ``reply`` is set when ``--wait`` got one."""

    message_id: str
    target: str
    bytes: int
    ack: str
    reply: dict[str, Any] | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message in the local daemon's inbox (``data`` is empty in a list without ``--full``)."""

    message_id: str
    sender: str
    received_at: str
    type: str
    data: str
    size: int
    inbox_id: str = ""
    """The inbox file name (what ``inbox read`` takes); pilotctl says it can differ from ``message_id``."""
    reply_to: str = ""
    """For an answer sent with ``--reply-to``: the message id it answers."""
    raw: bytes | None = None
    """The body of a binary / invalid-UTF-8 message, which the daemon keeps as ``data_b64``. Only ``inbox read``
    shows it: an ``inbox --full`` listing gives such a message an empty ``data``."""

    def body(self) -> bytes:
        """The message body as bytes, whichever way the daemon stored it."""
        return self.raw if self.raw is not None else self.data.encode("utf-8", "surrogateescape")

    @property
    def needs_read(self) -> bool:
        """True when the listing left the body out (binary data): fetch it with :meth:`Pilotctl.inbox_read`."""
        return self.raw is None and not self.data and self.size > 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InboxMessage:
        return cls(
            message_id=str(d.get("message_id") or d.get("id") or ""),
            sender=str(d.get("from") or ""),
            received_at=str(d.get("received_at") or ""),
            type=str(d.get("type") or ""),
            data=str(d.get("data") if d.get("data") is not None else d.get("preview") or ""),
            size=int(d.get("bytes") or 0),
            inbox_id=str(d.get("id") or d.get("message_id") or ""),
            reply_to=str(d.get("reply_to") or ""),
            raw=_b64(d.get("data_b64")),
        )


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class PingResult:
    """What ``ping`` saw: how many echo probes came back, the best round trip, and each failed probe's error.

    ``answered`` is the verdict a caller wants: pilotctl exits 1 with this same envelope when every probe failed.
    """

    target: str
    sent: int
    answered: int
    rtt_ms: float | None
    errors: tuple[str, ...]
    deadline_passed: bool
    """pilotctl's ``timeout``: its ``--timeout`` ran out between probes (not every probe was made)."""


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """``daemon status``: pilotctl always exits 0 here, so ``running``/``responsive`` carry the answer."""

    running: bool
    responsive: bool
    address: str | None
    hostname: str | None
    node_id: int | None
    socket: str | None
    uptime_secs: int | None
    raw: dict[str, Any]


class Pilotctl:
    """Runs pilotctl (or pilot-sim) as subprocesses. Safe to share; each call is its own process.

    ``env`` is merged over ``os.environ`` for every call — tests use it to point ``HOME`` and ``PILOT_SOCKET`` at
    temporary paths; the demo uses it to address one emulated node.
    """

    def __init__(self, binary: str, *, env: Mapping[str, str] | None = None, timeout: float = DEFAULT_CALL_TIMEOUT):
        self.binary = binary
        self.env = dict(env or {})
        self.timeout = timeout
        self._version: str | None = None
        self.oversized_events = 0
        """``subscribe`` lines skipped for being longer than :data:`SUBSCRIBE_LINE_LIMIT`."""

    def environ(self) -> dict[str, str]:
        """The full environment a call runs with."""
        merged = dict(os.environ)
        merged.update(self.env)
        return merged

    @property
    def is_sim(self) -> bool:
        """True when the binary is our emulator (the stream server then uses the sim SDK twin)."""
        return os.path.basename(self.binary).startswith("pilot-sim") or bool(
            self._version and self._version.endswith("-sim")
        )

    def socket_path(self) -> str:
        """The daemon socket pilotctl will use: ``$PILOT_SOCKET`` or pilotctl's default."""
        return self.environ().get("PILOT_SOCKET") or "/tmp/pilot.sock"

    async def _spawn(
        self, args: list[str], stdin: bytes | None, *, line_limit: int = 2**16
    ) -> asyncio.subprocess.Process:
        try:
            return await spawn(
                self.binary,
                "--json",
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environ(),
                limit=line_limit,
            )
        except OSError as exc:
            raise PilotError(f"cannot run {self.binary}: {exc.strerror or exc}", code="binary_not_found") from None

    async def raw(self, *args: str, stdin: bytes | None = None, timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Run ``pilotctl --json ARGS`` and return (exit status, stdout, stderr); kills it on timeout or cancel."""
        limit = self.timeout if timeout is None else timeout
        proc = await self._spawn(list(args), stdin)
        try:
            out, err = await within(proc.communicate(stdin), limit)
        except asyncio.TimeoutError:
            raise Timeout(f"pilotctl {args[0] if args else ''} did not finish within {limit:g}s") from None
        finally:
            await kill_and_reap(proc)
        return proc.returncode or 0, out, err

    async def call(self, *args: str, stdin: bytes | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Run one command and return its envelope's ``data`` (a dict), or raise the typed error."""
        status, out, err = await self.raw(*args, stdin=stdin, timeout=timeout)
        if status != 0:
            raise error_from_envelope(err, status)
        line = out.strip().splitlines()[-1] if out.strip() else b""
        try:
            env = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise BadResponse(f"pilotctl {args[0]} printed no JSON envelope: {line[:120]!r}") from None
        if not isinstance(env, dict) or env.get("status") != "ok":
            raise BadResponse(f"pilotctl {args[0]} printed an unexpected envelope: {line[:120]!r}")
        data = env.get("data")
        return data if isinstance(data, dict) else {"value": data}

    # -- node state ------------------------------------------------------------------------------------------

    async def version(self) -> str:
        """pilotctl's version string (``1.18.0``; pilot-sim says ``1.18.0-sim``)."""
        status, out, err = await self.raw("version")
        if status != 0:
            raise error_from_envelope(err, status)
        self._version = out.decode("utf-8", "replace").strip()
        return self._version

    async def daemon_status(self) -> DaemonStatus:
        data = await self.call("daemon", "status")
        return DaemonStatus(
            running=bool(data.get("running")),
            responsive=bool(data.get("responsive")),
            address=data.get("address"),
            hostname=data.get("hostname"),
            node_id=data.get("node_id"),
            socket=data.get("socket"),
            uptime_secs=data.get("uptime_secs"),
            raw=data,
        )

    async def info(self) -> dict[str, Any]:
        return await self.call("info")

    async def find(self, hostname: str) -> dict[str, Any]:
        return await self.call("find", check_target(hostname))

    async def peers(self) -> list[dict[str, Any]]:
        return list((await self.call("peers")).get("peers") or [])

    async def trust(self) -> list[dict[str, Any]]:
        return list((await self.call("trust")).get("trusted") or [])

    async def pending(self) -> list[dict[str, Any]]:
        return list((await self.call("pending")).get("pending") or [])

    async def handshake(self, target: str, justification: str = "") -> dict[str, Any]:
        args = ["handshake", target if str(target).isdigit() else check_target(target)]
        if justification:
            args.append(justification)
        return await self.call(*args)

    async def approve(self, node_id: int) -> dict[str, Any]:
        return await self.call("approve", str(int(node_id)))

    async def reject(self, node_id: int, reason: str = "") -> dict[str, Any]:
        args = ["reject", str(int(node_id))]
        if reason:
            args.append(reason)
        return await self.call(*args)

    async def ping(
        self, target: str, *, count: int = 1, timeout: float = 3.0, bound: float | None = None,
        auto_handshake: bool = True,
    ) -> PingResult:
        """Echo probes to ``target``'s built-in echo port (``pilotctl ping``): is the peer reachable right now?

        pilotctl gives ``--timeout`` to the whole run but lets each dial take at least 10 s, so ``bound`` (default
        ``timeout`` + 2 s) kills the process: past it this raises :class:`~pilot_tui.pilot.errors.Timeout`.
        Failed probes are not an exception — pilotctl then exits 1 yet prints its ``ok`` envelope on stdout, which
        comes back as ``answered == 0`` with the probes' errors. Refusals before any probe (``trust_required``,
        ``not_found``, ``not_running``) raise the typed error from the stderr envelope.

        To an untrusted PUBLIC peer pilotctl first sends a handshake and waits for it (up to ~20 s);
        ``auto_handshake=False`` passes ``--no-auto-handshake`` so a probe changes nothing (the flag also skips the
        client-side refusal of untrusted private peers, whose daemon then drops the probe: keep the default there).
        """
        limit = timeout + 2.0 if bound is None else bound
        args = ["ping", check_target(target), "--count", str(max(1, int(count))), "--timeout", go_duration(timeout)]
        if not auto_handshake:
            args.append("--no-auto-handshake")  # last: pilotctl's parser would take a following word as its value
        status, out, err = await self.raw(*args, timeout=limit)
        line = out.strip().splitlines()[-1] if out.strip() else b""
        try:
            env = orjson.loads(line) if line else None
        except orjson.JSONDecodeError:
            env = None
        if not isinstance(env, dict) or env.get("status") != "ok" or not isinstance(env.get("data"), dict):
            if status != 0:
                raise error_from_envelope(err, status)
            raise BadResponse(f"pilotctl ping printed no JSON envelope: {line[:120]!r}")
        data = env["data"]
        probes = [r for r in data.get("results") or [] if isinstance(r, dict)]
        good = [r for r in probes if "error" not in r]
        rtts = [float(r["rtt_ms"]) for r in good if isinstance(r.get("rtt_ms"), (int, float))]
        return PingResult(
            target=str(data.get("target") or data.get("to") or target),
            sent=len(probes),
            answered=len(good),
            rtt_ms=min(rtts) if rtts else None,
            errors=tuple(str(r["error"]) for r in probes if "error" in r),
            deadline_passed=bool(data.get("timeout")),
        )

    # -- streams ---------------------------------------------------------------------------------------------

    async def connect(self, target: str, port: int, payload: bytes, *, timeout: float = 10.0) -> ConnectResult:
        """Send ``payload`` on a stream to ``target:port`` and wait for one reply (or the peer's close).

        A :class:`~pilot_tui.pilot.errors.Timeout` here means the peer got the data but did not answer in time.
        """
        if not payload.strip():
            raise InvalidArgument("refusing to connect with an empty payload")
        started = time.monotonic()
        data = await self.call(
            "connect", check_target(target), str(check_port(port)), "--timeout", go_duration(timeout),
            stdin=payload, timeout=timeout + self.timeout,
        )
        return ConnectResult(
            target=str(data.get("target") or target),
            port=int(data.get("port") or port),
            response=str(data.get("response") or ""),
            sent_bytes=len(payload),
            elapsed=time.monotonic() - started,
        )

    async def recv(self, port: int, *, count: int = 1, timeout: float = 1.0) -> list[RecvMessage]:
        """One ``recv`` run: bind ``port``, collect up to ``count`` messages, return when done or at ``timeout``."""
        data = await self.call(
            "recv", str(check_port(port)), "--count", str(count), "--timeout", go_duration(timeout),
            timeout=timeout + self.timeout,
        )
        return [
            RecvMessage(port=int(m.get("port") or port), seq=int(m.get("seq") or 0), data=str(m.get("data") or ""))
            for m in data.get("messages") or []
        ]

    # -- data exchange (port 1001) ---------------------------------------------------------------------------

    async def send_message(
        self, target: str, data: bytes, *, msg_type: str = "json", reply_to: str | None = None,
        wait: float | None = None,
    ) -> SendAck:
        """``send-message TARGET --type T --data -`` with ``data`` on stdin; returns the daemon's ack."""
        if msg_type not in ("text", "json", "binary"):
            raise InvalidArgument(f"bad message type {msg_type!r}")
        args = ["send-message", check_target(target), "--type", msg_type, "--data", "-"]
        if reply_to is not None:
            if not MESSAGE_ID_RE.match(reply_to):
                raise InvalidArgument(f"bad message id {reply_to[:40]!r}")
            args += ["--reply-to", reply_to]
        if wait is not None:
            args += ["--wait", go_duration(wait)]
        started = time.monotonic()
        d = await self.call(*args, stdin=data, timeout=(wait or 0) + self.timeout)
        reply = d.get("reply")
        return SendAck(
            message_id=str(d.get("message_id") or ""),
            target=str(d.get("target") or target),
            bytes=int(d.get("bytes") or len(data)),
            ack=str(d.get("ack") or ""),
            reply=reply if isinstance(reply, dict) else None,
            elapsed=time.monotonic() - started,
        )

    async def inbox(self, *, limit: int = 0, full: bool = True, since: float | None = None) -> list[InboxMessage]:
        """The local inbox, newest first (works without a running daemon: it reads ``~/.pilot/inbox``).

        ``limit=0`` means all: pilotctl shows only the newest 10 by default, which would hide messages in a burst.
        """
        args = ["inbox", "--limit", str(int(limit))]
        if full:
            args.append("--full")
        if since is not None:
            args += ["--since", go_duration(since)]
        return (await self.inbox_listing(*args[1:]))[1]

    async def inbox_listing(self, *flags: str) -> tuple[str, list[InboxMessage]]:
        """``inbox FLAGS``: the inbox directory pilotctl reads (for a watcher) and the messages, newest first."""
        if "--limit" not in flags and "--clear" not in flags:
            flags = ("--limit", "0", *flags)  # pilotctl's default shows only the newest 10
        data = await self.call("inbox", *flags)
        return str(data.get("dir") or ""), [InboxMessage.from_dict(m) for m in data.get("messages") or []]

    async def inbox_read(self, message_id: str) -> InboxMessage:
        if not MESSAGE_ID_RE.match(message_id):
            raise InvalidArgument(f"bad message id {message_id[:40]!r}")
        return InboxMessage.from_dict(await self.call("inbox", "read", message_id))

    async def inbox_clear(self, *, before: float | None = None) -> int:
        """Delete inbox messages (all, or those older than ``before`` seconds); returns how many went."""
        args = ["inbox", "--clear"]
        if before is not None:
            args += ["--before", go_duration(before)]
        return int((await self.call(*args)).get("cleared") or 0)

    # -- event stream (port 1002) ----------------------------------------------------------------------------

    async def publish(self, broker: str, topic: str, data: str) -> dict[str, Any]:
        if not TOPIC_RE.match(topic) or topic == "*":
            raise InvalidArgument(f"bad topic {topic[:40]!r}")
        return await self.call("publish", check_target(broker), topic, "--data", data)

    async def subscribe(self, broker: str, topic: str) -> AsyncIterator[dict[str, Any]]:
        """Yield events from ``subscribe`` as they arrive (bare NDJSON lines); the process dies with the iterator."""
        if not TOPIC_RE.match(topic):
            raise InvalidArgument(f"bad topic {topic[:40]!r}")
        proc = await self._spawn(["subscribe", check_target(broker), topic], None, line_limit=SUBSCRIBE_LINE_LIMIT)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # one event longer than the limit: the reader drops it, the stream goes on
                    self.oversized_events += 1
                    continue
                if not line:
                    break
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    yield obj
            status = await proc.wait()
            if status != 0:
                raise error_from_envelope(await proc.stderr.read(), status)
        finally:
            await kill_and_reap(proc)
