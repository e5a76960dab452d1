"""``pilot-sim``: a pilotctl-compatible emulator of Pilot nodes on one machine, for tests and demos.

It is NOT a Pilot network: no registry, no beacon, no encryption, no NAT traversal. Each ``pilot-sim daemon
start`` runs a local node process on a Unix socket; nodes find each other through a shared directory
(``$PILOT_SIM_HOME``) and move bytes between their daemons over Unix sockets. What it reproduces, measured
against pilotctl 1.18, is the command line: subcommands, flags, ``--json`` envelopes, error codes, messages,
exit statuses and timers (connect/recv), so a driver written for pilotctl runs unchanged on it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import IO

from .cli_base import CliError, Ctx, parse_flags
from .client import Control, RemoteError
from .faults import ENV_DOCS
from .proto import VERSION, go_quote, node_ref

USAGE = (
    f"""pilot-sim {VERSION} — a pilotctl-compatible EMULATOR for tests and demos (not a Pilot network)

Each node is a local process on a Unix socket; nodes on this machine find each other through
$PILOT_SIM_HOME and carry data between their daemons over Unix sockets. Commands, flags, --json
envelopes, error codes and exit statuses follow pilotctl 1.18.

Global flags:
  --json                        one JSON envelope per result (as pilotctl --json)

Daemon lifecycle:
  pilot-sim daemon start [--hostname <name>] [--socket <path>] [--public] [--trust-auto-approve] [--wait <dur>]
  pilot-sim daemon stop
  pilot-sim daemon status [--check]

Discovery and trust:
  pilot-sim info | peers | find <hostname>
  pilot-sim handshake <node_id|address|hostname> [justification]
  pilot-sim approve <node_id> | reject <node_id> [reason] | pending | trust

Communication:
  pilot-sim connect <address|hostname> [port] [--message <msg>] [--timeout <dur>]
  pilot-sim recv <port> [--count <n>] [--timeout <dur>]
  pilot-sim send-message <address|hostname> --data <text> | --data - | --data-file <path>
            [--type text|json|binary] [--wait <dur>] [--reply-to <id>] [--count <n>] [--timeout <dur>]
  pilot-sim inbox [--limit <n>] [--full] [--latest] [--since <dur|ts>] [--from <peer>]
  pilot-sim inbox read <id> | inbox --clear [--before <dur>]
  pilot-sim publish <address|hostname> <topic> --data <message>
  pilot-sim subscribe <address|hostname> <topic|*> [--count <n>] [--timeout <dur>]

Diagnostics:
  pilot-sim ping <address|hostname> [--count <n>] [--timeout <dur>]

Environment:
  PILOT_SOCKET       node socket (default /tmp/pilot.sock)
  PILOT_HOME         instead of $HOME for ~/.pilot (pid file, logs); the inbox stays in $HOME/.pilot/inbox
"""
    + "".join(f"  {name:<42} {text}\n" for name, text in ENV_DOCS.items())
    + """
Fault variables are read by the receiving node at `daemon start`; change them at runtime with
<node ~/.pilot>/sim-faults.json (see pilot_tui.sim.faults).

Version:
  pilot-sim version
