"""SVG snapshots of every screen at 80×24 and 120×40 (pytest-textual-snapshot; update with ``--snapshot-update``).

Deterministic by construction: sample events with fixed ids and timestamps, store times pinned to them, a
:class:`ui_sample.FixedClock` for every age, engines not started (their state is prepared, their
updates emitted by hand), and no text cursor on screen.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ui_sample import (
    BASE_EPOCH,
    SAMPLE_PENDING,
    FixedClock,
    StubPilot,
    fill_executor,
    sample_executor,
    sample_oracle,
    sample_orchestrator,
    sample_receivers,
    sample_send_results,
)

from pilot_tui.engines import updates as u
from pilot_tui.model import make_event
from pilot_tui.ui.app import PilotApp, make_app

SIZES = [(80, 24), (120, 40)]
pytestmark = pytest.mark.timeout(60)


def build(tmp_path: Path, *, oracle: bool = False, orchestrator: bool = False, executor: bool = False,
          demo: bool = False) -> PilotApp:
    """An app over sample engines, nothing running, frozen clock."""
    clock = FixedClock()
    engines: dict[str, Any] = {}
    if orchestrator:
        orch = sample_orchestrator(str(tmp_path / "events.db"), 300,
                                   pilot=StubPilot(pending_requests=list(SAMPLE_PENDING)))
        sample_receivers(orch)
        engines["orchestrator"] = orch
    if oracle:
        engines["oracle"] = sample_oracle(str(tmp_path))
    if executor:
        ex = sample_executor(str(tmp_path / "exec.db"), clock)
        asyncio.run(fill_executor(ex, clock))
        engines["executor"] = ex
    return make_app(**engines, demo=demo, clock=clock, start_engines=False)


IPV6 = "2001:db8:bad:1::17"
"""An IPv6 attacker: its address, count and severity must never be cut at 80×24 (issue 13 §4)."""


def _iso(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def add_ipv6_attacker(app: PilotApp, n: int = 150) -> tuple[Any, ...]:
    """``n`` recent events from :data:`IPV6` (the top source), with large counts, at fixed times."""
    store = app.engines["orchestrator"].store
    events = [make_event(IPV6, "brute_force_ssh", "critical", sensor="edge-proxy-3", seq=90_000 + i,
                         count=10_000 + i, ts=_iso(BASE_EPOCH - 2 - i * 0.01), event_id=f"v6-{i:04d}")
              for i in range(n)]
    store.ingest(events, sender="0:0000.0000.0d42", transport="stream")
    store.conn.executemany("UPDATE events SET received_at = ? WHERE id = ?",
                           [(BASE_EPOCH - 2 - i * 0.01, e.id) for i, e in enumerate(events)])
    store.conn.commit()
    return tuple(events)


def build_ipv6(tmp_path: Path, **engines: bool) -> PilotApp:
    app = build(tmp_path, **engines)
    if "orchestrator" in app.engines:
        add_ipv6_attacker(app)
    if "oracle" in app.engines:
        oracle = app.engines["oracle"]
        for i in range(3):
            oracle.recent.append(make_event(IPV6, "brute_force_ssh", "critical", sensor="gcp-log-oracle",
                                            seq=5_000 + i, count=12_345, ts=_iso(BASE_EPOCH - 30 + i),
                                            event_id=f"v6-det-{i}"))
    return app


async def emit_send_log(pilot: Any) -> None:
    """The oracle's send log as a running sender would have produced it."""
    app: PilotApp = pilot.app
    oracle = app.engines["oracle"]
    for update in sample_send_results():
        oracle.bus.emit(update)
    oracle.sender.peer_state = "no-trust"
    app.pump()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_feed(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # the feed as it opens: newest first, receivers, stats
    assert snap_compare(build(tmp_path, orchestrator=True), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_feed_detail(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # down, down: the event whose evidence holds markup and an escape sequence; enter opens the detail pane
    assert snap_compare(build(tmp_path, orchestrator=True), press=["down", "down", "enter"], terminal_size=size)


def test_feed_filtered(snap_compare: Any, tmp_path: Path) -> None:
    # "/" opens the filter box, a query is typed, enter applies; "s" four times → critical only
    keys = ["slash", *"anomaly:ssh", "enter", "s", "s", "s", "s"]
    assert snap_compare(build(tmp_path, orchestrator=True), press=keys, terminal_size=(120, 40))


def test_mitigate_confirmation(snap_compare: Any, tmp_path: Path) -> None:
    # "m" on the newest event: the confirmation names the IP, the executor and the duration
    assert snap_compare(build(tmp_path, orchestrator=True), press=["m"], terminal_size=(80, 24))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_incidents(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # "i": one row per source IP across sensors
    assert snap_compare(build(tmp_path, orchestrator=True), press=["i", "wait:100"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sensors_and_trust(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # "t": known sensors with gaps, and two pending handshakes (one with hostile text)
    assert snap_compare(build(tmp_path, orchestrator=True), press=["t", "wait:100"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_quarantine(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # "x": refused payloads, the highlighted one shown literally
    assert snap_compare(build(tmp_path, orchestrator=True), press=["x"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_oracle(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # the oracle's send view with a send log ending in a trust error
    assert snap_compare(build(tmp_path, oracle=True), run_before=emit_send_log, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_executor(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # dry-run executor: three active blocks, refusals with their reasons
    assert snap_compare(build(tmp_path, executor=True), terminal_size=size)


def test_executor_blocks(snap_compare: Any, tmp_path: Path) -> None:
    # "b": every block with its state, expiry and who asked (by node name); "u"/"e" act on the selected one
    assert snap_compare(build(tmp_path, executor=True), press=["b"], terminal_size=(80, 24))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_demo_layout(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # all three engines; the demo layout comes first
    app = build(tmp_path, oracle=True, orchestrator=True, executor=True, demo=True)
    assert snap_compare(app, run_before=emit_send_log, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    # "?" over the feed lists its keys
    assert snap_compare(build(tmp_path, orchestrator=True), press=["question_mark"], terminal_size=size)


def test_light_theme(snap_compare: Any, tmp_path: Path) -> None:
    # "d" switches to the light theme
    assert snap_compare(build(tmp_path, orchestrator=True), press=["d"], terminal_size=(80, 24))


# -- 80×24 with an IPv6 attacker: addresses, counts and severities are never cut (issue 13 §4) -------------------


def test_feed_ipv6(snap_compare: Any, tmp_path: Path) -> None:
    # an IPv6 top source with five-digit counts: the source column widens, anomaly and sensor give way
    assert snap_compare(build_ipv6(tmp_path, orchestrator=True), terminal_size=(80, 24))


def test_feed_ipv6_not_following(snap_compare: Any, tmp_path: Path) -> None:
    # "j" stops following; then events arrive above: the rows stay put and the header says "N new ↑"
    async def arrive(pilot: Any) -> None:
        await pilot.press("j", "j")
        events = add_ipv6_attacker(pilot.app, 7)
        pilot.app.engines["orchestrator"].bus.emit(u.EventsStored(BASE_EPOCH, events, "0:0000.0000.0d42", "stream"))
        pilot.app.pump()
        await pilot.pause()

    assert snap_compare(build(tmp_path, orchestrator=True), run_before=arrive, terminal_size=(80, 24))


def test_incidents_ipv6(snap_compare: Any, tmp_path: Path) -> None:
    # "i" with the IPv6 attacker first: address, severity and counts come first and fit
    assert snap_compare(build_ipv6(tmp_path, orchestrator=True), press=["i", "wait:100"], terminal_size=(80, 24))


def test_oracle_ipv6(snap_compare: Any, tmp_path: Path) -> None:
    # IPv6 detections in the oracle's list: the anomaly name is what gives way
    assert snap_compare(build_ipv6(tmp_path, oracle=True), run_before=emit_send_log, terminal_size=(80, 24))


def test_demo_help(snap_compare: Any, tmp_path: Path) -> None:
    # "?" on the demo view lists every feed key that works there (they reach the threat feed)
    app = build(tmp_path, oracle=True, orchestrator=True, executor=True, demo=True)
    assert snap_compare(app, press=["question_mark"], terminal_size=(120, 40))
