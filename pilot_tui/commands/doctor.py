"""``pilot-tui doctor``: is everything in place to move events? One line per check, pilotctl's hints included.

Checks: pilotctl found (path, version); daemon running and responsive (address, hostname); with ``--peer``, that the
peer resolves and that trust with it is mutual; pending handshakes waiting for approval; which port-1000 receiver
the orchestrator would get (SDK stream server or the degraded recv loop); the state dir is writable.
Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
from dataclasses import asdict, dataclass

import orjson

from pilot_tui import paths
from pilot_tui.pilot.binary import resolve_pilotctl
from pilot_tui.pilot.driver import Pilotctl
from pilot_tui.pilot.errors import PilotError


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
    if peer:
        try:
            found = await pilotctl.find(peer)
            node_id = found.get("node_id")
            trusted = {t.get("node_id"): t for t in await pilotctl.trust()}
            entry = trusted.get(node_id)
            if entry is None:
                checks.append(Check("trust", False, f"{peer} (node {node_id}) resolves but is not trusted",
                                    f"run: pilotctl handshake {peer}  (then approve it on {peer})"))
            elif entry.get("mutual") is False:
                checks.append(Check("trust", False, f"trust with {peer} is not mutual yet",
                                    f"approve this node on {peer}: pilotctl approve <node_id>"))
            else:
                checks.append(Check("trust", True, f"mutual trust with {peer} ({found.get('address')})"))
        except PilotError as exc:
            checks.append(Check("trust", False, f"{peer}: {exc.message}", exc.hint))
    try:
        pending = await pilotctl.pending()
        detail = "none" if not pending else ", ".join(f"node {p.get('node_id')}" for p in pending)
        checks.append(Check("pending", True, f"handshake requests waiting: {detail}", warn=bool(pending),
                            hint="approve in the orchestrator's trust panel or: pilotctl approve <node_id>"
                            if pending else ""))
    except PilotError as exc:
        checks.append(Check("pending", False, exc.message, exc.hint))
    return checks


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
    mode = oct(os.stat(directory).st_mode & 0o777)
    return Check("state dir", True, f"{directory} writable ({mode})")


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