"""
)


def _resolve_node(ctl: Control, arg: str, not_found: str) -> int:
    """Node id for a node id, an address or a hostname (``not_found`` error otherwise)."""
    node = node_ref(arg)
    if node is not None:
        return node
    try:
        return int(ctl.call("resolve", hostname=arg)["node_id"])
    except RemoteError:
        raise CliError("not_found", not_found) from None


def _simple(op: str) -> Callable[[Ctx, list[str]], int]:
    """info / peers / pending / trust: one question to the node."""

    def run(ctx: Ctx, args: list[str]) -> int:
        flags, _ = parse_flags(args)
        ctl = ctx.control()
        try:
            if op == "info":
                info = ctl.call("info")
                return ctx.ok(info)
            if op == "peers":
                peers = ctl.call("info")["peer_list"]
                search = flags.get("search")
                if search:
                    peers = [p for p in peers if search.lower() in str(p["node_id"])]
                data = {
                    "encrypted": sum(1 for p in peers if p["encrypted"]),
                    "peers": peers or None,
                    "total": len(peers),
                }
                plain = (
                    "no peers connected"
                    if not peers
                    else "\n".join(f"node {p['node_id']} {p['address']}" for p in peers)
                )
                return ctx.ok(data, plain)
            if op == "pending":
                pending = ctl.call("pending")["pending"]
                plain = (
                    "no pending handshake requests"
                    if not pending
                    else "\n".join(f"  node {p['node_id']} · {p['justification']}" for p in pending)
                )
                return ctx.ok({"pending": pending}, plain)
            trusted = sorted(ctl.call("trusted")["trusted"], key=lambda t: -t["approved_at"])
            plain = (
                "no trusted peers"
                if not trusted
                else "\n".join(
                    f"  node {t['node_id']} {t['hostname']}" + ("" if t["mutual"] else " one-way")
                    for t in trusted
                )
            )
            return ctx.ok({"total": len(trusted), "trusted": trusted}, plain)
        except RemoteError as exc:
            raise CliError("connection_failed", f"{op}: {exc}") from None
        finally:
            ctl.close()

    return run


def cmd_find(ctx: Ctx, args: list[str]) -> int:
    """``find <hostname>`` — registered hostnames resolve without trust in the sim."""
    if not args:
        raise CliError("invalid_argument", "usage: pilotctl find <hostname>")
    ctl = ctx.control()
    try:
        rec = ctl.call("resolve", hostname=args[0])
    except RemoteError:
        raise CliError(
            "not_found",
            f"cannot find {go_quote(args[0])} — hostname not found or no mutual trust",
            f'establish trust first: pilotctl handshake {args[0]} "reason"',
        ) from None
    finally:
        ctl.close()
    data = {
        "address": rec["address"],
        "hostname": args[0],
        "node_id": rec["node_id"],
        "public": bool(rec["public"]),
    }
    plain = (
        f"Hostname:  {args[0]}\nNode ID:   {rec['node_id']}\nAddress:   {rec['address']}\n"
        f"Visible:   {'public' if rec['public'] else 'private'}"
    )
    return ctx.ok(data, plain)


def _trust_cmd(op: str) -> Callable[[Ctx, list[str]], int]:
    """handshake / approve / reject."""
    usage = {
        "handshake": "usage: pilotctl handshake <node_id|address|hostname> [justification]",
        "approve": "usage: pilotctl approve <node_id|address|hostname>",
        "reject": "usage: pilotctl reject <node_id|address|hostname> [reason]",
    }[op]

    def run(ctx: Ctx, args: list[str]) -> int:
        if not args:
            raise CliError("invalid_argument", usage)
        ctl = ctx.control()
        try:
            if op == "handshake":
                message = f"resolve {go_quote(args[0])}: hostname not found"
            else:
                message = (
                    f"cannot resolve {go_quote(args[0])} — check the hostname and that mutual trust exists"
                )
            node = _resolve_node(ctl, args[0], message)
            extra = args[1] if len(args) > 1 else ""
            field = {"handshake": "justification", "reject": "reason"}.get(op)
            result = ctl.call(op, node_id=node, **({field: extra} if field else {}))
        except RemoteError as exc:
            raise CliError("connection_failed", f"{op}: {exc}") from None
        finally:
            ctl.close()
        data = {"node_id": node, "status": result["status"]}
        plain = {
            "handshake": f"handshake request sent to node {node}"
            if result["status"] != "already_trusted"
            else f"already trusted with node {node} — ready to communicate",
            "approve": f"trust established with node {node}",
            "reject": f"handshake from node {node} rejected",
        }[op]
        return ctx.ok(data, plain)

    return run


def _daemon(ctx: Ctx, args: list[str]) -> int:
    from . import cli_daemon

    if not args:
        raise CliError(
            "invalid_argument", "missing subcommand", "available: pilotctl daemon start | stop | status"
        )
    sub = {"start": cli_daemon.cmd_start, "stop": cli_daemon.cmd_stop, "status": cli_daemon.cmd_status}.get(
        args[0]
    )
    if sub is None:
        raise CliError(
            "invalid_argument", f"unknown daemon subcommand: {args[0]}", "available: start, stop, status"
        )
    return sub(ctx, args[1:])


def _lazy(module: str, func: str) -> Callable[[Ctx, list[str]], int]:
    """Import a command module only when used: each invocation is a short process, startup time matters."""

    def run(ctx: Ctx, args: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(f"pilot_tui.sim.{module}"), func)(ctx, args))

    return run


COMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "daemon": _daemon,
    "info": _simple("info"),
    "peers": _simple("peers"),
    "pending": _simple("pending"),
    "trust": _simple("trust"),
    "find": cmd_find,
    "handshake": _trust_cmd("handshake"),
    "approve": _trust_cmd("approve"),
    "reject": _trust_cmd("reject"),
    "connect": _lazy("cli_stream", "cmd_connect"),
    "recv": _lazy("cli_stream", "cmd_recv"),
    "publish": _lazy("cli_stream", "cmd_publish"),
    "subscribe": _lazy("cli_stream", "cmd_subscribe"),
    "send-message": _lazy("cli_message", "cmd_send_message"),
    "inbox": _lazy("inbox", "cmd_inbox"),
    "ping": _lazy("cli_ping", "cmd_ping"),
}


def run(
    argv: list[str],
    env: Mapping[str, str],
    stdin: IO[bytes],
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """Run one pilot-sim command; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = [a for a in argv if a not in ("--json", "--verbose", "-v")]
    ctx = Ctx(env=env, stdin=stdin, stdout=stdout, stderr=stderr, json="--json" in argv)
    if not args:
        stderr.write(USAGE)
        return 2
    cmd, rest = args[0], args[1:]
    if cmd in ("-h", "--help", "help"):
        stdout.write(USAGE)
        return 0
    if cmd == "version":
        ctx.out(VERSION)
        return 0
    if "-h" in rest or "--help" in rest:
        stdout.write(USAGE)
        return 0
    handler = COMMANDS.get(cmd)
    if handler is None:
        if ctx.json:
            return ctx.fail(
                CliError(
                    "invalid_argument",
                    f"unknown command: {cmd}",
                    "run 'pilot-sim --help' for the full command list",
                )
            )
        stderr.write(f"unknown command: {cmd}\n\n{USAGE}")
        return 2
    try:
        return handler(ctx, rest)
    except CliError as exc:
        return ctx.fail(exc)
    except RemoteError as exc:  # the node answered something no command expects
        return ctx.fail(CliError("internal", str(exc)))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``pilot-sim``)."""
    return run(
        sys.argv[1:] if argv is None else argv,
        os.environ,
        sys.stdin.buffer,
        sys.stdout,
        sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
