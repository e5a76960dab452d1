"""``pilot-tui doctor``: is everything in place to move events? One line per check, pilotctl's hints included.

Checks: pilotctl found (path, version); daemon running and responsive (address, hostname); with ``--peer``, that the
peer resolves, what our trust list says about it, and whether it answers a bounded ``pilotctl ping`` right now;
pending handshakes waiting for approval; which port-1000 receiver the orchestrator would get (SDK stream server or
the degraded recv loop); the state dir is writable. Exit status 1 when any check failed.

The same checks speak when an oracle starts (:func:`announce_start`): its watched files, its journal and its peer.

Trust is judged the way pilotctl 1.18 allows traffic, not by the ``mutual`` flag: after ``approve`` the approving
node's trust entry stays ``mutual: false`` (only the requester's says true) and a reverse handshake changes nothing,
yet traffic flows both ways. So a peer in our trust list — on either side of the approve — is trusted, and the probe
says whether it is reachable now. Hints name the exact command and the node to run it on.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from pilot_tui import paths
from pilot_tui.pilot.binary import resolve_pilotctl
from pilot_tui.pilot.driver import DaemonStatus, Pilotctl, PingResult
from pilot_tui.pilot.errors import PilotError, Timeout, TrustRequired

PROBE_TIMEOUT_S = 3.0
"""``pilotctl ping --count 1 --timeout`` for the reachability probe."""

PROBE_BOUND_S = 5.0
"""The probe process is killed after this long: pilotctl lets one dial run 10 s whatever ``--timeout`` says."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    warn: bool = False


async def _pilot_checks(pilotctl: Pilotctl, peer: str | None) -> list[Check]:
    checks: list[Check] = []
    try:
        version = await pilotctl.version()
        checks.append(Check("pilotctl", True, f"{pilotctl.binary} ({version})"))
    except PilotError as exc:
        return [Check("pilotctl", False, f"{pilotctl.binary}: {exc.message}", exc.hint)]
    status = await pilotctl.daemon_status()
    if not status.running or not status.responsive:
        state = "not running" if not status.running else "running but not responsive"
        checks.append(Check("daemon", False, f"daemon {state} (socket {status.socket or pilotctl.socket_path()})",
                            "start it with: pilotctl daemon start"))
        return checks
    checks.append(Check("daemon", True, f"running as {status.hostname or '?'} at {status.address or '?'}"))
    pending: list[dict[str, Any]] | PilotError
    try:
        pending = await pilotctl.pending()
    except PilotError as exc:
        pending = exc
    if peer:
        checks += await _peer_checks(pilotctl, peer, status, pending if isinstance(pending, list) else [])
    if isinstance(pending, PilotError):
        checks.append(Check("pending", False, pending.message, pending.hint))
    else:
        detail = "none" if not pending else ", ".join(f"node {p.get('node_id')}" for p in pending)
        checks.append(Check("pending", True, f"handshake requests waiting: {detail}", warn=bool(pending),
                            hint="approve in the orchestrator's trust panel or: pilotctl approve <node_id>"
                            if pending else ""))
    return checks


async def _peer_checks(
    pilotctl: Pilotctl, peer: str, status: DaemonStatus, pending: list[dict[str, Any]]
) -> list[Check]:
    """``trust`` (our trust list, either side of the approve) and ``ping`` (a bounded probe) for ``--peer``."""
    try:
        found = await pilotctl.find(peer)
        node_id = found.get("node_id")
        entry = {t.get("node_id"): t for t in await pilotctl.trust()}.get(node_id)
    except PilotError as exc:
        return [Check("trust", False, f"{peer}: {exc.message}", exc.hint)]
    address = found.get("address") or f"node {node_id}"
    public = bool(found.get("public"))
    probe: PingResult | PilotError
    try:
        # a diagnosis must not change trust: to an untrusted public peer pilotctl's ping would send a handshake
        probe = await pilotctl.ping(peer, count=1, timeout=PROBE_TIMEOUT_S, bound=PROBE_BOUND_S,
                                    auto_handshake=not (entry is None and public))
    except PilotError as exc:
        probe = exc
    answered = isinstance(probe, PingResult) and probe.answered > 0
    checks = [_trust_check(peer, node_id, address, entry, answered, public, status, pending)]
    if entry is None and isinstance(probe, TrustRequired):
        return checks  # the trust line already says it: pilotctl will not open a tunnel without trust
    checks.append(_ping_check(peer, probe))
    return checks


