"""``pilot-tui follow BROKER``: another analyst's live copy of an orchestrator's feed (see engines/fanout.py).

It is the orchestrator engine with one receiver, a subscription to the broker's event stream, instead of the port
and inbox receivers; so the same feed, filters, incidents and triage work on it, over a store of its own. With
``--exec-node`` it can ask for blocks too (the executor must ``--obey`` this node), and then it also watches its
inbox, where late mitigation outcomes arrive.
"""

from __future__ import annotations

import argparse

from pilot_tui import paths
from pilot_tui.engines.fanout import DEFAULT_TOPIC
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
    return OrchestratorEngine(pilotctl, store, config)


def run(args: argparse.Namespace) -> int:
    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("follow", exc.message, exc.hint)
    return serve(engine, headless=bool(args.headless))
