"""Command line: parse arguments, pick a mode, hand over to it. ``main()`` returns the exit status.

This module imports nothing heavy at module level (no Textual, no Rich, no SQLite work) so ``pilot-tui --help``
starts fast; each mode imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .pilot.names import ADDRESS_RE, HOSTNAME_RE, TOPIC_RE

EXIT_ERROR = 1
EXIT_USAGE = 2


DESCRIPTION = """\
Move threat detections between machines over the Pilot Protocol peer-to-peer network.

  oracle        on a server: tail security logs, detect attacks, push threat events to an orchestrator
  orchestrator  on the analyst's machine: receive, validate and dedup events; live threat feed; mitigate
  executor      on an isolated node: apply firewall blocks the orchestrator asks for over Pilot
  follow        another analyst's terminal: follow an orchestrator's feed through a broker node's event stream
  demo          a live show on this machine with no Pilot install (emulated network + attack-log generator)
  scan          offline: what the rules would detect in log files (like fail2ban-regex)
  doctor        check pilotctl, the daemon, trust with a peer and the state dir
  export        write stored events as NDJSON, CSV or ECS for log shippers
"""

EPILOG = """\
examples:
  pilot-tui demo
  pilot-tui oracle --peer local-threat-orchestrator --log /var/log/auth.log
  pilot-tui orchestrator --exec-node aws-exec-node --publish soc-broker
  pilot-tui follow soc-broker
  pilot-tui scan /var/log/auth.log
"""


def hostname_or_address(value: str) -> str:
    """argparse type for a Pilot peer: a hostname (lowercase, digits, hyphens) or an address (0:0000.0000.0002)."""
    if not (HOSTNAME_RE.match(value) or ADDRESS_RE.match(value)):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a Pilot hostname (lowercase letters, digits, hyphens, 1-63 chars) or address "
            "(like 0:0000.0000.0002)"
        )
    return value


def port_number(value: str) -> int:
    """argparse type for a port in 1–65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1-65535")
    return port


def topic_name(value: str) -> str:
    """argparse type for an event-stream topic (letters, digits and ``._:/-``, at most 128)."""
    if value == "*" or not TOPIC_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a topic (letters, digits and ._:/- only, 1-128 chars)")
    return value


def ip_or_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address or CIDR") from None


def demo_speed(value: str) -> float:
    """argparse type for ``demo --speed``: a factor above 0 and at most 100."""
    try:
        speed = float(value)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 100:
        raise argparse.ArgumentTypeError(f"{value!r} is not a speed factor between 0 and 100 (1 is real time)")
    return speed