def _trust_check(
    peer: str, node_id: Any, address: str, entry: dict[str, Any] | None, answered: bool, public: bool,
    status: DaemonStatus, pending: list[dict[str, Any]],
) -> Check:
    """What our trust list says about the peer. ``mutual: false`` is the approving side, which is trusted."""
    if entry is not None and entry.get("mutual") is False:
        return Check("trust", True, f"trust approved by us ({peer} at {address}): pilotctl 1.18 shows mutual:false "
                     "on the approving side — that is normal, traffic flows both ways")
    if entry is not None:
        return Check("trust", True, f"mutual trust with {peer} ({address})")
    if public:
        return Check("trust", True, f"{peer} ({address}) is a public node: it takes streams without trust")
    if answered:
        return Check("trust", True, f"{peer} ({address}) answers although it is not in our trust list", warn=True,
                     hint=f"to keep it working if that changes, run here: pilotctl handshake {peer}")
    if any(p.get("node_id") == node_id for p in pending):
        return Check("trust", False, f"{peer} (node {node_id}) asked to be trusted and waits for this node",
                     f"approve it here: pilotctl approve {node_id}  (or in the orchestrator's trust panel)")
    me = status.node_id if status.node_id is not None else "<this node's id: pilotctl info>"
    return Check("trust", False, f"{peer} (node {node_id}) resolves but neither side has approved a handshake",
                 f'run here: pilotctl handshake {peer} "pilot-tui"; then on {peer}: pilotctl approve {me}  '
                 f"(on {peer}, pilotctl pending shows the request)")


def _ping_check(peer: str, probe: PingResult | PilotError) -> Check:
    """The probe's verdict, with a hint that says where to look when the peer does not answer."""
    down_hint = (f"on {peer}: pilotctl daemon status  (start it with: pilotctl daemon start); a daemon that just "
                 "restarted can take ~10 s to answer again")
    if isinstance(probe, Timeout):
        return Check("ping", False, f"{peer} did not answer within {PROBE_BOUND_S:g}s (probe stopped)", down_hint)
    if isinstance(probe, PilotError):
        return Check("ping", False, f"{peer}: {probe.message}", probe.hint or down_hint)
    if probe.answered:
        rtt = f"{probe.rtt_ms:.1f} ms" if probe.rtt_ms is not None else "?"
        return Check("ping", True, f"{peer} is reachable ({probe.target}): echo answered in {rtt}")
    why = probe.errors[0] if probe.errors else "no answer"
    return Check("ping", False, f"{peer} ({probe.target}) does not answer: {why}", down_hint)


def _receiver_check(pilotctl: Pilotctl) -> Check:
    if pilotctl.is_sim:
        return Check("receiver", True, "pilot-sim: emulated stream server (replies with stored ids)")
    if importlib.util.find_spec("pilotprotocol") is not None:
        return Check("receiver", True, "pilotprotocol SDK present: port 1000 server replies (connect ~14 ms)")
    return Check("receiver", True, "no pilotprotocol SDK: orchestrator falls back to a pilotctl recv loop "
                 "(cannot reply; each connect waits ~1 s)", "pip install 'pilot-tui[pilot]'", warn=True)


def _state_check(state_dir: str | None) -> Check:
    try:
        directory = paths.state_dir(state_dir)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("state dir", False, f"{state_dir or 'default state dir'}: {exc.strerror or exc}",
                     "pass --state-dir DIR with a writable directory")
    except paths.StateError as exc:
        return Check("state dir", False, str(exc), "pass --state-dir DIR with a private (0700) directory")
    mode = oct(os.stat(directory).st_mode & 0o777)
    return Check("state dir", True, f"{directory} writable ({mode})")


# -- what an oracle says about itself at start -----------------------------------------------------------------

JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
"""Where systemd-journald keeps its files (persistent, volatile)."""


def watched_files(logs: Sequence[str]) -> list[tuple[str, str]]:
    """(path, state) of each ``--log``: ``found``, ``missing`` (tailing waits for it), ``unreadable``; a glob is
    listed by what it matches now (``no match yet`` when nothing does)."""
    out: list[tuple[str, str]] = []
    for log in logs:
        path = os.path.expanduser(log)
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches:
            out.append((log, "no match yet"))
        for match in matches:
            if not os.path.exists(match):
                out.append((match, "missing, waiting for it"))
            elif not os.access(match, os.R_OK):
                out.append((match, "unreadable: permission denied (a user in group adm can read it)"))
            else:
                out.append((match, "found"))
    return out


