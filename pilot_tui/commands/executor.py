"""``pilot-tui executor``: apply blocks an orchestrator asks for over Pilot; UI or headless JSON lines.

``--list``, ``--unblock IP`` and ``--extend IP DURATION`` act once on the state dir and exit (what
``cscli decisions list/delete`` and ``fail2ban-client status/unban`` do), so a headless executor's blocks can be seen
and lifted without its UI. They go through the engine's own operator methods, so a lift or an extension is the same
firewall command and the same one-transaction record as the ``u``/``e`` keys of the blocks view.

Beside a running executor on the same state dir this is safe: SQLite (WAL, ``BEGIN IMMEDIATE``) serialises the two
writers, and the running one reads the blocks table afresh on every expiry pass (at least every 30 s, and at each
block's expiry), so a lifted block is simply no longer there to expire and an extended one is not due at its old
time. The ``expired`` answer a lift owes the node that asked for the block is queued in the state file; the running
executor's reply loop sends it within 30 s (with no executor running, the next one to start sends it).
"""


from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import time
from typing import Any

import orjson

from pilot_tui import paths
from pilot_tui.engines.executor import ExecutorEngine
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.db import StoreFault

from .common import fail, json_line_printer, make_pilotctl, run_until_signal

DEFAULT_BLOCK_DURATION_S = 3600


def block_duration_s(value: object) -> int:
    """Seconds from ``--block-duration`` (already parsed) or the config's ``block_duration`` ("10m" or a number).

    The config file is read raw, so a string there goes through the same parser as the flag. Raises ValueError.
    """
    if value is None:
        return DEFAULT_BLOCK_DURATION_S
    if isinstance(value, str):
        from pilot_tui.cli import duration

        try:
            value = duration(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"block_duration: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ValueError(f"block duration {value!r} must be at least 1 second")
    return int(value)


def build_engine(args: argparse.Namespace) -> ExecutorEngine:
    """The engine for these arguments (raises ValueError for a bad --obey/--allow, PilotError for pilotctl)."""
    return ExecutorEngine(
        make_pilotctl(args.pilotctl),
        paths.db_path("executor", args.state_dir),
        backend=args.backend or "dry-run",
        obey=list(args.obey or []),
        allowlist=list(args.allowlist or []),
        default_duration_s=block_duration_s(getattr(args, "block_duration", None)),
    )


class _NoPilot:
    """The Pilot side of an engine built only to act on its state dir: never called (these one-shot commands send
    nothing; the reply a lift queues is sent by the running executor), so reaching it is a bug that says so."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"executor state command used Pilot ({name}); it must only act on the state dir")


def _state_engine(args: argparse.Namespace) -> ExecutorEngine:
    """An engine on an existing state dir, for ``--list/--unblock/--extend`` (raises ValueError when there is none:
    creating an empty state file would list nothing and hide a wrong ``--state-dir``)."""
    db = paths.db_path("executor", args.state_dir)
    if not db.exists() or db.stat().st_size == 0:
        raise ValueError(f"no executor state at {db}: has an executor run with this --state-dir?")
    return ExecutorEngine(
        _NoPilot(),
        db,
        backend=args.backend or "dry-run",
        obey=list(args.obey or []),
        allowlist=list(args.allowlist or []),
        default_duration_s=block_duration_s(getattr(args, "block_duration", None)),
        discover_own_ips=False,
    )


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


BLOCK_TABLE = ("ADDRESS", "STATE", "EXPIRES IN", "ASKED BY", "BACKEND", "UNTIL", "SINCE", "REASON")
"""The columns of ``--list``: the blocks view's, in its order."""


def block_rows(engine: ExecutorEngine, now: float) -> list[dict[str, Any]]:
    """Every block on record as plain values (``--list --json`` prints these; the table formats them)."""
    names = engine.peer_names()
    return [{
        "ip": b.ip, "state": engine.block_state(b), "backend": b.backend, "asked_by": b.sender,
        "asked_by_name": names.get(b.sender), "request_id": b.request_id, "reason": b.reason,
        "event_id": b.event_id, "since": b.created_at, "expires_at": b.expires_at,
        "expires_in_s": round(b.expires_at - now, 1),
    } for b in engine.query.active_blocks()]


def format_blocks(rows: list[dict[str, Any]], now: float) -> str:
    """A plain aligned table (attacker-influenced text made printable), or one line saying there is none."""
    from pilot_tui.model import printable
    from pilot_tui.ui.format import fmt_remaining, fmt_when

    if not rows:
        return "no active blocks"
    cells = [BLOCK_TABLE] + [(
        r["ip"], r["state"], fmt_remaining(r["expires_in_s"]), printable(r["asked_by_name"] or r["asked_by"]),
        r["backend"], fmt_when(r["expires_at"], now), fmt_when(r["since"], now), printable(r["reason"] or "—"),
    ) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(BLOCK_TABLE))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


async def _act(engine: ExecutorEngine, args: argparse.Namespace) -> tuple[int, str]:
    """Carry out the one state command; (exit status, what to print)."""
    as_json = bool(args.json or args.headless)
    try:
        if args.list:
            now = time.time()
            rows = block_rows(engine, now)
            if as_json:
                return 0, orjson.dumps({"backend": engine.firewall.name, "blocks": rows}).decode()
            return 0, format_blocks(rows, now)
        if args.unblock is not None:
            result = await engine.lift_block(_ip(args.unblock))
        else:
            ip, span = args.extend
            from pilot_tui.cli import duration

            try:
                seconds = int(duration(span))
            except argparse.ArgumentTypeError as exc:
                raise ValueError(str(exc)) from None
            result = await engine.extend_block(_ip(ip), seconds)
    finally:
        engine.store.close()
    status = 1 if result.status == "failed" else 0
    return status, result.encode().decode() if as_json else f"{result.ip}: {result.detail}"


def run_state_command(args: argparse.Namespace) -> int:
    """``--list`` / ``--unblock IP`` / ``--extend IP DURATION``: act on the state dir once, print, exit."""
    try:
        engine = _state_engine(args)
        status, out = asyncio.run(_act(engine, args))
    except (ValueError, StoreFault) as exc:
        return fail("executor", str(exc))
    if status and not (args.json or args.headless):
        return fail("executor", out)  # the firewall command failed: one line, exit 1
    print(out)  # JSON: the result document whatever its status (its "status" says failed), exit status too
    return status


def run(args: argparse.Namespace) -> int:
    if args.list or args.unblock is not None or args.extend is not None:
        return run_state_command(args)
    if args.json:
        return fail("executor", "--json goes with --list, --unblock or --extend (the running executor's JSON "
                    "lines are --headless)")
    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("executor", exc.message, exc.hint)
    except ValueError as exc:
        return fail("executor", str(exc))
    if not args.obey:
        print("pilot-tui executor: no --obey given: every request will be refused until you name the "
              "orchestrator(s) to obey", file=sys.stderr)
    if args.headless:
        engine.bus.subscribe(json_line_printer(sys.stdout))

        async def main() -> None:
            try:
                await engine.run()
            finally:
                await engine.close()

        return run_until_signal(main)
    from pilot_tui.ui.app import make_app

    try:
        make_app(executor=engine, keymap=getattr(args, "keymap", None)).run()
    finally:
        engine.store.close()  # headless mode closes it in engine.close(); the app's loop is gone by now
    return 0
