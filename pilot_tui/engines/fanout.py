"""Fan-out: several analysts follow one orchestrator's feed through Pilot's event stream (port 1002).

Pilot's publish/subscribe goes through a *broker* — the node named in ``pilotctl publish BROKER TOPIC`` and
``pilotctl subscribe BROKER TOPIC`` — and a node can neither publish nor subscribe to itself (see
pilotctl-contract.md). So the orchestrator publishes every event it stores to a broker node, and each follower
(``pilot-tui follow BROKER``) subscribes there. Any node both sides trust can be the broker.

This is a live view, not a second copy of the record: the event stream keeps nothing, so a follower sees what is
published while it is subscribed, and a publisher that cannot reach the broker keeps at most :data:`MAX_QUEUED`
events (the oldest are dropped first, and counted). The orchestrator's own store stays the record.
Payloads are ordinary NDJSON batches (``encode_batch``), so a follower validates, dedups and quarantines them
exactly as the orchestrator does.

Triage and mitigation are shared one way: every state change on the orchestrator (an analyst's acknowledge,
dismiss or reopen, a mitigation moving an event to ``mitigating``/``mitigated``) is published as a
:class:`TriageNote`, and every mitigation outcome as an :class:`OutcomeNote`, in order with the events they refer
to; followers apply them, recording who did it and through which broker. What a follower does stays on that
follower.

Everything published is signed (:class:`Signer`, Ed25519): the orchestrator keeps its key in its state dir and wraps
each message in a ``pilot-tui.signed/1`` envelope. Any node that may publish on the broker could otherwise forge
triage or events for every follower, so a follower (:class:`KeyPin`) applies only what is signed by the key it pinned
— given with ``--key`` or trusted on first use and then kept in its state dir — and quarantines the rest with the
reason (``unsigned``, ``bad_signature``, ``wrong_key``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import os
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pilot_tui.model import ID_RE, ThreatEvent, encode_batch, printable
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.store.events import MAX_NOTE_CHARS, TRIAGE_STATES

DEFAULT_TOPIC = "pilot-tui.threats"
"""The topic events are published on unless ``--topic`` says otherwise."""

MAX_PUBLISH_BYTES = 60_000
"""Bytes of NDJSON per publish: the payload travels as one ``--data`` argument, and Linux caps one at 128 KiB."""

MAX_QUEUED = 10_000
"""Events waiting for the broker; beyond this the oldest are dropped (the orchestrator's store still has them)."""

TRIAGE_SCHEMA = "pilot-tui.triage/1"
"""``schema`` of a published triage change: ``{"schema", "ids", "state", "note", "by"}``, one JSON object."""

MAX_TRIAGE_IDS = 1000
"""Event ids per triage message (an incident of thousands of events becomes several, about 45 KB each)."""

MAX_BY_CHARS = 64

OUTCOME_SCHEMA = "pilot-tui.outcome/1"
"""``schema`` of a published mitigation outcome: ``{"schema", "request_id", "event_id", "source_ip", "status",
"detail"}``."""

OUTCOME_STATUSES = ("requested", "sent", "applied", "already_applied", "refused", "failed", "expired")
MAX_DETAIL_CHARS = 500

Report = Callable[..., None]
"""``report(state=…, kind=…, detail=…)``: how the fan-out shows up among the engine's receivers."""


@dataclass(frozen=True, slots=True)
class TriageNote:
    """Events moved to a triage state by someone on the orchestrator."""

    ids: tuple[str, ...]
    state: str
    note: str | None
    by: str

    def to_json(self) -> bytes:
        return orjson.dumps({"schema": TRIAGE_SCHEMA, "ids": list(self.ids), "state": self.state,
                             "note": self.note, "by": self.by})


@dataclass(frozen=True, slots=True)
class OutcomeNote:
    """What became of a mitigation request made on the orchestrator (shown on the rows of that source IP)."""

    request_id: str
    event_id: str
    source_ip: str
    status: str
    detail: str

    def to_json(self) -> bytes:
        return orjson.dumps({"schema": OUTCOME_SCHEMA, "request_id": self.request_id, "event_id": self.event_id,
                             "source_ip": self.source_ip, "status": self.status, "detail": self.detail})


SharedNote = TriageNote | OutcomeNote


def parse_shared(data: bytes) -> SharedNote | None:
    """The triage change or mitigation outcome ``data`` holds, or ``None`` when it is neither (events, say).

    Raises ``ValueError`` (its text is the quarantine detail) for a message that claims one of the two schemas but
    breaks its rules: a follower must not let a broker's junk rewrite its feed.
    """
    head = data[:200]
    if TRIAGE_SCHEMA.encode() not in head and OUTCOME_SCHEMA.encode() not in head:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # not one JSON object: leave it to the event decoder, which quarantines it
    if not isinstance(obj, dict):
        return None
    if obj.get("schema") == TRIAGE_SCHEMA:
        return _triage_from(obj)
    if obj.get("schema") == OUTCOME_SCHEMA:
        return _outcome_from(obj)
    return None


def _outcome_from(obj: dict[str, Any]) -> OutcomeNote:
    request_id, event_id, ip = obj.get("request_id"), obj.get("event_id"), obj.get("source_ip")
    status, detail = obj.get("status"), obj.get("detail")
    if not isinstance(request_id, str) or not ID_RE.match(request_id):
        raise ValueError("outcome request_id is not an id")
    if not isinstance(event_id, str) or (event_id and not ID_RE.match(event_id)):
        raise ValueError("outcome event_id is not an event id")
    try:
        ip = str(ipaddress.ip_address(ip if isinstance(ip, str) else ""))
    except ValueError:
        raise ValueError("outcome source_ip is not an IP address") from None
    if status not in OUTCOME_STATUSES:
        raise ValueError(f"unknown outcome status {printable(str(status))[:40]!r}")
    if not isinstance(detail, str) or len(detail) > MAX_DETAIL_CHARS:
        raise ValueError(f"outcome detail must be text of at most {MAX_DETAIL_CHARS} characters")
    return OutcomeNote(request_id, event_id, ip, status, detail)  # escaped where shown (model.printable), once


def _triage_from(obj: dict[str, Any]) -> TriageNote:
    ids, state, note, by = obj.get("ids"), obj.get("state"), obj.get("note"), obj.get("by")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_TRIAGE_IDS:
        raise ValueError(f"triage ids must be a list of 1-{MAX_TRIAGE_IDS} event ids")
    if not all(isinstance(i, str) and ID_RE.match(i) for i in ids):
        raise ValueError("triage ids hold something that is not an event id")
    if state not in TRIAGE_STATES:
        raise ValueError(f"unknown triage state {printable(str(state))[:40]!r}")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise ValueError(f"triage note must be text of at most {MAX_NOTE_CHARS} characters")
    if not isinstance(by, str) or not 0 < len(by) <= MAX_BY_CHARS:
        raise ValueError(f"triage 'by' must be a name of 1-{MAX_BY_CHARS} characters")
    return TriageNote(tuple(ids), state, note or None, by)  # escaped where shown (model.printable), once


SIGNED_SCHEMA = "pilot-tui.signed/1"
"""``schema`` of the envelope every published message travels in: ``{"schema", "key", "fp", "body", "sig"}`` —
``key`` the orchestrator's raw Ed25519 public key (base64; a follower trusting on first use needs the key itself, not
only its fingerprint), ``body`` the message as text, ``sig`` the Ed25519 signature of ``body``'s UTF-8 bytes."""

FINGERPRINT_RE = re.compile(r"^[0-9a-f]{16}$")


def fingerprint(public: bytes) -> str:
    """What people compare: the first 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(public).hexdigest()[:16]


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` 0600 from the first byte (a temp file renamed over it: never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Signer:
    """The orchestrator's publishing key: followers pin it, so only this orchestrator can change what they show."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key().public_bytes_raw()
        self.fingerprint = fingerprint(self.public)
        self.public_b64 = base64.b64encode(self.public).decode()

    @classmethod
    def ephemeral(cls) -> Signer:
        """A key for this process only (an engine built without a state dir, as in tests): still never unsigned."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """The key kept at ``path``, created 0600 on first use: the same key across restarts keeps followers' pins
        valid."""
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            _write_private(path, base64.b64encode(key.private_bytes_raw()) + b"\n")
            return cls(key)
        try:
            raw = base64.b64decode(path.read_bytes().strip(), validate=True)
            return cls(Ed25519PrivateKey.from_private_bytes(raw))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{path} does not hold a pilot-tui signing key ({exc}); move it away to make a new "
                             "one (followers will then have to pin the new key)") from None

    def wrap(self, body: bytes) -> bytes:
        """``body`` in a signed envelope."""
        return orjson.dumps({"schema": SIGNED_SCHEMA, "key": self.public_b64, "fp": self.fingerprint,
                             "body": body.decode("utf-8"), "sig": base64.b64encode(self._key.sign(body)).decode()})


class Unverified(ValueError):
    """A published message the follower must not apply; ``reason`` is the quarantine reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_key(text: str) -> tuple[bytes | None, str]:
    """``--key``: a base64 public key (pinned as is) or its 16-hex fingerprint -> ``(public or None, fingerprint)``.

    Raises ``ValueError`` for anything else, so a typo never silently falls back to trusting on first use."""
    text = text.strip()
    if FINGERPRINT_RE.match(text.lower()):
        return None, text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{text[:60]!r} is neither a key fingerprint (16 hex digits) nor a base64 Ed25519 public key")
    return raw, fingerprint(raw)


class KeyPin:
    """The orchestrator key a follower accepts: given (``--key``), kept in ``file``, or pinned on first use.

    ``expected`` is a fingerprint to wait for (``--key FINGERPRINT``): the first valid message signed by a key with
    that fingerprint pins the key itself. ``on_pin`` is told the fingerprint whenever a key gets pinned.
    """

    def __init__(self, pinned: bytes | None = None, *, expected: str | None = None, file: Path | None = None,
                 on_pin: Callable[[str], None] | None = None) -> None:
        self.file = file
        self.expected = expected
        self.on_pin = on_pin
        if pinned is None and expected is None and file is not None and file.exists():
            pinned = self.read(file)
        self.pinned = pinned

    @staticmethod
    def read(file: Path) -> bytes:
        """The key pinned in ``file`` (raises ``ValueError`` if it holds anything else)."""
        raw, _ = parse_key(file.read_text().strip())
        if raw is None:
            raise ValueError(f"{file} does not hold a public key")
        return raw

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.pinned) if self.pinned is not None else self.expected

    def open(self, data: bytes) -> bytes:
        """The body of ``data`` if it is signed by the pinned key (pinning it first if none is); else raises
        :class:`Unverified`."""
        try:
            env = orjson.loads(data) if SIGNED_SCHEMA.encode() in data[:200] else None
        except orjson.JSONDecodeError:
            env = None
        if not isinstance(env, dict) or env.get("schema") != SIGNED_SCHEMA:
            raise Unverified("unsigned", "not signed by an orchestrator key")
        key, body, sig = env.get("key"), env.get("body"), env.get("sig")
        try:
            public = base64.b64decode(key if isinstance(key, str) else "", validate=True)
            signature = base64.b64decode(sig if isinstance(sig, str) else "", validate=True)
            if not isinstance(body, str) or len(public) != 32 or len(signature) != 64:
                raise ValueError("bad shape")
            raw = body.encode("utf-8")
            Ed25519PublicKey.from_public_bytes(public).verify(signature, raw)
        except (binascii.Error, ValueError, InvalidSignature, UnicodeEncodeError):
            raise Unverified("bad_signature", "signature missing, malformed or not valid for its body") from None
        fp = fingerprint(public)
        if self.pinned is None and self.expected in (None, fp):
            self.pin(public)
        if self.pinned != public:
            raise Unverified("wrong_key", f"signed by key {fp}, not by the pinned orchestrator key "
                                          f"{self.fingerprint}")
        return raw

    def pin(self, public: bytes) -> None:
        """Accept ``public`` from now on, and keep it (0600) so a restart does not trust on first use again."""
        self.pinned = public
        if self.file is not None:
            _write_private(self.file, base64.b64encode(public) + b"\n")
        if self.on_pin is not None:
            self.on_pin(fingerprint(public))