def journal_problem(journalctl: str = "journalctl", dirs: Sequence[str] = JOURNAL_DIRS) -> str | None:
    """Why ``--journal`` would read nothing on this host (journalctl missing, no journal files, or files this
    user may not read), or ``None`` when a journal is there to follow. journalctl itself just waits silently."""
    if shutil.which(journalctl) is None:
        return f"{journalctl} not found: this host has no systemd journal to follow (drop --journal, use --log)"
    present = [Path(d) for d in dirs if Path(d).is_dir()]
    if not present:
        return (f"no systemd journal on this host ({' and '.join(dirs)} do not exist: journald is not running or "
                "keeps no files): --journal will read nothing; drop it or use --log")
    for directory in present:
        try:
            if any(directory.glob("*/*.journal*")) or any(directory.glob("*.journal*")):
                return None
        except OSError:
            pass
        if not os.access(directory, os.R_OK | os.X_OK) or any(
                sub.is_dir() and not os.access(sub, os.R_OK | os.X_OK) for sub in _subdirs(directory)):
            return (f"cannot read the journal in {directory}: run as a user in group systemd-journal (or adm), "
                    "or as root")
    return f"no journal files under {' or '.join(map(str, present))}: --journal will read nothing until there are"


def _subdirs(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


PEER_STATE_OF_CHECK = {"daemon": "daemon-down", "trust": "no-trust", "ping": "unreachable", "pilotctl": "daemon-down"}
"""The oracle's peer state for the first failed check (see :class:`~pilot_tui.engines.updates.PeerState`)."""


async def announce_start(engine: Any, logs: Sequence[str], journal_units: Sequence[str] | None) -> None:
    """What a starting oracle tells at once, as notices (headless: JSON lines; UI: notifications): the files it
    watches and their state, whether a journal is there to follow, then its peer — the daemon first (instant), then
    trust and a bounded probe — so neither the log nor the status line stays silent or ``unknown`` while it waits."""
    from pilot_tui.engines.updates import Notice

    def tell(level: str, message: str) -> None:
        engine.bus.emit(Notice(at=time.time(), level=level, message=message))

    files = watched_files(logs)
    if files:
        tell("info" if all(state == "found" for _, state in files) else "warning",
             "watching " + "; ".join(f"{path} ({state})" for path, state in files))
    if journal_units is not None:
        problem = journal_problem()
        units = ", ".join(journal_units) or "all units"
        tell("warning" if problem else "info", f"journal ({units}): {problem or 'following'}")
    sender, peer = engine.sender, engine.config.peer
    try:
        status = await engine.pilotctl.daemon_status()
    except PilotError as exc:
        sender.note_peer_state("daemon-down", exc.one_line())
        tell("error", f"peer {peer}: {exc.one_line()}")
        return
    if not status.running or not status.responsive:
        detail = f"this node's daemon is {'not running' if not status.running else 'not responsive'}"
        sender.note_peer_state("daemon-down", detail)
        tell("error", f"peer {peer}: {detail}; events wait in the outbox (start it with: pilotctl daemon start)")
        return
    sender.note_peer_state("checking", f"checking trust with {peer} and probing it")
    try:
        checks = await _peer_checks(engine.pilotctl, peer, status, [])
    except PilotError as exc:
        checks = [Check("ping", False, exc.message, exc.hint)]
    failed = [c for c in checks if not c.ok]
    text = "; ".join(c.detail + (f" (hint: {c.hint})" if c.hint and (not c.ok or c.warn) else "") for c in checks)
    sender.note_peer_state(PEER_STATE_OF_CHECK.get(failed[0].name, "unreachable") if failed else "reachable", text)
    tell("error" if failed else "info", f"peer {peer}: {text}")


def run(args: argparse.Namespace) -> int:
    checks: list[Check] = []
    try:
        pilotctl = Pilotctl(resolve_pilotctl(args.pilotctl))
        checks += asyncio.run(_pilot_checks(pilotctl, args.peer))
        checks.append(_receiver_check(pilotctl))
    except PilotError as exc:
        checks.append(Check("pilotctl", False, exc.message, exc.hint))
    checks.append(_state_check(args.state_dir))
    ok = all(c.ok for c in checks)
    if args.json:
        print(orjson.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}).decode())
    else:
        for c in checks:
            mark = "FAIL" if not c.ok else ("warn" if c.warn else "ok")
            print(f"{mark:4}  {c.name:9}  {c.detail}")
            if c.hint and (not c.ok or c.warn):
                print(f"{'':4}  {'':9}  hint: {c.hint}")
    sys.stdout.flush()
    return 0 if ok else 1
