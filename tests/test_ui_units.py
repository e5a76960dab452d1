"""Plain tests of the UI's logic: formatting, filters, the feed window, the update bridge, safe rendering.

None of these start an app; they are the bulk of the UI's coverage (the app tests check what the user sees).
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from ui_sample import HOSTILE_EVIDENCE, fill_orchestrator, sample_send_results

from pilot_tui.engines import updates as u
from pilot_tui.model import make_event
from pilot_tui.store import feed
from pilot_tui.store.events import EventStore
from pilot_tui.store.queries import FeedQuery, QueryReader
from pilot_tui.ui.bridge import UpdateBridge
from pilot_tui.ui.feedquery import PAGE_ROWS, SORTS, FeedWindow
from pilot_tui.ui.filters import FilterError, ViewFilter, parse_query
from pilot_tui.ui.format import (
    fmt_age,
    fmt_bytes,
    fmt_remaining,
    fmt_when,
    safe,
    state_label,
    truncate,
    ts_hms,
)
from pilot_tui.ui.notices import describe_error, notices_for
from pilot_tui.ui.widgets.event_detail import detail_renderable
from pilot_tui.ui.widgets.feed_table import layout_columns
from pilot_tui.ui.widgets.key_hints import fit_hints, hints_text
from pilot_tui.ui.widgets.oracle_panels import send_result_text
from pilot_tui.ui.widgets.orchestrator_panels import top_sources_text


def render_plain(renderable: object, width: int = 100) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def store() -> EventStore:
    s = EventStore(":memory:")
    fill_orchestrator(s, 2_000)
    return s


# -- formatting ----------------------------------------------------------------------------------------------


def test_ages_sizes_and_times() -> None:
    assert [fmt_age(x) for x in (None, 4.9, 61, 7200, 200_000)] == ["—", "4s", "1m", "2h", "2d"]
    assert fmt_remaining(-1) == "expired" and fmt_remaining(125) == "2m05s" and fmt_remaining(7260) == "2h01m"
    assert fmt_bytes(512) == "512 B" and fmt_bytes(2048) == "2.0 KiB" and fmt_bytes(None) == "—"
    assert ts_hms("2026-11-25T12:00:03.125Z") == "12:00:03" and ts_hms("garbage") == "" and ts_hms(None) == ""
    assert truncate("abcdef", 4) == "abc…" and truncate("abc", 4) == "abc"


def test_safe_makes_control_characters_visible() -> None:
    assert safe("a\x1b[2Jb\u202ec") == "a\\x1b[2Jb\\u202ec"


def test_state_label_prefers_the_mitigation_outcome() -> None:
    assert state_label("new", None) == ("new", "new")
    assert state_label("acknowledged", None) == ("ack", "handled")
    assert state_label("mitigating", {"status": "sent"}) == ("blocking…", "pending")
    assert state_label("mitigated", {"status": "applied"}) == ("blocked", "mitigated")
    assert state_label("new", {"status": "refused"}) == ("refused", "bad")


# -- filters ---------------------------------------------------------------------------------------------------


def test_parse_query_splits_keys_and_free_text() -> None:
    flt = parse_query("ip:203.0.113.7 anomaly:brute sensor:web sev:high root login")
    assert (flt.source_ip, flt.anomaly, flt.sensor, flt.min_severity, flt.text) == (
        "203.0.113.7", "brute", "web", 3, "root login")
    partial = parse_query("ip:203.0.113.")
    assert partial.source_ip == "" and partial.ip_part == "203.0.113."
    # an IPv6 address typed as text is text, not an unknown "2001:" field
    assert parse_query("2001:db8:bad:1::17").text == "2001:db8:bad:1::17"
    assert parse_query("ip:2001:db8:bad:1::17").source_ip == "2001:db8:bad:1::17"
    kept = parse_query("x", ViewFilter(min_severity=2, hide_handled=True))
    assert kept.hide_handled and kept.min_severity == 0 and kept.describe() == "x · open only"
    assert not ViewFilter().active and ViewFilter().describe() == "all events"


@pytest.mark.parametrize("query, words", [("foo:bar", ["'foo'", "ip:", "sev:"]), ("sev:urgent", ["'urgent'", "high"]),
                                          ("anomaly:", ["anomaly:", "value"])])
def test_a_filter_the_store_cannot_answer_is_an_error_not_free_text(query: str, words: list[str]) -> None:
    with pytest.raises(FilterError) as caught:
        parse_query(query)
    assert all(word in str(caught.value) for word in words)


def test_severity_typed_in_the_box_is_part_of_the_text_and_goes_with_it() -> None:
    typed = parse_query("sev:high root")
    assert typed.min_severity == 3 and typed.query() == "sev:high root"  # the box shows it when reopened
    replaced = parse_query("admin", typed)  # the analyst replaced the whole text
    assert replaced.min_severity == 0 and replaced.text == "admin"


def test_hide_handled_hides_exactly_what_the_state_column_calls_handled_or_blocked() -> None:
    s = EventStore(":memory:")
    fill_orchestrator(s, 300)
    ip = s.conn.execute("SELECT source_ip FROM events GROUP BY source_ip ORDER BY COUNT(*) DESC").fetchone()[0]
    first = s.ids_from_source(ip)[0]
    s.record_mitigation("req-1", first, ip, "applied", "dry-run")  # every event of the IP now reads "blocked"
    acked = s.conn.execute("SELECT id FROM events WHERE source_ip != ? LIMIT 1", (ip,)).fetchone()[0]
    s.set_state([acked], "acknowledged")
    shown = FeedWindow(FeedQuery(s.conn), ViewFilter(hide_handled=True))
    labels = {state_label(r.state, r.mitigation)[1] for r in (shown.row(i) for i in range(shown.total)) if r}
    assert labels == {"new"}
    assert shown.total == 300 - len(s.ids_from_source(ip)) - 1


def test_view_filter_matches_the_store(store: EventStore) -> None:
    conn = store.conn
    everything = feed.window(conn, ViewFilter(), 0, 100_000)
    for query, check in [
        ("sensor:web", lambda s: "web" in (s.event.sensor or "")),
        ("anomaly:SSH", lambda s: "ssh" in s.event.anomaly),
        ("ip:198.51.100.", lambda s: "198.51.100." in s.event.source_ip),
        ("sev:critical", lambda s: s.event.severity == "critical"),
    ]:
        flt = parse_query(query)
        expected = [s.rowid for s in everything if check(s)]
        assert feed.count(conn, flt) == len(expected) > 0, query
        assert [s.rowid for s in feed.window(conn, flt, 0, 100_000)] == expected, query


def test_filter_text_is_a_parameter_not_sql(store: EventStore) -> None:
    flt = parse_query("'); DROP TABLE events; -- %_")
    assert feed.count(store.conn, flt) == 0
    assert store.total() == 2_000


# -- the feed window ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "sensor:gcp", "root"])
def test_window_rows_match_offset_paging_in_any_order(store: EventStore, query: str) -> None:
    flt = parse_query(query)
    window = FeedWindow(FeedQuery(store.conn), flt)
    reference = [s.rowid for s in feed.window(store.conn, flt, 0, 100_000)]
    assert window.total == len(reference)
    # jump to the end (counted from the far end), walk back by keyset, jump to the middle, walk forward
    order = [window.total - 1, *range(window.total - 2, window.total - 3 * PAGE_ROWS, -7),
             window.total // 2, *range(window.total // 2, window.total // 2 + 3 * PAGE_ROWS, 5), 0, 1, 2]
    for index in order:
        if 0 <= index < window.total:
            row = window.row(index)
            assert row is not None and row.rowid == reference[index], (query, index)
    assert window.row(window.total) is None and window.row(-1) is None


def test_window_refresh_counts_only_new_rows_and_keeps_indices_stable() -> None:
    s = EventStore(":memory:")
    fill_orchestrator(s, 300)
    window = FeedWindow(FeedQuery(s.conn), parse_query("sensor:gcp-web-1"))
    before = window.total
    top = window.row(0)
    assert top is not None
    new = [make_event("203.0.113.200", "brute_force_ssh", "high", sensor=name, seq=10_000 + i, event_id=f"new-{i}")
           for i, name in enumerate(["gcp-web-1", "aws-api-2", "gcp-web-1"])]
    s.ingest(new, sender="0:0000.0000.0b20")
    assert window.total == before  # not refreshed yet: paging stays on the old snapshot
    assert window.refresh() == 2
    assert window.total == before + 2
    assert window.row(2).rowid == top.rowid  # type: ignore[union-attr]
    assert window.index_of(top.rowid, near=0) == 2


@pytest.mark.parametrize("sort", [s.key for s in SORTS])
def test_sorted_window_pages_like_one_query_and_finds_any_event(store: EventStore, sort: str) -> None:
    window = FeedWindow(FeedQuery(store.conn), parse_query("sensor:gcp"))
    window.set_sort(sort)
    order = {"time": "rowid DESC", "severity": "severity DESC, rowid DESC",
             "count": "COALESCE(count, 0) DESC, rowid DESC", "source": "source_ip ASC, rowid DESC"}[sort]
    where, args = window.filter.where()
    reference = [r[0] for r in store.conn.execute(f"SELECT rowid FROM events{where} ORDER BY {order}", args)]
    assert window.total == len(reference)
    for index in [0, 1, PAGE_ROWS - 1, PAGE_ROWS, len(reference) // 2, len(reference) - 1]:
        row = window.row(index)
        assert row is not None and row.rowid == reference[index], (sort, index)
        assert window.position_of(row.rowid) == index, (sort, index)
    outside = store.conn.execute("SELECT rowid FROM events WHERE sensor NOT LIKE '%gcp%' LIMIT 1").fetchone()[0]
    assert window.position_of(outside) is None


def test_window_rows_show_triage_changes_once_invalidated() -> None:
    """Decoded rows are cached across page reads; a triage or mitigation change must still reach the screen."""
    s = EventStore(":memory:")
    fill_orchestrator(s, 100)
    window = FeedWindow(FeedQuery(s.conn))
    top, second = window.row(0), window.row(1)
    assert top is not None and second is not None
    s.set_state([top.event.id], "false_positive")
    window.invalidate()
    changed = window.row(0)
    assert changed is not None and changed.rowid == top.rowid and changed.state == "false_positive"
    assert window.row(1) is second  # an unchanged row is not decoded again after the page is re-read
    s.record_mitigation("req-9", top.event.id, top.event.source_ip, "applied", "dry-run")
    window.invalidate()
    blocked = window.row(0)
    assert blocked is not None and (blocked.mitigation or {}).get("status") == "applied"


def test_window_handles_an_empty_store() -> None:
    window = FeedWindow(FeedQuery(EventStore(":memory:").conn))
    assert window.total == 0 and window.row(0) is None and window.refresh() == 0


# -- the bridge and notices -----------------------------------------------------------------------------------


def test_bridge_coalesces_high_rate_updates_and_bounds_the_rest() -> None:
    bridge = UpdateBridge("orchestrator", maxlen=10)
    event = make_event("203.0.113.9", "x", "low")
    for _ in range(5_000):
        bridge(u.EventsStored(at=0, events=(event, event), sender="", transport="stream"))
        bridge(u.ReceiverState(at=0, name="stream", kind="sdk", state="running"))
    for i in range(25):
        bridge(u.Notice(at=0, level="info", message=f"n{i}"))
    kinds, updates, new_events, dropped = bridge.drain()  # type: ignore[misc]
    assert kinds == {u.EventsStored, u.ReceiverState, u.Notice}
    assert new_events == 10_000
    assert [x.message for x in updates] == [f"n{i}" for i in range(15, 25)] and dropped == 15
    assert bridge.drain() is None


def test_notices_never_pass_raw_control_characters() -> None:
    out = notices_for([
        u.Notice(at=0, level="error", message="boom \x1b[31m"),
        u.MitigationUpdate(at=0, request_id="r", source_ip="203.0.113.7", status="applied", detail="ok"),
        u.MitigationUpdate(at=0, request_id="r", source_ip="203.0.113.7", status="sent"),
        u.SensorAlert(at=0, sensor="web-1", kind="gap", detail="seq 4-6 missing"),
    ])
    assert out == [("error", "boom \\x1b[31m"), ("information", "203.0.113.7: blocked — ok"),
                   ("warning", "sensor web-1: gap — seq 4-6 missing")]
    from pilot_tui.pilot.errors import TrustRequired

    assert describe_error(TrustRequired("no trust", hint="handshake first")) == \
        "trust_required: no trust (handshake first)"
    assert describe_error(ValueError("no executor configured")) == "no executor configured"
    assert describe_error(RuntimeError("x")) == "RuntimeError: x"


# -- rendering -------------------------------------------------------------------------------------------------


def test_detail_shows_attacker_text_literally() -> None:
    event = make_event("203.0.113.66", "brute_force_ssh", "critical", user="[bold]root[/bold]",
                       evidence=[HOSTILE_EVIDENCE, "[link=http://x]click[/link]"])
    text = render_plain(detail_renderable(event), width=200)
    assert "Invalid user [bold red]admin[/] \\x1b]8;;http://x\\x07 from 203.0.113.66" in text
    assert "[link=http://x]click[/link]" in text
    assert "[bold]root[/bold]" in text
    assert "\x1b" not in text


def test_send_log_line_names_the_error_code_and_hint() -> None:
    ok, *_, fail = sample_send_results()
    assert "✓" in send_result_text(ok).plain and "stored" in send_result_text(ok).plain
    line = send_result_text(fail).plain
    assert "✗" in line and "trust_required" in line and "hint: run `pilotctl handshake" in line
    assert "retry in 8s" in line


@pytest.mark.parametrize("width", [40, 64, 80, 100, 120, 200])
def test_feed_columns_fit_the_width(width: int) -> None:
    cols = layout_columns(width)
    used = sum(c.width for c in cols) + len(cols) - 1
    assert used <= max(width, 60)
    assert {"time", "sev", "ip", "anomaly", "count", "state"} <= {c.key for c in cols}


@pytest.mark.parametrize("width", [79, 99, 119])
@pytest.mark.parametrize("ip", ["2001:db8:bad:1::17", "2001:db8:85a3::8a2e:370:7334", "203.0.113.7"])
def test_addresses_counts_and_severities_are_never_cut(width: int, ip: str) -> None:
    cols = {c.key: c for c in layout_columns(width, len(ip))}
    assert sum(c.width for c in cols.values()) + len(cols) - 1 <= width
    assert cols["ip"].width >= len(ip) and cols["count"].width >= 6 and cols["sev"].width >= len("CRIT")
    assert cols["time"].width >= len("Nov 24")


def test_top_sources_put_the_count_first_so_a_long_address_cannot_hide_it() -> None:
    text = top_sources_text([("2001:db8:bad:1::17", 1234), ("203.0.113.7", 5)])
    lines = text.plain.splitlines()
    assert lines[0].startswith("1,234") and lines[1].strip().startswith("5 ")


def test_footer_keeps_what_fits_in_order_and_always_help() -> None:
    entries = [("⏎", "Detail", True), ("/", "Filter", True), ("a", "Ack", True), ("x", "Quarantine payloads", True),
               ("m", "Mitigate", True), ("?", "Help", True), ("q", "Quit", True)]
    shown = fit_hints(entries, 52, [entries[5]])
    assert shown[-1] == ("?", "Help", True) and shown[0] == ("⏎", "Detail", True)
    # a long entry that does not fit is left out whole; a later one that fits still shows
    assert ("x", "Quarantine payloads", True) not in shown and ("m", "Mitigate", True) in shown
    assert len(hints_text(entries, 52).plain) <= 52 and "Help" in hints_text(entries, 20).plain


def test_dates_show_when_not_today() -> None:
    now = 1_795_608_000.0  # 2026-11-25 12:00 UTC
    assert fmt_when(now - 60, now) == "11:59:00"
    assert fmt_when(now - 86_400, now) == "11-24 12:00" and fmt_when(now - 86_400, now, narrow=True) == "Nov 24"
    assert fmt_when(now - 400 * 86_400, now) == "2025-10-21"


def test_text_objects_are_never_markup() -> None:
    assert isinstance(send_result_text(sample_send_results()[0]), Text)


def test_engines_do_not_import_textual() -> None:
    """The headless core never imports Textual (the UI is only one consumer of its updates)."""
    code = ("import sys; import pilot_tui.engines.oracle, pilot_tui.engines.orchestrator, pilot_tui.store.feed, "
            "pilot_tui.ui.bridge, pilot_tui.ui.filters, pilot_tui.ui.feedquery, pilot_tui.ui.notices; "
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_fill_is_deterministic() -> None:
    a, b = EventStore(":memory:"), EventStore(":memory:")
    t0 = time.perf_counter()
    fill_orchestrator(a, 200)
    fill_orchestrator(b, 200)
    assert time.perf_counter() - t0 < 5
    rows = "SELECT id, received_at, source_ip, sender FROM events ORDER BY rowid"
    assert a.conn.execute(rows).fetchall() == b.conn.execute(rows).fetchall()


def test_deferred_count_shows_the_first_page_then_the_total(store: EventStore) -> None:
    window = FeedWindow(FeedQuery(store.conn))
    flt = parse_query("root")
    window.set_filter(flt, defer_count=True)
    assert window.counting and window.total == PAGE_ROWS
    assert window.row(0).rowid == feed.window(store.conn, flt, 0, 1)[0].rowid  # type: ignore[union-attr]
    same, bound, query = window.count_query()
    counted = query(FeedQuery(store.conn))
    assert window.finish_count(same, bound, counted)
    assert not window.counting and window.total == feed.count(store.conn, flt)
    # a count for a filter that was replaced meanwhile is ignored
    window.set_filter(parse_query("admin"), defer_count=True)
    assert not window.finish_count(flt, bound, counted)
    # few matches: the first page is the whole answer, nothing to count
    window.set_filter(parse_query("203.0.113.66 admin"), defer_count=True)
    assert not window.counting and window.total == feed.count(store.conn, window.filter)


async def test_store_reader_reads_in_a_thread_and_falls_back(tmp_path: Any) -> None:
    s = EventStore(tmp_path / "events.db")
    fill_orchestrator(s, 100)
    reader = QueryReader(FeedQuery(s.conn, s.path))
    assert reader.threaded
    assert await reader.run(lambda q: q.count(ViewFilter())) == 100
    assert [x["sensor"] for x in await reader.sensors()] == [x["sensor"] for x in s.sensors()]
    reader._query._conn.close()  # type: ignore[union-attr]  # a broken second connection: fall back, keep answering
    assert await reader.run(lambda q: q.count(ViewFilter())) == 100
    assert not reader.threaded
    assert not QueryReader(FeedQuery(EventStore(":memory:").conn, ":memory:")).threaded
