"""``pilot-tui orchestrator``: receivers + event store + (UI | headless JSON lines)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

import orjson

from pilot_tui import paths
from pilot_tui.engines import updates as u
from pilot_tui.engines.fanout import DEFAULT_TOPIC, Signer
from pilot_tui.engines.orchestrator import OrchestratorConfig, OrchestratorEngine
from pilot_tui.pilot.errors import PilotError
from pilot_tui.store.events import EventStore

from .common import fail, make_pilotctl, run_until_signal


def build_engine(args: argparse.Namespace) -> OrchestratorEngine:
    """The engine for these arguments (shared by the UI, headless mode and the demo)."""
    pilotctl = make_pilotctl(args.pilotctl)
    store = EventStore(paths.db_path("orchestrator", args.state_dir))
    config = OrchestratorConfig(port=args.port or 1000, exec_node=args.exec_node,
                                stream_backend=args.stream_backend or "auto", publish_to=args.publish,
                                topic=args.topic or DEFAULT_TOPIC)
    engine = OrchestratorEngine(pilotctl, store, config)
    if engine.publisher is not None:
        # followers pin this key: it must be the same one on every start, so it lives in the state dir
        try:
            signer = Signer.load_or_create(paths.signing_key_path(args.state_dir))
        except ValueError as exc:
            raise PilotError(str(exc), code="bad_key") from None
        engine.publisher.signer = signer
        print(f"pilot-tui orchestrator: publishing signed with key {signer.fingerprint} (followers pin it: "
              f"pilot-tui follow {args.publish} --key {signer.public_b64})", file=sys.stderr)
    return engine


def headless_printer() -> Callable[[u.Update], None]:
    """stdout: each accepted event as one JSON line; stderr: status lines (quarantine, alerts, mitigation, notices)
    and receiver states — only when a receiver's state *changes*, not each time a message refreshes its
    "last message" time (that was a stderr line per inbox message or publish)."""
    last: dict[str, tuple[str, str, str, int]] = {}

    def emit(update: u.Update) -> None:
        if isinstance(update, u.EventsStored):
            for event in update.events:
                obj = event.to_dict()
                obj["received_from"] = update.sender
                obj["transport"] = update.transport
                sys.stdout.write(orjson.dumps(obj).decode() + "\n")
            sys.stdout.flush()
            return
        if isinstance(update, u.ReceiverState):
            key = (update.kind, update.state, update.detail, update.restarts)
            if last.get(update.name) == key:
                return
            last[update.name] = key
        elif not isinstance(update, (u.Quarantined, u.SensorAlert, u.MitigationUpdate, u.Notice)):
            return
        sys.stderr.write(orjson.dumps(update.to_dict()).decode() + "\n")
        sys.stderr.flush()

    return emit


def wire_hook(engine: OrchestratorEngine, on_event: str | None) -> Callable[[], Awaitable[None]] | None:
    """Subscribe the ``--on-event`` consumer to ``engine``'s bus and return its run loop (``None`` without one).

    The one place the hook is wired, so headless and UI mode cannot differ in what the consumer is fed."""
    if not on_event:
        return None
    from pilot_tui.engines.hook import HookRunner, make_applier

    hook = HookRunner(on_event, make_applier(engine), engine.bus)
    engine.bus.subscribe(hook.on_update)
    return hook.run


async def run_engine(engine: OrchestratorEngine, on_event: str | None) -> None:
    """Run the receivers, plus the ``--on-event`` hook when given."""
    jobs: list[Awaitable[None]] = [engine.run()]
    if (hook := wire_hook(engine, on_event)) is not None:
        jobs.append(hook())
    try:
        await asyncio.gather(*jobs)
    finally:
        engine.store.close()


def run(args: argparse.Namespace) -> int:
    try:
        engine = build_engine(args)
    except PilotError as exc:
        return fail("orchestrator", exc.message, exc.hint)
    except paths.StateError as exc:
        return fail("orchestrator", str(exc))
    return serve(engine, headless=bool(args.headless), on_event=args.on_event,
                 keymap=getattr(args, "keymap", None))


def serve(engine: OrchestratorEngine, *, headless: bool, on_event: str | None = None,
          keymap: dict[str, str] | None = None) -> int:
    """Run ``engine`` with the threat-feed UI, or headless (JSON lines); shared with ``pilot-tui follow``."""
    if headless:
        engine.bus.subscribe(headless_printer())
        return run_until_signal(lambda: run_engine(engine, on_event))
    from pilot_tui.ui.app import make_app

    hook = wire_hook(engine, on_event)
    try:
        make_app(orchestrator=engine, background=[hook] if hook else [], keymap=keymap).run()
    finally:
        # the app cancelled the receivers on its way out; closing lets SQLite fold the WAL back into the file
        engine.store.close()
    return 0
