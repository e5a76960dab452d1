"""Deterministic sample data for the UI's screenshots, snapshot tests and benchmark — no network, no Pilot.

:func:`sample_events` makes realistic threat events (SSH brute force, web scans, sudo abuse, port scans) from a
seed with fixed timestamps; :func:`fill_orchestrator` stores them and pins every time the store stamped
(``received_at``, sensors' ``last_seen``) to that fixed clock so pictures are identical run to run.
:class:`StubPilot` answers the few pilotctl calls the views trigger (send, mitigate, trust) from memory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson

from pilot_tui.model import ThreatEvent, make_event
from pilot_tui.pilot.driver import ConnectResult, DaemonStatus, Pilotctl, SendAck
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.events import EventStore

if TYPE_CHECKING:
    from pilot_tui.engines.mitigation import Status

BASE_EPOCH = 1_795_608_000.0
"""2026-11-25T12:00:00Z — the sample clock's "now" is a little after the newest sample event."""

SENSORS: tuple[tuple[str, str], ...] = (
    ("gcp-log-oracle", "0:0000.0000.0a1f"),
    ("gcp-web-1", "0:0000.0000.0b20"),
    ("aws-api-2", "0:0000.0000.0c31"),
    ("edge-proxy-3", "0:0000.0000.0d42"),
)
"""(sensor name, Pilot address) of the sample oracles."""

HOSTILE_EVIDENCE = "Nov 25 11:59:58 web-1 sshd[4242]: Invalid user [bold red]admin[/] \x1b]8;;http://x\x07 from 203.0.113.66"
"""An attacker-written log line full of markup and escape sequences: the detail pane must show it literally."""