def duration(value: str) -> float:
    """``30s``, ``15m``, ``2h``, ``7d`` or plain seconds → seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 30s, 15m, 2h or 7d")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pilot-tui oracle: error: … (see --help)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(p: argparse.ArgumentParser, *, ui: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config with the same settings as the flags (flags win)")
    p.add_argument("--state-dir", metavar="DIR", help="where the SQLite state lives (default: the platform state dir)")
    p.add_argument("--pilotctl", metavar="PATH", help="pilotctl binary (default: $PILOTCTL, then pilotctl on PATH)")
    if ui:
        p.add_argument("--headless", action="store_true", default=None,
                       help="no UI: write one JSON object per line to stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pilot-tui", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pilot-tui {__version__}")
    sub = parser.add_subparsers(dest="mode", metavar="MODE", parser_class=Parser)

    p = sub.add_parser("oracle", help="tail logs, detect attacks, push events to an orchestrator",
                       description="Tail security logs, detect attacks and push each threat event peer to peer to "
                       "an orchestrator. Events wait in a durable outbox until the orchestrator acknowledges them.")
    p.add_argument("--peer", type=hostname_or_address, metavar="HOST", help="orchestrator hostname or Pilot address")
    p.add_argument("--port", type=port_number, metavar="PORT", help="orchestrator's Pilot port (default 1000)")
    p.add_argument("--transport", choices=("stream", "message"),
                   help="stream: pilotctl connect (default; the orchestrator replies with stored ids); "
                   "message: send-message to the orchestrator's inbox (acknowledged by its daemon)")
    p.add_argument("--log", action="append", metavar="PATH", help="log file or glob to tail (repeatable)")
    p.add_argument("--from-start", action="store_true", default=None,
                   help="on first run read existing files from the start (default: only new lines)")
    p.add_argument("--journal", nargs="*", metavar="UNIT", help="follow the systemd journal (optionally only UNITs)")
    p.add_argument("--rules", metavar="FILE", help="TOML file with extra detection rules")
    p.add_argument("--allow", action="append", type=ip_or_cidr, metavar="CIDR", dest="allowlist",
                   help="never report this IP/CIDR (repeatable)")
    p.add_argument("--sensor", metavar="NAME", help="this oracle's sensor name in events (default: hostname)")
    _common(p)

    p = sub.add_parser("orchestrator", help="receive events, show the live threat feed, mitigate",
                       description="Listen on Pilot port 1000 and on the daemon inbox; validate, dedup and store "
                       "every event; show the live threat feed; ask an executor node to block attackers.")
    p.add_argument("--port", type=port_number, metavar="PORT", help="Pilot port to listen on (default 1000)")
    p.add_argument("--exec-node", type=hostname_or_address, metavar="HOST",
                   help="executor node that applies blocks (mitigation is off without it)")
    p.add_argument("--on-event", metavar="CMD",
                   help="start CMD once and write each accepted event to its stdin as NDJSON; JSON lines it "
                   "writes back ({id, action: mitigate|ack|ignore, note}) are applied")
    p.add_argument("--stream-backend", choices=("auto", "sdk", "sim", "recv"),
                   help="port receiver: auto (default), the pilotprotocol SDK, pilot-sim, or a pilotctl recv loop")
    p.add_argument("--publish", type=hostname_or_address, metavar="BROKER",
                   help="also publish every stored event on BROKER's event stream, for 'pilot-tui follow BROKER' "
                   "(a node cannot be its own broker: name another node both sides trust)")
    p.add_argument("--topic", type=topic_name, metavar="TOPIC", help="event-stream topic (default pilot-tui.threats)")
    _common(p)

    p = sub.add_parser("follow", help="follow an orchestrator's feed from a broker node (another analyst)",
                       description="Subscribe to the threat feed an orchestrator publishes on BROKER's event stream "
                       "(orchestrator --publish BROKER) and show it live: filter, details, incidents and triage work "
                       "on this terminal's own copy. Events published while this is not running are not replayed.")
    p.add_argument("broker", type=hostname_or_address, metavar="BROKER", help="the broker node's hostname or address")
    p.add_argument("--topic", type=topic_name, metavar="TOPIC", help="event-stream topic (default pilot-tui.threats)")
    p.add_argument("--exec-node", type=hostname_or_address, metavar="HOST",
                   help="executor node to ask for blocks from here (mitigation is off without it)")
    p.add_argument("--key", metavar="KEY",
                   help="the orchestrator's signing key (base64) or its fingerprint, as 'orchestrator --publish' "
                   "prints it: only what it signed is shown (default: pin the first signer's key and show it)")
    _common(p)

    p = sub.add_parser("executor", help="apply firewall blocks requested over Pilot",
                       description="Read mitigation requests from this node's Pilot inbox, validate them, apply "
                       "them with a firewall backend (dry-run by default) and reply with the outcome.")
    p.add_argument("--backend", choices=("dry-run", "nft", "iptables", "ufw"),
                   help="how to block (default dry-run: record what would be done, change nothing)")
    p.add_argument("--obey", action="append", type=hostname_or_address, metavar="HOST",
                   help="orchestrator allowed to send requests: a Pilot address, or a hostname pinned to the "
                   "address it first resolves to (kept in the state dir; repeatable; none = refuse all)")
    p.add_argument("--allow", action="append", type=ip_or_cidr, metavar="CIDR", dest="allowlist",
                   help="never block this IP/CIDR (repeatable)")
    p.add_argument("--block-duration", type=duration, metavar="DURATION",
                   help="how long a block lasts when the request names no duration: 30s, 15m, 2h, 7d (default 1h)")
    _common(p)
    once = p.add_argument_group(
        "act on the state dir once and exit",
        "like 'cscli decisions list/delete' or 'fail2ban-client status/unban'; safe beside a running executor on "
        "the same --state-dir, which sees the change on its next expiry pass (within 30 s) and sends the answer a "
        "lift owes the node that asked")
    acts = once.add_mutually_exclusive_group()
    acts.add_argument("--list", action="store_true",
                      help="print the active blocks: address, state, expiry, who asked, backend, since, reason")
    acts.add_argument("--unblock", metavar="IP",
                      help="lift the block of IP now (with the backend that made it) and tell the node that asked")
    acts.add_argument("--extend", nargs=2, metavar=("IP", "DURATION"),
                      help="keep the block of IP DURATION longer (30s, 15m, 2h, 7d) with --backend (must be the "
                      "backend that made it)")
    once.add_argument("--json", action="store_true",
                      help="with --list/--unblock/--extend: print one JSON document instead of text (--headless "
                      "does the same)")

    p = sub.add_parser("demo", help="live demo with an emulated network (no Pilot install needed)",
                       description="Start emulated Pilot nodes (oracle, orchestrator, executor, and two walk-ons: a "
                       "sensor sending a hostile payload and a node asking for trust) in a temporary directory, "
                       "generate a scripted attack story into log files, and show it all live. Everything started "
                       "is stopped on exit.")
    p.add_argument("--speed", type=demo_speed, default=1.0, metavar="FACTOR",
                   help="play the attack story this many times faster (default 1; 0.5 is half speed)")
    p.add_argument("--seed", type=int, default=7, metavar="N",
                   help="seed of the story's background traffic (default 7; the attacks are the same for every seed)")
    p.add_argument("--keep", metavar="DIR",
                   help="keep the state files and logs in DIR (created 0700) instead of a temporary directory, so "
                   "'pilot-tui export --state-dir DIR' works on them afterwards")

    p = sub.add_parser("scan", help="offline: what would be detected in log files",
                       description="Run the detection rules over log files (plain or .gz) and summarise what\n"
                       "would fire, like fail2ban-regex: tables that fit the terminal, one JSON document\n"
                       "listing every source address (--json), or just the offending addresses (--ips).\n"
                       "A file in no format the rules read is said to be so.\n\n"
                       "exit status, like grep: 0 when an event would fire, 1 when none would, 2 on error",
                       epilog="examples:\n  pilot-tui scan /var/log/auth.log /var/log/auth.log.2.gz\n"
                       "  pilot-tui scan --ips /var/log/auth.log | sort -u > offenders.txt",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="log file to scan (plain or .gz; repeatable)")
    p.add_argument("--rules", metavar="FILE", help="TOML file with extra detection rules")
    p.add_argument("--allow", action="append", type=ip_or_cidr, default=[], metavar="CIDR",
                   help="never report this IP/CIDR (repeatable)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON document: every source address (failures, first/last time, anomalies), "
                     "every event")
    out.add_argument("--ips", action="store_true",
                     help="print only the addresses a rule would fire for, one a line (for a pipe)")

    p = sub.add_parser("doctor", help="check pilotctl, the daemon, trust and the state dir",
                       description="Find pilotctl, check the daemon, trust with --peer and the state dir. Each "
                       "problem is one line with pilotctl's hint; exit status 1 if any.")
    p.add_argument("--peer", type=hostname_or_address, metavar="HOST", help="check trust with this peer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--state-dir", metavar="DIR",
                   help="the state dir to check (default: $PILOT_TUI_STATE_DIR, then the platform state dir)")
    p.add_argument("--pilotctl", metavar="PATH",
                   help="pilotctl binary to check (default: $PILOTCTL, then pilotctl on PATH)")

    p = sub.add_parser("export", help="write stored events as NDJSON, CSV or ECS",
                       description="Export the orchestrator's stored events to stdout for Vector, Filebeat or "
                       "Fluent Bit (ECS maps to source.ip, event.severity, rule.name, observer.name, @timestamp).")
    p.add_argument("--format", choices=("ndjson", "csv", "ecs"), required=True,
                   help="ndjson: one event a line; csv: a spreadsheet (cells that would start a formula — =, +, -, "
                   "@, tab, CR — are prefixed with ' so attacker text cannot run); ecs: Elastic Common Schema")
    p.add_argument("--since", type=duration, metavar="DURATION", help="only events received in the last 30s/15m/2h/7d")
    p.add_argument("--follow", action="store_true",
                   help="keep running and write each event as it is stored (ndjson/ecs), resuming after a restart "
                   "from a saved cursor: exactly once into --output FILE, at least once on stdout")
    p.add_argument("--output", metavar="FILE", help="with --follow: append to FILE (cut back to the cursor on restart)")
    p.add_argument("--cursor", metavar="FILE",
                   help="with --follow: where the position is kept (default: FILE.cursor beside --output, else "
                   "export-FORMAT.cursor in the state dir)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="with --follow: how often to look for new events (default 1)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="the orchestrator's state dir holding orchestrator.db (default: $PILOT_TUI_STATE_DIR, then "
                   "the platform state dir; a 'demo --keep DIR' works too)")
    for mode_sub in sub.choices.values():  # every mode answers --version, as the top level does
        mode_sub.add_argument("--version", action="version", version=f"pilot-tui {__version__}",
                              help="print the version and exit")
    return parser


def mode_parser(mode: str, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The sub-parser of ``mode`` (its flags, types and choices): the config file is checked against it."""
    parser = parser or build_parser()
    for action in parser._actions:  # argparse keeps its sub-parsers here; no public accessor exists
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[mode]
            return sub
    raise KeyError(mode)