class Publisher:
    """Publishes stored events to ``broker``/``topic`` in batches, in order, retrying what failed.

    :meth:`offer` is called by the engine for every batch it stores (never blocks); :meth:`run` is the body the
    engine supervises — it raises on a publish error, and the supervisor restarts it with back-off while the
    unsent events stay queued.
    """

    def __init__(self, pilotctl: Pilotctl, broker: str, topic: str, report: Report,
                 signer: Signer | None = None) -> None:
        self._pilotctl = pilotctl
        self.signer = signer or Signer.ephemeral()
        """Signs every publish; ``pilot-tui orchestrator`` sets the key kept in its state dir."""
        self.broker = broker
        self.topic = topic
        self._report = report
        self._queue: deque[ThreatEvent | SharedNote] = deque()
        self._wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, events: Iterable[ThreatEvent]) -> None:
        """Queue ``events`` for the broker (the oldest queued go first when the queue is full)."""
        self._add(events)

    def offer_triage(self, ids: Iterable[str], state: str, note: str | None, by: str) -> None:
        """Queue a triage change (after the events queued so far, which it may refer to)."""
        ids = list(ids)
        by = (by or "analyst")[:MAX_BY_CHARS]
        note = note[:MAX_NOTE_CHARS] if note else None
        self._add(TriageNote(tuple(ids[i:i + MAX_TRIAGE_IDS]), state, note, by)
                  for i in range(0, len(ids), MAX_TRIAGE_IDS))

    def offer_outcome(self, request_id: str, event_id: str, source_ip: str, status: str, detail: str) -> None:
        """Queue a mitigation outcome (after the events and state changes queued so far)."""
        self._add([OutcomeNote(request_id, event_id, source_ip, status, detail[:MAX_DETAIL_CHARS])])

    def _add(self, items: Iterable[ThreatEvent | SharedNote]) -> None:
        for item in items:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
        if self._queue:
            self._wake.set()

    def describe(self) -> str:
        text = f"publishing to {self.broker} topic {self.topic} signed by key {self.signer.fingerprint} · " \
               f"{self.sent:,} sent"
        if self._queue:
            text += f" · {len(self._queue):,} waiting"
        if self.dropped:
            text += f" · {self.dropped:,} dropped (broker unreachable too long)"
        return text

    async def run(self) -> None:
        self._report(kind="publish", state="running", detail=self.describe())
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = self._take()
            first = batch[0]
            payload = encode_batch(batch) if isinstance(first, ThreatEvent) else first.to_json()
            await self._pilotctl.publish(self.broker, self.topic, self.signer.wrap(payload).decode("utf-8"))
            for item in batch:  # only now: a failed publish leaves them queued for the restart
                if self._queue and self._queue[0] is item:  # (a full queue may have dropped some meanwhile)
                    self._queue.popleft()
            self.sent += len(batch)
            self._report(kind="publish", state="running", detail=self.describe())

    def _take(self) -> list[Any]:
        """What the next publish carries: one shared note alone, or the oldest queued events that fit in one
        publish (always at least one), stopping at a note so the order is kept."""
        if not isinstance(self._queue[0], ThreatEvent):
            return [self._queue[0]]
        batch: list[Any] = []
        size = 0
        for item in self._queue:
            if not isinstance(item, ThreatEvent):
                break
            # each line also carries "batch_size" (about 20 bytes), added by encode_batch
            cost = len(item.to_json()) + 24
            if batch and size + cost > MAX_PUBLISH_BYTES:
                break
            batch.append(item)
            size += cost
        return batch


async def follow(
    pilotctl: Pilotctl, broker: str, topic: str, ingest: Callable[[bytes], Any], report: Report
) -> None:
    """Subscribe to ``broker``/``topic`` and hand each published payload to ``ingest`` until the stream ends."""
    report(kind="subscribe", state="running", detail=f"following {broker} topic {topic}")
    async for message in pilotctl.subscribe(broker, topic):
        data = message.get("data")
        if isinstance(data, str) and data:
            ingest(data.encode("utf-8"))