_USERS = ("root", "admin", "ubuntu", "oracle", "test", "postgres", "git", "deploy")
_PATHS = ("/wp-login.php", "/.env", "/../../etc/passwd", "/phpmyadmin/", "/api/v1/users?id=1%20OR%201=1",
          "/cgi-bin/luci", "/.git/config", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php")


@dataclass(frozen=True, slots=True)
class _Kind:
    anomaly: str
    rule: str
    severity: str
    log: str


_KINDS: tuple[_Kind, ...] = (
    _Kind("brute_force_ssh", "sshd", "critical", "/var/log/auth.log"),
    _Kind("ssh_user_enum", "sshd", "high", "/var/log/auth.log"),
    _Kind("sudo_failure", "sudo", "medium", "/var/log/auth.log"),
    _Kind("web_path_traversal", "nginx", "high", "/var/log/nginx/access.log"),
    _Kind("web_sqli", "nginx", "critical", "/var/log/nginx/access.log"),
    _Kind("web_scanner", "nginx", "low", "/var/log/nginx/access.log"),
    _Kind("port_scan", "ufw", "medium", "/var/log/ufw.log"),
    _Kind("http_404_burst", "nginx", "info", "/var/log/nginx/access.log"),
)


def _attackers(rng: random.Random, n: int) -> list[str]:
    ips = [f"203.0.113.{rng.randrange(1, 255)}" for _ in range(n // 2)]
    ips += [f"198.51.100.{rng.randrange(1, 255)}" for _ in range(n // 3)]
    ips += [f"192.0.2.{rng.randrange(1, 255)}" for _ in range(n - len(ips) - 2)]
    ips += ["2001:db8:85a3::8a2e:370:7334", "2001:db8::dead:beef"]
    return ips


def _hms(epoch: float) -> str:
    import time

    return time.strftime("%b %d %H:%M:%S", time.gmtime(epoch))


def _evidence(kind: _Kind, ip: str, user: str, epoch: float, rng: random.Random) -> list[str]:
    stamp = _hms(epoch)
    if kind.rule == "sshd":
        pid = rng.randrange(800, 9000)
        port = rng.randrange(30000, 65000)
        verb = "Invalid user" if kind.anomaly == "ssh_user_enum" else "Failed password for"
        return [f"{stamp} web-1 sshd[{pid}]: {verb} {user} from {ip} port {port + i} ssh2" for i in range(3)]
    if kind.rule == "sudo":
        return [f"{stamp} web-1 sudo: {user} : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/{user} ; "
                f"USER=root ; COMMAND=/bin/bash"]
    if kind.rule == "ufw":
        return [f"{stamp} web-1 kernel: [UFW BLOCK] IN=eth0 OUT= SRC={ip} DST=10.0.0.4 PROTO=TCP "
                f"SPT={rng.randrange(1024, 65000)} DPT={p}" for p in (22, 23, 3389)]
    path = rng.choice(_PATHS)
    return [f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" 404 153 "-" "Mozilla/5.0 (compatible; scan)"']


def sample_times(n: int, start: float, span: float, waves: int = 3) -> list[float]:
    """``n`` increasing times over ``[start, start + span)`` arriving in ``waves`` bursts (so rates vary)."""
    weights = [0.15 + (1 + math.sin(2 * math.pi * waves * i / max(1, n))) ** 2 for i in range(n)]
    total = sum(weights) or 1.0
    out, t = [], start
    for w in weights:
        out.append(round(t, 3))
        t += span * w / total
    return out


def sample_events(n: int, seed: int = 7, *, start: float = BASE_EPOCH - 3600, step: float = 0.5,
                  sensors: tuple[tuple[str, str], ...] = SENSORS,
                  times: list[float] | None = None) -> Iterator[tuple[str, ThreatEvent]]:
    """``n`` (sender address, event) pairs, oldest first, ``step`` seconds apart from ``start`` (or at ``times``).

    Per-sensor ``seq`` numbers are consecutive, except that each sensor skips two numbers once (a visible gap).
    """
    rng = random.Random(seed)
    ips = _attackers(rng, 60)
    seqs = {name: 0 for name, _ in sensors}
    for i in range(n):
        name, address = sensors[rng.randrange(len(sensors))]
        kind = _KINDS[rng.randrange(len(_KINDS))]
        ip = ips[min(len(ips) - 1, int(rng.paretovariate(1.2)) - 1)] if rng.random() < 0.7 else rng.choice(ips)
        user = rng.choice(_USERS)
        epoch = times[i] if times is not None else start + i * step
        seqs[name] += 3 if seqs[name] == 40 else 1
        evidence = _evidence(kind, ip, user, epoch, rng)
        if i == n - 3:
            evidence = [HOSTILE_EVIDENCE, *evidence[:2]]
        millis = int(round((epoch % 1) * 1000))
        ts = f"{_iso(epoch)}.{millis:03d}Z"
        event = make_event(
            ip, kind.anomaly, kind.severity, sensor=name, seq=seqs[name], rule=kind.rule,
            count=rng.randrange(3, 40) if kind.rule in ("sshd", "nginx") else rng.randrange(1, 6),
            window_s=600.0, user=user if kind.rule in ("sshd", "sudo") else None, log=kind.log,
            evidence=evidence, ts=ts, event_id=f"ev-{seed}-{i:06d}",
        )
        yield address, event


def _iso(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def fill_orchestrator(store: EventStore, n: int, seed: int = 7, *, start: float = BASE_EPOCH - 3600,
                      step: float | None = None, batch: int = 500) -> None:
    """Store ``n`` sample events (as if received from the sample sensors), then pin the store's own timestamps.

    ``received_at`` becomes the event's ``ts`` (so per-minute rates and ages are the same on every run) and each
    sensor's ``first_seen``/``last_seen`` follow from its events.
    """
    if step is None:
        step = 3600.0 / max(1, n)
    times = sample_times(n, start, step * n)
    chunk: list[ThreatEvent] = []
    addresses = dict(SENSORS)
    for _sender, event in sample_events(n, seed, start=start, step=step, times=times):
        chunk.append(event)
        if len(chunk) >= batch:
            store.ingest(chunk, transport="stream")
            chunk = []
    if chunk:
        store.ingest(chunk, transport="stream")
    conn = store.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("UPDATE events SET received_at = ? WHERE id = ?",
                     [(t, f"ev-{seed}-{i:06d}") for i, t in enumerate(times)])
    for sensor, address in addresses.items():
        conn.execute("UPDATE events SET sender = ? WHERE sensor = ?", (address, sensor))
        conn.execute("UPDATE sensors SET address = ? WHERE sensor = ?", (address, sensor))
    conn.execute("UPDATE sensors SET first_seen = (SELECT MIN(received_at) FROM events e WHERE e.sensor = "
                 "sensors.sensor), last_seen = (SELECT MAX(received_at) FROM events e WHERE e.sensor = sensors.sensor)")
    conn.execute("COMMIT")


def add_quarantine(store: EventStore, count: int = 3) -> None:
    """Quarantine a few hostile payloads (bad JSON, unknown severity, oversize) with fixed times."""
    from pilot_tui.model import decode_payload

    samples = [
        b'{"source_ip": "203.0.113.9", "anomaly": "x", "severity": "apocalyptic"}',
        b'{"source_ip": "not-an-ip\x1b[31m", "anomaly": "brute_force_ssh", "severity": "high"}',
        b'{"source_ip": "198.51.100.4", "anomaly": [1, 2], "severity": "low"',
    ]
    for raw in samples[:count]:
        decoded = decode_payload(raw)
        store.ingest(decoded.events, decoded.rejected, sender="0:0000.0000.0e99", transport="message")
    store.conn.execute("UPDATE quarantine SET received_at = ? + rowid", (BASE_EPOCH - 60,))


@dataclass
class StubPilot:
    """A pilotctl stand-in for views: sends succeed (or raise ``fail_with``), mitigations are applied in dry-run.

    ``calls`` records (method, target) so tests can check what the UI asked for.
    """

    fail_with: PilotError | None = None
    mitigation_status: Status = "applied"
    pending_requests: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0

    async def _maybe_fail(self, name: str, target: str) -> None:
        import asyncio

        self.calls.append((name, target))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with

    async def connect(self, target: str, port: int, payload: bytes, *, timeout: float = 10.0) -> ConnectResult:
        await self._maybe_fail("connect", target)
        ids = [orjson.loads(line)["id"] for line in payload.splitlines() if line.strip()]
        reply = orjson.dumps({"schema": "pilot-tui.ack/1", "stored": ids, "duplicate": [], "rejected": []})
        return ConnectResult(target, port, reply.decode(), len(payload), 0.012)

    async def send_message(self, target: str, data: bytes, *, msg_type: str = "json", reply_to: str | None = None,
                           wait: float | None = None) -> SendAck:
        await self._maybe_fail("send_message", target)
        reply = None
        obj = orjson.loads(data) if data.startswith(b"{") else {}
        if isinstance(obj, dict) and obj.get("schema") == "pilot-tui.mitigate/1":
            from pilot_tui.engines.mitigation import MitigationResult

            result = MitigationResult(
                request_id=obj["request_id"], ip=obj["ip"], action=obj["action"],
                status=self.mitigation_status,
                backend="dry-run", detail="blocked for 3600s (dry-run: nothing was run)",
                expires_at="2026-11-25T13:00:00.000Z", executor="aws-exec-node")
            reply = {"data": result.encode().decode(), "from": target}
        return SendAck("msg-1", target, len(data), "delivered", reply, 0.01)

    async def pending(self) -> list[dict[str, Any]]:
        await self._maybe_fail("pending", "")
        return list(self.pending_requests)

    async def approve(self, node_id: int) -> dict[str, Any]:
        await self._maybe_fail("approve", str(node_id))
        self.pending_requests = [p for p in self.pending_requests if p.get("node_id") != node_id]
        return {"approved": node_id}

    async def reject(self, node_id: int, reason: str = "") -> dict[str, Any]:
        await self._maybe_fail("reject", str(node_id))
        self.pending_requests = [p for p in self.pending_requests if p.get("node_id") != node_id]
        return {"rejected": node_id}

    # -- the calls the executor makes (identity, inbox)

    async def daemon_status(self) -> DaemonStatus:
        return DaemonStatus(True, True, EXEC_ADDR, "aws-exec-node", 3585, None, 60, {})

    async def info(self) -> dict[str, Any]:
        return {"address": EXEC_ADDR, "hostname": "aws-exec-node"}

    async def find(self, hostname: str) -> dict[str, Any]:
        """The exec node resolves (the orchestrator pins its mitigations to its address), and so does the orchestrator
        (the executor obeys it by name); other names do not."""
        from pilot_tui.pilot.errors import NotFound

        await self._maybe_fail("find", hostname)
        if hostname == "aws-exec-node":
            return {"address": EXEC_ADDR, "hostname": hostname, "node_id": 3585, "public": False}
        if hostname == ORCH_NAME:
            return {"address": ORCH_ADDR, "hostname": hostname, "node_id": 2, "public": False}
        raise NotFound(f"{hostname} not found")

    async def inbox_listing(self, *flags: str) -> tuple[str, list[Any]]:
        return "", []

    async def inbox_clear(self, *, before: float | None = None) -> int:
        return 0


SAMPLE_PENDING: list[dict[str, Any]] = [
    {"node_id": 4711, "justification": "edge-proxy-4 wants to send detections", "public_key": "",
     "received_at": int(BASE_EPOCH - 120)},
    {"node_id": 666, "justification": "[red]trust me[/] \x1b[2J", "public_key": "", "received_at": int(BASE_EPOCH - 30)},
]
"""Two handshake requests, one with hostile text in its justification."""


# -- who the stub says the nodes are (its identity and lookup answers) --------------------------------------------

EXEC_ADDR = "0:0000.0000.0e01"
ORCH_ADDR = "0:0000.0000.0002"
ORCH_NAME = "local-threat-orchestrator"


def as_driver(pilot: StubPilot) -> Pilotctl:
    """The stub where an engine takes the real driver. It answers only the calls the sample engines make (send,
    mitigate, trust, identity), while those engines are typed for :class:`Pilotctl` as a whole: hence a cast."""
    return cast(Pilotctl, pilot)


# -- whole engines ------------------------------------------------------------------------------------------------


class StaticSource:
    """A log source that reads nothing and reports fixed per-file stats (screenshots, tests)."""

    def __init__(self, stats: list[Any]) -> None:
        self._stats = stats

    async def batches(self) -> Any:
        import asyncio

        await asyncio.Event().wait()
        yield  # pragma: no cover - never reached

    def stats(self) -> list[Any]:
        return list(self._stats)

    async def close(self) -> None:
        return None


class NoDetector:
    """A detector that finds nothing (the sample oracle's detections are recorded directly)."""

    def feed(self, line: str, log: str, now: float | None = None) -> list[ThreatEvent]:
        return []


def sample_file_stats() -> list[Any]:
    from pilot_tui.sources.types import FileStats

    return [
        FileStats("file:/var/log/auth.log", "/var/log/auth.log", "following", 48_213_771, 48_213_771, 1_310_722,
                  41.6, 512_034, 2, 0, 0),
        FileStats("file:/var/log/nginx/access.log", "/var/log/nginx/access.log", "following", 9_882_113, 9_881_990,
                  1_310_723, 118.4, 77_120, 0, 0, 0),
        FileStats("file:/var/log/ufw.log", "/var/log/ufw.log", "waiting for file", None, 0, None, 0.0, 0, 0, 0, 0),
    ]


def sample_oracle(state_dir: str, *, detections: int = 40, pending: int = 12, pilot: StubPilot | None = None,
                  transport: str = "stream") -> Any:
    """An oracle engine over a temp outbox holding ``detections`` sample events, the last ``pending`` unsent."""
    from pathlib import Path

    from pilot_tui.engines.oracle import OracleConfig, OracleEngine
    from pilot_tui.store.outbox import Outbox

    outbox = Outbox(Path(state_dir) / "outbox.db")
    engine = OracleEngine(as_driver(pilot or StubPilot()), outbox, [StaticSource(sample_file_stats())], NoDetector(),
                          OracleConfig(peer="local-threat-orchestrator", sensor="gcp-log-oracle",
                                       transport=transport))
    events = [e for _, e in sample_events(detections, seed=3, sensors=(SENSORS[0],))]
    stored = outbox.record(events, {})
    engine.recent.extend(stored)
    engine.detections = len(stored)
    engine.lines_read = 589_154
    outbox.mark_delivered([e.id for e in stored[: max(0, len(stored) - pending)]], "stored")
    outbox.conn.execute("UPDATE outbox SET created = ? + rowid, delivered_at = ? + rowid", (BASE_EPOCH - 300,
                                                                                            BASE_EPOCH - 290))
    return engine


def sample_send_results() -> list[Any]:
    """A plausible send log: successes, a duplicate resend, then the orchestrator going away."""
    from pilot_tui.engines.updates import SendResult

    t = BASE_EPOCH - 40
    return [
        SendResult(t, "stream", "local-threat-orchestrator", 14, 6_210, True, 31.0, "stored", delivered=14),
        SendResult(t + 6, "stream", "local-threat-orchestrator", 9, 3_990, True, 28.4, "stored", delivered=9),
        SendResult(t + 11, "stream", "local-threat-orchestrator", 3, 1_402, True, 30.2, "stored", delivered=2,
                   duplicates=1),
        SendResult(t + 19, "stream", "local-threat-orchestrator", 12, 5_377, False, 10_004.0, "none",
                   error_code="connection_failed", error="dial 0:0000.0000.0002:1000: no route",
                   hint="is the peer's daemon running? check `pilotctl peers`", retry_in_s=4.0),
        SendResult(t + 33, "stream", "local-threat-orchestrator", 12, 5_377, False, 2.1, "none",
                   error_code="trust_required", error="no mutual trust with local-threat-orchestrator",
                   hint="run `pilotctl handshake local-threat-orchestrator` and wait for approval", retry_in_s=8.0),
    ]


def sample_orchestrator(path: str, n: int = 400, *, exec_node: str | None = "aws-exec-node",
                        pilot: StubPilot | None = None, quarantine: bool = True) -> Any:
    """An orchestrator engine (no receivers started) over a store filled with ``n`` sample events."""
    from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine

    store = EventStore(path)
    fill_orchestrator(store, n)
    if quarantine:
        add_quarantine(store)
    config = OrchestratorConfig(stream=False, inbox=False, exec_node=exec_node, analyst="analyst")
    return OrchestratorEngine(as_driver(pilot or StubPilot(pending_requests=list(SAMPLE_PENDING))), store, config)


def sample_receivers(engine: Any) -> None:
    """Receiver states as a running orchestrator would report them (fixed times)."""
    from pilot_tui.engines.updates import ReceiverState

    engine.receivers["stream"] = ReceiverState(BASE_EPOCH - 5, "stream", "sdk", "running",
                                               "port 1000 via the pilotprotocol SDK", 0, BASE_EPOCH - 2)
    engine.receivers["inbox"] = ReceiverState(BASE_EPOCH - 5, "inbox", "inbox", "running",
                                              "watching the daemon inbox", 1, BASE_EPOCH - 95)


class FixedClock:
    """A clock that only moves when told to (``advance``); call it for the time."""

    def __init__(self, now: float = BASE_EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sample_executor(path: str, clock: FixedClock | None = None) -> Any:
    """A dry-run executor engine (obeying the sample orchestrator by name, as the README advises) running on
    ``clock`` (fixed by default)."""
    from pilot_tui.engines.executor import ExecutorEngine

    engine = ExecutorEngine(StubPilot(), path, backend="dry-run", obey=[ORCH_NAME], allowlist=["10.0.0.0/8"],
                            clock=clock or FixedClock(), use_watchdog=False, discover_own_ips=False,
                            own_ips=["192.0.2.10"])
    return engine


async def fill_executor(engine: Any, clock: FixedClock | None = None) -> None:
    """Feed the executor a realistic series of requests: blocks, a repeat, refusals (allowlisted, own address,
    loopback, stranger, garbage). With ``clock`` (the engine's), requests are 7 s apart ending at its start time."""
    from pilot_tui.engines.mitigation import MitigationRequest, utc_iso
    from pilot_tui.pilot.driver import InboxMessage

    def msg(i: int, sender: str, data: bytes) -> InboxMessage:
        return InboxMessage(f"m-{i:03d}", sender, "2026-11-25T11:59:00.000000000Z", "json", data.decode(), len(data))

    requests = [
        ("203.0.113.66", 3600, "brute_force_ssh"), ("198.51.100.23", 7200, "web_sqli"),
        ("2001:db8::dead:beef", 600, "port_scan"), ("203.0.113.66", 3600, "brute_force_ssh"),
        ("10.0.0.4", 3600, "ssh_user_enum"), ("127.0.0.1", 3600, "web_scanner"),
        ("192.0.2.10", 3600, "http_404_burst"),
    ]
    end = clock.now if clock is not None else 0.0
    if clock is not None:
        clock.now = end - 7 * (len(requests) + 2)
    def issued() -> str:
        return utc_iso(engine._clock())  # issued just now by the engine's clock: fresh, so not refused as stale

    for i, (ip, duration, reason) in enumerate(requests):
        req = MitigationRequest(f"req-{i:03d}", "block", ip, duration, f"ev-7-{i:06d}", reason, "analyst", issued())
        await engine.handle(msg(i, ORCH_ADDR, req.encode()))
        if clock is not None:
            clock.advance(7)
    await engine.handle(msg(90, "0:0000.0000.0bad", MitigationRequest(
        "req-090", "block", "198.51.100.99", 60, issued_at=issued()).encode()))
    if clock is not None:
        clock.advance(7)
    await engine.handle(msg(91, ORCH_ADDR, b'{"schema": "pilot-tui.mitigate/1", "action": "drop-all"}'))
    if clock is not None:
        clock.now = end


def screen_text(app: Any) -> str:
    """What the terminal shows right now, as plain text (tests assert on it; the bench renders with it)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
