"""The scan path's shortcuts give exactly what the slow, obvious code gives: events (vs ``make_event``), event ids
(vs ``uuid.uuid4``), event times (vs ``strftime``), cached syslog times, and chunked decoding (vs decoding whole)."""

from __future__ import annotations

import dataclasses
import io
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_tui.detect import load_rules
from pilot_tui.detect.chunks import iter_chunks
from pilot_tui.detect.events import EventFactory, new_event_id
from pilot_tui.detect.rules import Rule
from pilot_tui.detect.timeparse import LineClock, iso_utc
from pilot_tui.model import ThreatEvent, ValidationError, make_event

RULES = load_rules().rules


def slow(factory: EventFactory, rule: Rule, **fields: object) -> ThreatEvent | str:
    """What ``make_event`` gives for the same fields: the event, or the reason it refuses them."""
    try:
        return make_event(
            fields["source_ip"],  # type: ignore[arg-type]
            rule.anomaly,
            fields["severity"],  # type: ignore[arg-type]
            sensor=factory.sensor,
            rule=rule.name,
            count=fields["count"],  # type: ignore[arg-type]
            window_s=rule.findtime,
            user=fields["user"],  # type: ignore[arg-type]
            log=fields["log"],  # type: ignore[arg-type]
            evidence=fields["evidence"],  # type: ignore[arg-type]
            ts=fields["ts"],  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        return exc.reason


def fast(factory: EventFactory, rule: Rule, **fields: object) -> ThreatEvent | str:
    try:
        return factory.build(rule, **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc.reason


def same(a: ThreatEvent | str, b: ThreatEvent | str) -> bool:
    """Equal outcomes; events may differ only in their random ``id``."""
    if isinstance(a, ThreatEvent) and isinstance(b, ThreatEvent):
        return dataclasses.replace(a, id=b.id) == b and uuid.UUID(a.id).version == 4
    return a == b


TYPICAL = {
    "source_ip": "203.0.113.7",
    "severity": "high",
    "count": 5,
    "ts": "2026-11-25T12:00:01.250Z",
    "user": "root",
    "log": "/var/log/auth.log",
    "evidence": ("Nov 25 12:00:01 web-1 sshd[1]: Failed password for root from 203.0.113.7 port 1 ssh2",),
}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"user": None, "log": None, "evidence": ()},
        {"source_ip": "2001:db8::7", "severity": "critical", "count": 2**53},
        {"evidence": tuple(f"line {i}" for i in range(5))},
        # outside the fast path's envelope: make_event decides (and fixes or refuses) as always
        {"source_ip": "2001:DB8::7"},  # not canonical: make_event canonicalises it
        {"source_ip": "::ffff:203.0.113.7"},
        {"source_ip": "not-an-ip"},
        {"count": 0},
        {"count": 2**53 + 1},
        {"count": True},
        {"severity": "urgent"},
        {"user": ""},
        {"user": "u" * 129},
        {"log": "x" * 1025},
        {"evidence": tuple(f"line {i}" for i in range(7))},  # make_event keeps the first five
        {"evidence": ("x" * 600,)},  # make_event cuts it
        {"ts": "999-01-01T00:00:00.000Z"},  # strftime's unpadded year before 1000
        {"ts": "2026-13-01T00:00:00.000Z"},
        {"ts": "2026-11-25T12:00:01.2xxZ"},
        {"ts": ""},  # make_event stamps "now": only the id and ts differ, and ts is checked separately below
    ],
)
def test_factory_equals_make_event(change: dict[str, object]) -> None:
    factory = EventFactory("web-1", RULES)
    fields = {**TYPICAL, **change}
    for rule in RULES:
        want = slow(factory, rule, **fields)
        for _ in range(2):  # cold, then from the warm caches
            got = fast(factory, rule, **fields)
            if fields["ts"] == "" and isinstance(got, ThreatEvent) and isinstance(want, ThreatEvent):
                got = dataclasses.replace(got, ts=want.ts)
            assert same(got, want), (rule.name, change, got, want)


def test_factory_with_bad_rule_or_sensor_fails_like_make_event() -> None:
    bad = dataclasses.replace(RULES[0], anomaly="has space")
    factory = EventFactory(None, [bad])
    assert fast(factory, bad, **TYPICAL) == slow(factory, bad, **TYPICAL) == "bad_value"
    assert fast(EventFactory("bad sensor!"), RULES[0], **TYPICAL) == "bad_value"
    given_id = EventFactory(None).build(RULES[0], **TYPICAL, event_id="fixed-1")  # type: ignore[arg-type]
    assert given_id.id == "fixed-1"


@settings(max_examples=200, deadline=None)
@given(
    ip=st.sampled_from(["203.0.113.7", "2001:db8::1", "2001:0db8::1", "1.2.3", "::", "0.0.0.0", "[::1]"]),
    severity=st.sampled_from(["info", "low", "medium", "high", "critical", "", "HIGH"]),
    count=st.integers(-2, 2**54),
    epoch=st.floats(-62_000_000_000, 250_000_000_000, allow_nan=False),  # years 5 to 9892
    user=st.one_of(st.none(), st.text(max_size=140)),
    log=st.one_of(st.none(), st.text(max_size=1100)),
    evidence=st.lists(st.text(max_size=600), max_size=7),
)
def test_factory_property(
    ip: str, severity: str, count: int, epoch: float, user: str | None, log: str | None, evidence: list[str]
) -> None:
    factory = EventFactory("s1", RULES)
    fields = {
        "source_ip": ip,
        "severity": severity,
        "count": count,
        "ts": iso_utc(epoch),
        "user": user,
        "log": log,
        "evidence": tuple(evidence),
    }
    for rule in RULES[:2]:
        assert same(fast(factory, rule, **fields), slow(factory, rule, **fields))


