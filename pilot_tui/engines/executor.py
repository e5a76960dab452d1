"""The executor engine: takes mitigation requests from the Pilot inbox, applies them with a firewall backend, answers.

A request is judged in a fixed order — is the sender one we obey, is the message a valid ``pilot-tui.mitigate/1``,
was it answered before, is it still current (``issued_at`` + ``valid_s``), is the address one we may block, is the
duration in range — and only then does the backend run (``dry-run`` by default). Every outcome, refusals included,
goes back to the sender with ``send-message --reply-to <message_id>`` from a persisted outbox, so an orchestrator that
is briefly unreachable still learns what happened.

Idempotency: the answer to each request id is stored; the same request id again gets the same answer and nothing
runs twice. Answers that a retry might change are not stored: ``failed`` (the backend may work next time) and
``not_obeyed`` (the operator may add ``--obey``). A block for an address already blocked is ``already_applied`` and
extends the expiry when the new one is later.

Store vs firewall: a row on record proves only that *some* backend once applied the block — perhaps ``dry-run``, which
runs nothing. So each row records its backend, and the executor reconciles with the backend in use: at start it asks
the live firewall (nft set / iptables chain / ufw rules) what it blocks, re-adds rows of this backend that went missing
and marks the others (another backend's rows) as not applied; on a block request it asks again for that address.
``already_applied`` is answered only when the live firewall really has the address; otherwise the block is applied
for real and answered ``applied``. When the firewall cannot be asked, the store counts as unverified: re-apply, never
claim. ``dry-run`` has no live firewall: its own rows are the truth.

Whom we obey: an ``--obey`` hostname is resolved with ``pilotctl find`` once and **pinned** to that Pilot address (kept
in the state file), because any daemon can be restarted with ``--hostname`` of a node that is down. Later resolutions
never move the pin; one that differs is reported loudly (:class:`~.executor_updates.ObeyPinConflict`, a Notice, the
status line) and the new holder's requests are refused.

Staleness: the daemon keeps unread inbox messages across any state dir, so a fresh executor sees every old request
again. One whose ``issued_at`` + ``valid_s`` has passed (or that has no ``issued_at``) is refused as ``stale`` and
nothing runs.

Expiry: a background timer removes blocks whose time is up (on start too, for blocks that ended while the executor
was down) and tells the original requester with an unprompted ``expired`` result (replying to the request message).

A failing state file (disk full, read-only, corrupt): a request is answered only once its decision is on record, so
while the file refuses writes the request waits, unprocessed (never pruned from the inbox), and is retried; a decision
the firewall already carried out is kept in memory and recorded first, before anything else is decided, so it is
neither lost nor carried out twice. One line when the file starts failing, one when it takes writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from pilot_tui.aiotime import within

from ..pilot.driver import DaemonStatus, InboxMessage, SendAck
from ..pilot.errors import PilotError
from ..pilot.inbox import InboxWatcher, WatcherStatus
from ..pilot.names import ADDRESS_RE
from ..store.blocks import Block, BlockStore, Record, Reply
from ..store.db import StoreFault, rerun_on_fault, until_stored
from . import executor_updates as xu
from . import mitigation as mt
from .executor_policy import Refusal, check_duration, check_target, own_addresses, parse_allowlist, split_obey
from .executor_replies import ReplySender
from .fault_episode import FaultEpisode
from .firewall import Firewall, FirewallError
from .mitigation import MitigationError, MitigationRequest, MitigationResult
from .queries import ExecutorQuery
from .updates import Notice, Update, UpdateBus

log = logging.getLogger(__name__)

OPERATOR = "operator"
"""The ``sender`` recorded for what the operator at this executor's console did (not a Pilot address)."""


class ExecutorPilot(Protocol):
    """The driver calls the executor makes (:class:`~pilot_tui.pilot.driver.Pilotctl`; tests pass a fake)."""

    async def inbox_listing(self, *flags: str) -> tuple[str, list[InboxMessage]]: ...
    async def inbox_clear(self, *, before: float | None = None) -> int: ...
    async def send_message(self, target: str, data: bytes, *, msg_type: str = "json", reply_to: str | None = None,
                           wait: float | None = None) -> SendAck: ...
    async def daemon_status(self) -> DaemonStatus: ...
    async def info(self) -> dict[str, Any]: ...
    async def find(self, hostname: str) -> dict[str, Any]: ...