MODES = {
    "oracle": "pilot_tui.commands.oracle",
    "orchestrator": "pilot_tui.commands.orchestrator",
    "executor": "pilot_tui.commands.executor",
    "follow": "pilot_tui.commands.follow",
    "demo": "pilot_tui.commands.demo",
    "scan": "pilot_tui.detect.scan_cmd",
    "doctor": "pilot_tui.commands.doctor",
    "export": "pilot_tui.commands.export",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pilot-tui``; returns the exit status (``sys.exit`` happens only in ``run``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # say so as the mode's own parser would, pointing to its --help (not the top level's)
        (mode_parser(args.mode, parser) if args.mode else parser).error(
            f"unrecognized arguments: {' '.join(extra)}")
    if not args.mode:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.mode in ("oracle", "orchestrator", "executor", "follow"):
            from . import config

            config.apply(args, args.mode, mode_parser(args.mode, parser))
        module = importlib.import_module(MODES[args.mode])
    except ValueError as exc:  # config errors
        print(f"pilot-tui {args.mode}: {exc} (see pilot-tui {args.mode} --help)", file=sys.stderr)
        return EXIT_USAGE
    from .paths import StateError

    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except StateError as exc:  # an unusable state dir/file, wherever a mode opened it: one line, not a traceback
        print(f"pilot-tui {args.mode}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run()
