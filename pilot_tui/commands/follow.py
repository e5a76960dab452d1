"""``pilot-tui follow BROKER``: another analyst's live copy of an orchestrator's feed (see engines/fanout.py).

It is the orchestrator engine with one receiver, a subscription to the broker's event stream, instead of the port
and inbox receivers; so the same feed, filters, incidents and triage work on it, over a store of its own. With
``--exec-node`` it can ask for blocks too (the executor must ``--obey`` this node), and then it also watches its
inbox, where late mitigation outcomes arrive.
"""

from __future__ import annotations

import argparse
import sys

from pilot_tui import paths
from pilot_tui.engines.fanout import DEFAULT_TOPIC, KeyPin, parse_key
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.events import EventStore

from .common import fail, make_pilotctl
from .orchestrator import serve


def build_engine(args: argparse.Namespace) -> OrchestratorEngine:
    pilotctl = make_pilotctl(args.pilotctl)
    store = EventStore(paths.db_path("follow", args.state_dir))
    config = OrchestratorConfig(stream=False, inbox=bool(args.exec_node), follow=args.broker,
                                topic=args.topic or DEFAULT_TOPIC, exec_node=args.exec_node)
    engine = OrchestratorEngine(pilotctl, store, config)
    # only what this orchestrator key signed is shown: --key pins it explicitly, else the first valid signed
    # message pins it (trust on first use, announced); either way it is kept in the state dir for the next start
    pin_file = paths.pinned_key_path(args.state_dir)
    try:
        if args.key:
            public, expected = parse_key(args.key)
            pin = KeyPin(public, expected=None if public else expected, file=pin_file)
            if public is not None and (not pin_file.exists() or KeyPin.read(pin_file) != public):
                pin.pin(public)
        else:
            pin = KeyPin(file=pin_file)
    except ValueError as exc:
        raise PilotError(str(exc), code="bad_key",
                         hint=f"give --key the fingerprint or key the orchestrator prints, or remove {pin_file}") from None
    engine.follow_pin = pin  # read by the engine's follow receiver
    if pin.fingerprint:
        print(f"pilot-tui follow: accepting only what orchestrator key {pin.fingerprint} signed", file=sys.stderr)
    else:
        print("pilot-tui follow: no orchestrator key pinned yet — the first signed message's key will be pinned and "
              "shown; check it with the orchestrator's operator (or pass --key)", file=sys.stderr)
    return engine


def run(args: argparse.Namespace) -> int:
    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("follow", exc.message, exc.hint)
    return serve(engine, headless=bool(args.headless), keymap=getattr(args, "keymap", None))