class ExecutorEngine:
    """Runs the executor until cancelled. Configuration errors raise :class:`ValueError` here, before anything runs.

    ``obey``: Pilot addresses or hostnames of the orchestrators allowed to command us (hostnames resolved with
    ``pilotctl find`` and pinned to the first address found — see the module docstring); empty means refuse
    everything. ``allowlist``: IPs and CIDRs never to block. ``clock`` (Unix seconds) is injectable for tests; ``own_ips`` adds addresses to refuse on
    top of those discovered (``discover_own_ips``).
    """

    def __init__(
        self,
        pilotctl: ExecutorPilot,
        state_db_path: Path | str,
        backend: str = "dry-run",
        obey: Iterable[str] = (),
        allowlist: Iterable[str] = (),
        max_duration_s: int = 7 * 86400,
        default_duration_s: int = 3600,
        *,
        firewall: Firewall | None = None,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        use_watchdog: bool = True,
        expiry_tick: float = 30.0,
        inbox_retention_s: float = 86400.0,
        reply_max_age_s: float = 86400.0,
        own_ips: Iterable[str] = (),
        discover_own_ips: bool = True,
    ) -> None:
        if not 1 <= default_duration_s <= max_duration_s:
            raise ValueError(f"default duration {default_duration_s}s must be within 1..{max_duration_s}s")
        self.pilotctl = pilotctl
        self.firewall = firewall or Firewall(backend)
        self._firewalls = {self.firewall.name: self.firewall}
        self.obey_addresses, self.obey_hostnames = split_obey(obey)
        self.allowlist = parse_allowlist(allowlist)
        self.max_duration_s = max_duration_s
        self.default_duration_s = default_duration_s
        self.store = BlockStore(state_db_path)
        self.query = ExecutorQuery(self.store)
        """What a view reads of the block store (read-only)."""
        self.bus = UpdateBus()
        self.replies = ReplySender(pilotctl, self.store, self.bus, clock=clock, max_age_s=reply_max_age_s)
        self.watcher = InboxWatcher(pilotctl, seen=self.store.is_processed, poll_interval=poll_interval,
                                    use_watchdog=use_watchdog, on_status=self._watcher_changed, clock=clock)
        self._clock = clock
        self._expiry_tick = expiry_tick
        self._inbox_retention_s = inbox_retention_s
        self._extra_own = frozenset(own_ips)
        self._discover = discover_own_ips
        self._own: frozenset[str] = self._extra_own
        pins = self.store.obey_pins()
        self._pins: dict[str, tuple[str, int | None]] = {h: pins[h] for h in self.obey_hostnames if h in pins}
        self._conflicts: dict[str, tuple[str, int | None]] = {}
        self._resolved_at = float("-inf")
        self._identity_at = float("-inf")
        self.address: str | None = None
        self.hostname = socket.gethostname()
        self._lock = asyncio.Lock()
        self._expiry_wake = asyncio.Event()
        self._expiry_retry: dict[str, float] = {}
        self._absent: set[str] = set()
        """Rows on record that reconciliation found not applied by the backend in use (re-applied on request)."""
        self._last_watch: tuple[Any, ...] = ()
        self._unsaved: list[Record] = []
        """Decisions carried out but not yet on record (the state file refused them): recorded before anything else."""
        self.store_episode = FaultEpisode(
            self._say, "state file failing: {fault}; requests wait unanswered until their decision is on record — "
            "retrying", "state file writable again after {seconds:.0f} s; requests handled")

    # -- subscription ----------------------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000) -> xu.Subscription:
        """``async for update in engine.subscribe(): …`` — bounded, registered at once (see ``Subscription``)."""
        return xu.Subscription(self.bus, maxsize)

    def add_listener(self, callback: Callable[[Update], None]) -> Callable[[], None]:
        """Call ``callback(update)`` for each update, synchronously (keep it quick); returns the unsubscribe."""
        return self.bus.subscribe(callback)

    def state(self) -> xu.ExecutorState:
        return xu.ExecutorState(
            at=self._clock(), address=self.address, hostname=self.hostname, backend=self.firewall.name,
            obey_addresses=tuple(sorted(self.obey_addresses | self._pinned_addresses())),
            obey_unresolved=tuple(sorted(self.obey_hostnames - set(self._pins))),
            active_blocks=len(self.store.active_blocks()), pending_replies=self.store.pending_replies(),
            inbox=self.watcher.status,
            obey_pins=tuple(sorted((h, a) for h, (a, _) in self._pins.items())),
            obey_conflicts=tuple(self._conflict_text(h) for h in sorted(self._conflicts)))

    def _watcher_changed(self, status: WatcherStatus) -> None:
        """Re-publish our state when the inbox watcher's state or error changes (not on every message)."""
        key = (status.state, status.last_error, status.inbox_dir)
        if key != self._last_watch:
            self._last_watch = key
            try:
                self.bus.emit(self.state())
            except StoreFault as fault:
                self._store_failed(fault)

    # -- a failing state file --------------------------------------------------------------------------------

    @property
    def store_fault(self) -> str | None:
        """Why the state file is failing (one line), or ``None`` while it works."""
        return self.store_episode.fault

    def _say(self, level: str, message: str) -> None:
        log.warning("executor: %s", message)
        self.bus.emit(Notice(self._clock(), level, message))

    def _store_failed(self, fault: StoreFault) -> None:
        """Say once per episode that the state file fails (a log line and a notice), not once per retry."""
        self.store_episode.failed(fault)

    def _store_ok(self) -> None:
        self.store_episode.ok()

    def _probe_store(self) -> None:
        self.store.check_writable()
        self._store_ok()

    def _save(self, rec: Record) -> None:
        """Put a decision on record; when the file refuses it, keep it to record before anything else is decided
        (the firewall already acted on it) and raise the :class:`StoreFault`."""
        self._unsaved.append(rec)
        self._flush_unsaved()

    def _flush_unsaved(self) -> None:
        """Record the decisions kept while the file failed, oldest first (raises :class:`StoreFault`)."""
        while self._unsaved:
            self.store.record(self._unsaved[0])
            self._unsaved.pop(0)
            self.replies.wake()

    async def _handle_until_saved(self, msg: InboxMessage) -> None:
        """Handle one inbox message until its outcome is on record, however long the state file fails."""
        await until_stored(functools.partial(self._handle_unless_done, msg), self._store_failed)
        self._store_ok()

    async def _handle_unless_done(self, msg: InboxMessage) -> None:
        async with self._lock:
            self._flush_unsaved()  # this message's own decision, when only its recording failed
        if not self.store.is_processed(msg.message_id):
            await self.handle(msg)

    async def _follow_inbox(self) -> None:
        async for msg in self.watcher.messages():
            try:
                await self._handle_until_saved(msg)
            except Exception:
                # A bug must not stop the executor; the message stays unprocessed and is looked at again on the
                # next start.
                log.exception("executor could not handle message %s", msg.message_id)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Learn who we are and whom we obey, remove blocks that expired while we were down and put the others
        back into the firewall (a reboot or a firewall reload empties it; restoring is idempotent)."""
        await self.refresh_identity()
        await self._resolve_obey()
        self.bus.emit(self.state())
        await self.expire_due()
        await self.reconcile()

    async def reconcile(self) -> int:
        """Bring the store in line with the firewall in use; returns how many rows were found not applied.

        Rows of this backend missing from the live firewall are restored (a reboot or a reload emptied it); rows
        another backend made (a ``dry-run`` row under ``--backend nft`` never reached the kernel) are marked not
        applied, so the next request for them applies the block for real instead of answering ``already_applied``.
        """
        live = await self._live_blocked()
        name = self.firewall.name
        self._absent.clear()
        missing = 0
        for block in self.store.active_blocks():
            if block.backend != name:
                self._absent.add(block.ip)
                missing += 1
                continue
            if live is not None and block.ip in live:
                continue
            if live is not None:
                missing += 1
            try:
                await self.firewall.restore(block.ip, max(1, int(block.expires_at - self._clock())))
            except FirewallError as exc:
                self._absent.add(block.ip)
                self.bus.emit(Notice(self._clock(), "error", f"could not restore the block of {block.ip}: {exc}"))
        if missing:
            others = len(self._absent)
            detail = (f"reconciled {missing} block(s) on record with the live {name} firewall: "
                      f"{missing - others} restored, {others} not applied by {name} (applied on the next request)")
            log.info("executor: %s", detail)
            self.bus.emit(Notice(self._clock(), "warning", detail))
        return missing

    async def _live_blocked(self) -> set[str] | None:
        """The addresses the firewall in use blocks now; ``None`` for dry-run (no live firewall) or when it cannot
        be read — then one clear line says so and the store counts as unverified (re-apply, never claim)."""
        if self.firewall.dry_run:
            return None
        try:
            return await self.firewall.list_blocked()
        except FirewallError as exc:
            detail = (f"cannot read the live {self.firewall.name} firewall ({exc}); blocks on record are unverified "
                      f"and are re-applied on request")
            log.warning("executor: %s", detail)
            self.bus.emit(Notice(self._clock(), "error", detail))
            return None

    async def _not_in_force(self, block: Block) -> str | None:
        """Why a block on record is not in force with the backend in use, or ``None`` when it is."""
        name = self.firewall.name
        if block.backend != name:
            return f"the block on record was applied by {block.backend}, not {name}"
        if block.ip in self._absent:
            return f"the block on record is not in the live {name} firewall"
        if self.firewall.dry_run:
            return None
        live = await self._live_blocked()
        if live is None:
            return f"the live {name} firewall could not be read"
        if block.ip not in live:
            return f"{block.ip} was missing from the live {name} firewall"
        return None

    async def process_pending(self) -> list[MitigationResult | None]:
        """Handle whatever the inbox holds now, once (no watching): tests, and a one-shot run."""
        return [await self.handle(msg) for msg in await self.watcher.poll_once()]

    async def run(self) -> None:
        """Serve until cancelled: :meth:`prepare`, then follow the inbox while the expiry and reply loops run."""
        await self.prepare()
        # each loop's work stays on record until done (due expiries, queued replies): a fault restarts it
        tasks = [asyncio.create_task(rerun_on_fault(loop, self._store_failed, self._probe_store),
                                     name=f"executor-{loop.__name__}")
                 for loop in (self._expiry_loop, self.replies.run, self._prune_loop)]
        try:
            # a fault in the "already processed?" lookup ends the watcher's listing: list again once it works
            await rerun_on_fault(self._follow_inbox, self._store_failed, self._probe_store)
        finally:
            await self.watcher.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop following the inbox and close the state file (after :meth:`run` has returned)."""
        await self.watcher.close()
        self.store.close()

    async def refresh_identity(self) -> None:
        """Learn our Pilot address/hostname (``daemon status``, ``info``) and this machine's IPs; never raises."""
        self._identity_at = self._clock()
        info: dict[str, Any] = {}
        with contextlib.suppress(PilotError):
            status = await self.pilotctl.daemon_status()
            self.address = (status.address or "").lower() or self.address
            self.hostname = status.hostname or self.hostname
        with contextlib.suppress(PilotError):
            info = await self.pilotctl.info()
        if self._discover:
            self._own = self._extra_own | await asyncio.to_thread(own_addresses, info)

    def _pinned_addresses(self) -> set[str]:
        return {address for address, _ in self._pins.values()}

    def _conflict_text(self, hostname: str) -> str:
        pinned, pinned_node = self._pins[hostname]
        now, now_node = self._conflicts[hostname]
        return (f"--obey {hostname} now resolves to {now} (node {now_node}), not to the pinned {pinned} "
                f"(node {pinned_node}): its requests are refused; to obey the new node, restart with --obey {now}")

    async def _resolve_obey(self) -> None:
        """Resolve the ``--obey`` hostnames: pin the ones seen for the first time, report any pinned one that now
        resolves elsewhere (never re-pinned: whoever holds a hostname is not necessarily who we agreed to obey)."""
        self._resolved_at = self._clock()
        changed = False
        for name in sorted(self.obey_hostnames):
            try:
                found = await self.pilotctl.find(name)
            except PilotError:
                continue
            address = str(found.get("address") or "").lower()
            if not ADDRESS_RE.match(address):
                continue
            node = found.get("node_id")
            node_id = node if isinstance(node, int) and not isinstance(node, bool) else None
            if name not in self._pins:
                self.store.pin_obey(name, address, node_id, self._clock())
                self._pins[name] = (address, node_id)
                self.bus.emit(Notice(self._clock(), "info", f"--obey {name} pinned to {address} (node {node_id})"))
                changed = True
            elif self._pins[name][0] != address:
                if self._conflicts.get(name, ("",))[0] != address:
                    self._conflicts[name] = (address, node_id)
                    detail = self._conflict_text(name)
                    pinned, pinned_node = self._pins[name]
                    log.warning("executor: %s", detail)
                    self.bus.emit(xu.ObeyPinConflict(self._clock(), name, pinned, pinned_node, address, node_id,
                                                     detail))
                    self.bus.emit(Notice(self._clock(), "error", detail))
                    changed = True
            elif self._conflicts.pop(name, None) is not None:
                self.bus.emit(Notice(self._clock(), "info", f"--obey {name} resolves to its pinned {address} again"))
                changed = True
        if changed:
            self.bus.emit(self.state())

    async def _obeys(self, sender: str) -> bool:
        """Only a pinned address counts; an unknown sender triggers a (rate-limited) re-resolution, which pins a
        hostname seen for the first time and reports a hostname now held by another node."""
        if sender in self.obey_addresses or sender in self._pinned_addresses():
            return True
        if self.obey_hostnames and self._clock() - self._resolved_at >= 30.0:
            await self._resolve_obey()
            return sender in self._pinned_addresses()
        return False

    def _not_obeyed(self, sender: str) -> Refusal:
        """The refusal for a sender we do not obey, naming a hostname takeover when that is what happened."""
        for name, (address, node_id) in sorted(self._conflicts.items()):
            if address == sender:
                pinned, pinned_node = self._pins[name]
                return Refusal("not_obeyed", f"sender {sender} (node {node_id}) now holds the hostname {name}, but "
                               f"this executor obeys {name} only as {pinned} (node {pinned_node}), pinned when first "
                               f"resolved")
        if self.obey_addresses or self.obey_hostnames:
            return Refusal("not_obeyed", f"sender {sender} is not in this executor's --obey list")
        return Refusal("not_obeyed", "this executor obeys no orchestrator yet: start it with --obey <orchestrator "
                       "hostname or address>")

    # -- one message -----------------------------------------------------------------------------------------

    async def handle(self, msg: InboxMessage) -> MitigationResult | None:
        """Judge one inbox message, act, record, queue the reply; returns the result (``None``: ignored)."""
        now = self._clock()
        sender = msg.sender.lower()
        if self.address is None and now - self._identity_at > 30.0:
            await self.refresh_identity()
        if sender == self.address or mt.message_kind(msg.data) == "result" or not ADDRESS_RE.match(sender):
            self.store.mark_processed(msg.message_id, now)  # ours, a result (never answer one), or unanswerable
            return None
        try:
            req: MitigationRequest | None = mt.parse_request(msg.data)
            err: MitigationError | None = None
        except MitigationError as exc:
            req, err = None, exc
        rid = req.request_id if req else err.request_id if err else None
        ip = req.ip if req else err.ip if err else None
        action = req.action if req else err.action if err else None
        self.bus.emit(xu.RequestReceived(now, msg.message_id, sender, rid, action, ip))
        async with self._lock:
            self._flush_unsaved()  # decide nothing on a record that misses a decision already carried out
            if not await self._obeys(sender):
                return self._refuse(msg, rid, action, ip, self._not_obeyed(sender), cache=False)
            if req is None:
                assert err is not None
                return self._refuse(msg, rid, action, ip, Refusal(err.reason, err.detail), cache=rid is not None)
            cached = self.store.answer(req.request_id)
            if cached is not None and cached[0] == sender:
                result = mt.parse_result(cached[1])
                self.bus.emit(xu.DuplicateRequest(now, req.request_id, sender, result.status))
                self._record(msg, req.request_id, req.action, req.ip, result, kind="duplicate")
                return result
            if cached is not None:
                return self._refuse(msg, rid, action, ip, Refusal(
                    "duplicate_id", "request_id already used by another sender"), cache=False)
            stale = mt.staleness(req, now)
            if stale is not None:
                # cached: the same old message read again (say, on the next fresh state dir) is refused the same way
                return self._refuse(msg, rid, action, ip, Refusal("stale", stale), cache=True)
            if req.action == "block":
                return await self._block(msg, req, now)
            return await self._unblock(msg, req)

    def _result(self, rid: str | None, action: str | None, ip: str | None, status: mt.Status, detail: str,
                expires_at: float | None = None) -> MitigationResult:
        return MitigationResult(
            request_id=rid or "", ip=ip or "", action=action or "", status=status,
            backend=self.firewall.name, detail=detail, expires_at=mt.utc_iso(expires_at) if expires_at else None,
            executor=self.hostname)

    def _record(self, msg: InboxMessage, rid: str | None, action: str | None, ip: str | None,
                result: MitigationResult, *, kind: str = "request", cache: bool = False,
                argv: list[list[str]] | None = None, put_block: Block | None = None,
                drop_block: str | None = None) -> MitigationResult:
        """Write the decision, the processed mark and the reply in one transaction, then wake the reply sender."""
        self._save(Record(
            at=self._clock(), kind=kind, status=result.status, request_id=rid, sender=msg.sender.lower(),
            message_id=msg.message_id, action=action, ip=ip, detail=result.detail,
            argv=tuple(tuple(a) for a in argv or ()), answer=result.encode() if cache and rid else None,
            put_block=put_block, drop_block=drop_block, processed=msg.message_id,
            reply=Reply(msg.sender, msg.message_id, result.encode())))
        self.replies.wake()
        return result

    def _refuse(self, msg: InboxMessage, rid: str | None, action: str | None, ip: str | None, refusal: Refusal,
                *, cache: bool) -> MitigationResult:
        self.bus.emit(xu.RequestRefused(self._clock(), msg.message_id, msg.sender.lower(), rid, ip, refusal.reason,
                                        refusal.detail))
        result = self._result(rid, action, ip, "refused", f"{refusal.reason}: {refusal.detail}")
        return self._record(msg, rid, action, ip, result, cache=cache)

    def _fail(self, msg: InboxMessage, req: MitigationRequest, exc: FirewallError) -> MitigationResult:
        self.bus.emit(xu.ActionFailed(self._clock(), req.request_id, msg.sender.lower(), req.action, req.ip,
                                      self.firewall.name, str(exc), (tuple(exc.argv),) if exc.argv else ()))
        result = self._result(req.request_id, req.action, req.ip, "failed", str(exc))
        return self._record(msg, req.request_id, req.action, req.ip, result, argv=[exc.argv] if exc.argv else None)

    def _applied(self, msg: InboxMessage, req: MitigationRequest, status: mt.Status, detail: str, argv: list[list[str]],
                 expires_at: float | None, **changes: Any) -> MitigationResult:
        result = self._result(req.request_id, req.action, req.ip, status, detail, expires_at)
        self.bus.emit(xu.ActionApplied(self._clock(), req.request_id, msg.sender.lower(), req.action, req.ip, status,
                                       self.firewall.name, detail, result.expires_at, tuple(map(tuple, argv))))
        return self._record(msg, req.request_id, req.action, req.ip, result, cache=True, argv=argv, **changes)

    async def _block(self, msg: InboxMessage, req: MitigationRequest, now: float) -> MitigationResult:
        duration = req.duration_s or self.default_duration_s
        refusal = check_target(req.ip, self.allowlist, self._own) or check_duration(duration, self.max_duration_s)
        if refusal is not None:
            return self._refuse(msg, req.request_id, req.action, req.ip, refusal, cache=True)
        dry = " (dry-run: nothing was run)" if self.firewall.dry_run else ""
        existing = self.store.get_block(req.ip)
        expires = now + duration
        why = await self._not_in_force(existing) if existing is not None else None
        try:
            if existing is None:
                argv = await self.firewall.block(req.ip, duration)
            elif why is not None:
                argv = await self.firewall.restore(req.ip, duration)  # restore: never a duplicate iptables rule
            elif expires > existing.expires_at + 1:
                argv = await self.firewall.extend(req.ip, duration)
            else:
                # the status already says "already blocked" (UI: "already blocked — <detail>"): do not repeat it
                return self._applied(msg, req, "already_applied", f"expiry unchanged: blocked until "
                                     f"{mt.utc_iso(existing.expires_at)}", [], existing.expires_at)
        except FirewallError as exc:
            return self._fail(msg, req, exc)
        self._expiry_wake.set()
        if existing is not None and why is None:
            return self._applied(msg, req, "already_applied", f"expiry extended to {mt.utc_iso(expires)}{dry}", argv,
                                 expires, put_block=replace(existing, expires_at=expires))
        self._absent.discard(req.ip)
        block = Block(req.ip, self.firewall.name, req.request_id, msg.sender.lower(), msg.message_id, now, expires,
                      req.reason, req.event_id)
        again = f" (re-applied: {why})" if why else ""
        return self._applied(msg, req, "applied", f"blocked for {duration}s{again}{dry}", argv, expires,
                             put_block=block)

    async def _unblock(self, msg: InboxMessage, req: MitigationRequest) -> MitigationResult:
        existing = self.store.get_block(req.ip)
        if existing is None:
            return self._applied(msg, req, "already_applied", "not blocked by this executor", [], None)
        try:
            argv = await self._firewall_for(existing.backend).unblock(req.ip)
        except FirewallError as exc:
            return self._fail(msg, req, exc)
        self._expiry_retry.pop(req.ip, None)
        self._absent.discard(req.ip)
        return self._applied(msg, req, "applied", "unblocked", argv, None, drop_block=req.ip)

    def _firewall_for(self, name: str) -> Firewall:
        """The backend a block was made with (it may differ from today's ``--backend``), created on demand."""
        if name not in self._firewalls:
            self._firewalls[name] = Firewall(name)
        return self._firewalls[name]

    # -- the operator at this executor's console ----------------------------------------------------------------

    def block_state(self, block: Block) -> str:
        """How a block on record stands now, in the words the blocks view shows: ``in force`` (on record only under
        dry-run, whose rows are the truth), ``not applied`` (another backend made it, or reconciliation found it
        missing from the live firewall) or ``removal failed`` (its expiry could not remove it; retried)."""
        if block.ip in self._expiry_retry:
            return "removal failed"
        if block.backend != self.firewall.name or block.ip in self._absent:
            return "not applied"
        return "in force"

    def peer_names(self) -> dict[str, str]:
        """Pilot address → ``--obey`` hostname pinned to it: the names of the only nodes whose requests we carry
        out, so the views can say who asked by name (an ``--obey`` given as an address has none)."""
        return {address: hostname for hostname, (address, _) in self._pins.items()}

    async def lift_block(self, ip: str) -> MitigationResult:
        """Remove a block now, at the request of the operator at this executor's console (trusted: they could run
        the firewall command themselves). Same firewall and store path as an ``unblock`` request; the node that
        asked for the block is told with the unprompted ``expired`` answer it already expects, its detail saying
        the operator lifted it early. Raises :class:`ValueError` (one line) when ``ip`` is not blocked here, and
        :class:`StoreFault` when the state file fails (the firewall has acted; the record follows once it works)."""
        async with self._lock:
            self._flush_unsaved()  # decisions still waiting for the state file go first (raises StoreFault)
            block = self.store.get_block(ip)
            if block is None:
                raise ValueError(f"{ip} is not blocked by this executor")
            now = self._clock()
            try:
                argv = await self._firewall_for(block.backend).unblock(ip)
            except FirewallError as exc:
                self.bus.emit(xu.ActionFailed(now, block.request_id, OPERATOR, "unblock", ip, block.backend,
                                              str(exc), (tuple(exc.argv),) if exc.argv else ()))
                return self._operator_result(block, "unblock", "failed", str(exc), None)
            self._expiry_retry.pop(ip, None)
            self._absent.discard(ip)
            detail = f"lifted early by the operator of {self.hostname} at {mt.utc_iso(now)}; removed"
            told = MitigationResult(block.request_id, ip, "block", "expired", block.backend, detail, mt.utc_iso(now),
                                    self.hostname)
            self._expiry_wake.set()
            self._save_operator(Record(
                at=now, kind="operator", status="applied", request_id=block.request_id, sender=OPERATOR,
                message_id=block.message_id, action="unblock", ip=ip, detail=detail, argv=tuple(map(tuple, argv)),
                drop_block=ip, reply=Reply(block.sender, block.message_id, told.encode())))
            result = self._operator_result(block, "unblock", "applied", detail, None, argv)
        self.bus.emit(self.state())
        return result

    async def extend_block(self, ip: str, duration_s: int) -> MitigationResult:
        """Keep a block ``duration_s`` more seconds past its current expiry (operator at this console; capped at
        ``max_duration_s`` from now). Only a block in force with the backend in use can be extended; the requester
        is not told (it learns the end from the ``expired`` answer when it comes). Raises :class:`ValueError`."""
        async with self._lock:
            self._flush_unsaved()
            block = self.store.get_block(ip)
            if block is None:
                raise ValueError(f"{ip} is not blocked by this executor")
            why = await self._not_in_force(block)
            if why is not None:
                raise ValueError(f"cannot extend the block of {ip}: {why}")
            now = self._clock()
            expires = block.expires_at + duration_s
            if duration_s <= 0:
                raise ValueError(f"{duration_s}s is not a positive duration")
            if expires - now > self.max_duration_s:
                raise ValueError(f"the block of {ip} would then last {int(expires - now)}s from now, more than the "
                                 f"executor's maximum of {self.max_duration_s}s")
            try:
                argv = await self.firewall.extend(ip, max(1, int(expires - now)))
            except FirewallError as exc:
                self.bus.emit(xu.ActionFailed(now, block.request_id, OPERATOR, "extend", ip, block.backend,
                                              str(exc), (tuple(exc.argv),) if exc.argv else ()))
                return self._operator_result(block, "extend", "failed", str(exc), None)
            dry = " (dry-run: nothing was run)" if self.firewall.dry_run else ""
            detail = f"expiry extended to {mt.utc_iso(expires)} by the operator{dry}"
            self._expiry_wake.set()
            self._save_operator(Record(
                at=now, kind="operator", status="applied", request_id=block.request_id, sender=OPERATOR,
                message_id=block.message_id, action="extend", ip=ip, detail=detail, argv=tuple(map(tuple, argv)),
                put_block=replace(block, expires_at=expires)))
            return self._operator_result(block, "extend", "applied", detail, expires, argv)

    def _save_operator(self, rec: Record) -> None:
        """Record what the operator did (the firewall already has): when the state file refuses it, it is kept to
        record first (as a request's decision is) and the :class:`StoreFault` goes to the caller, who says so."""
        try:
            self._save(rec)
        except StoreFault as fault:
            self._store_failed(fault)
            raise

    def _operator_result(self, block: Block, action: str, status: mt.Status, detail: str, expires_at: float | None,
                         argv: list[list[str]] | None = None) -> MitigationResult:
        """The result of an operator action, also emitted as the usual typed update (``sender`` = operator)."""
        result = MitigationResult(block.request_id, block.ip, "unblock" if action == "unblock" else "block",
                                  status, block.backend, detail,
                                  mt.utc_iso(expires_at) if expires_at else None, self.hostname)
        if status != "failed":
            self.bus.emit(xu.ActionApplied(self._clock(), block.request_id, OPERATOR, action, block.ip, status,
                                           block.backend, detail, result.expires_at, tuple(map(tuple, argv or ()))))
        return result

    # -- expiry ----------------------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Remove every block whose time is up; returns how many went. A failed removal is retried after 30 s."""
        removed = 0
        async with self._lock:
            self._flush_unsaved()
            now = self._clock()
            due = self.store.due_blocks(now)
            # a retry for a block no longer due (lifted or extended by `executor --unblock/--extend` from another
            # process) is dropped, or its past retry time would wake the expiry loop 20 times a second
            for ip in self._expiry_retry.keys() - {block.ip for block in due}:
                del self._expiry_retry[ip]
            for block in due:
                if self._expiry_retry.get(block.ip, 0.0) > now:
                    continue
                try:
                    argv = await self._firewall_for(block.backend).unblock(block.ip)
                except FirewallError as exc:
                    self._expiry_retry[block.ip] = now + 30.0
                    self.bus.emit(xu.BlockExpired(now, block.ip, block.request_id, block.backend, False, str(exc)))
                    continue
                self._expiry_retry.pop(block.ip, None)
                self._absent.discard(block.ip)
                detail = f"block of {block.ip} ended at {mt.utc_iso(block.expires_at)}; removed"
                result = MitigationResult(block.request_id, block.ip, "block", "expired", block.backend, detail,
                                          mt.utc_iso(block.expires_at), self.hostname)
                self._save(Record(
                    at=now, kind="expired", status="expired", request_id=block.request_id, sender=block.sender,
                    message_id=block.message_id, action="unblock", ip=block.ip, detail=detail,
                    argv=tuple(map(tuple, argv)), drop_block=block.ip,
                    reply=Reply(block.sender, block.message_id, result.encode())))
                self.bus.emit(xu.BlockExpired(now, block.ip, block.request_id, block.backend, True, detail,
                                              tuple(map(tuple, argv))))
                removed += 1
        if removed:
            self.replies.wake()
        return removed

    async def _expiry_loop(self) -> None:
        while True:
            # a block whose removal failed waits for its retry time, not its (past) expiry: no busy loop
            due = [self.store.next_expiry(exclude=self._expiry_retry) or float("inf"), *self._expiry_retry.values()]
            delay = min(max(min(due) - self._clock(), 0.05), self._expiry_tick)
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._expiry_wake.wait(), delay)
            self._expiry_wake.clear()
            await self.expire_due()

    # -- housekeeping ----------------------------------------------------------------------------------------

    async def flush_replies(self) -> int:
        """Send the replies that are due now (see :class:`ReplySender`); returns how many went."""
        return await self.replies.flush()

    async def _prune_loop(self, every: float = 600.0) -> None:
        """Keep the inbox and the state file bounded (messages are deleted only once processed)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.watcher.prune(self._inbox_retention_s)
            except PilotError as exc:
                log.info("inbox prune failed: %s", exc.one_line())
                continue
            self.store.prune(self._clock() - max(self._inbox_retention_s, 7 * 86400.0),
                             keep=self.watcher.inbox_ids)