def test_event_ids_are_uuid4_text() -> None:
    ids = {new_event_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


@settings(max_examples=500, deadline=None)
@given(st.floats(-62_000_000_000, 250_000_000_000, allow_nan=False))
def test_iso_utc_matches_strftime(epoch: float) -> None:
    whole = int(epoch // 1)
    want = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    assert iso_utc(epoch) == want + f"{int((epoch - whole) * 1000):03d}Z"


def test_syslog_minute_cache_answers_like_a_fresh_clock() -> None:
    """Cached minutes give what parsing does, for this year and for last year (the reference decides)."""
    nov = datetime(2026, 11, 25, 13, 0, 0).timestamp()
    jan = datetime(2027, 1, 2, 12, 0, 0).timestamp()
    warm = LineClock()
    for ref in (nov, nov, jan, jan, nov):
        for line in ("Nov 25 12:00:01 h x", "Nov 25 12:00:07 h y", "Dec 31 23:59:59 h", "Nov 25 12:00:0x h"):
            assert warm.line_time(line, ref) == LineClock().line_time(line, ref), (line, ref)


def test_detector_hot_path_reads_the_clock_like_line_time() -> None:
    """The detector's cache of syslog times and LineClock.line_time agree, including odd and malformed times."""
    from pilot_tui.detect import Detector, RuleSet

    ref = datetime(2026, 11, 25, 13, 0, 0).timestamp()
    sshd = load_rules(packs=("sshd",))
    det = Detector(RuleSet(sshd.filters, tuple(dataclasses.replace(r, maxretry=1) for r in sshd.rules)))
    clock = LineClock()
    heads = ["Nov 25 12:00:01", "Nov 25 12:00:01", "Nov 25 12:00X02", "Nov 25 12:00:0x", "Nov 99 12:00:01"]
    heads += ["Dec 31 23:59:59", "Jan  1 00:00:00", "2026-11-25T12:00:01.5Z", ""]
    for i, head in enumerate(heads):
        line = f"{head} web-1 sshd[1]: Failed password for root from 203.0.113.{i} port 1 ssh2"
        (event,) = det.feed(line, "a", now=ref)  # a new address each time: every line fires
        want = clock.line_time(line, ref)
        assert event.ts == iso_utc(ref if want is None else want), line


def test_detector_times_follow_the_reference_year() -> None:
    """The same syslog time read against references years apart (one scan of an old rotated file, then of today's
    log: each file's mtime is its reference) gets each reference's year, as a fresh LineClock says."""
    from pilot_tui.detect import Detector, RuleSet

    sshd = load_rules(packs=("sshd",))
    det = Detector(RuleSet(sshd.filters, tuple(dataclasses.replace(r, maxretry=1) for r in sshd.rules)))
    refs = [datetime(2026, 11, 25, 13).timestamp(), datetime(2028, 1, 2, 13).timestamp()]
    refs.append(refs[0])
    for i, (ref, year) in enumerate(zip(refs, ("2026", "2027", "2026"), strict=True)):
        line = f"Nov 25 12:00:01 web-1 sshd[{i}]: Failed password for root from 203.0.113.{i} port 1 ssh2"
        (event,) = det.feed(line, "a", now=ref)
        assert event.ts == iso_utc(LineClock().line_time(line, ref)), (line, ref)  # type: ignore[arg-type]
        assert event.ts.startswith(year + "-11-25T"), event.ts


def test_year_change_clears_the_minute_cache() -> None:
    clock = LineClock()
    clock.line_time("Nov 25 12:00:01 h x", datetime(2026, 11, 25, 13).timestamp())
    assert clock.minutes
    clock.line_time("Jan  2 12:00:01 h x", datetime(2027, 1, 2, 13).timestamp())  # new minute, new year
    assert list(clock.minutes) == ["Jan  2 12:00"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"a", b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xe2\x82", b"\xff", b"x" * 50]),
        max_size=60,
    ),
    st.integers(1, 64),
)
def test_chunks_decode_like_the_whole_file(parts: list[bytes], chunk_size: int) -> None:
    data = b"".join(parts)
    chunks = list(iter_chunks(io.BytesIO(data), chunk_size))
    assert "".join(text for text, _ in chunks) == data.decode("utf-8", "replace").replace("\r\n", "\n")
    assert sum(n for _, n in chunks) == len(data)
    assert all(text.endswith("\n") for text, _ in chunks[:-1])


def test_typical_events_skip_make_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector's own events take the fast path (make_event only checks each rule once, up front)."""
    import pilot_tui.detect.events as events

    factory = EventFactory("web-1", RULES)

    def refuse(*args: object, **kwargs: object) -> ThreatEvent:
        raise AssertionError("make_event called for a typical event")

    monkeypatch.setattr(events, "make_event", refuse)
    for rule in RULES:
        event = factory.build(rule, **TYPICAL)  # type: ignore[arg-type]
        assert (event.rule, event.count, event.evidence) == (rule.name, 5, TYPICAL["evidence"])
