"""The wire codec: what we accept, what we refuse (with which reason), and that hostile bytes never crash it."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_tui import model
from pilot_tui.model import ValidationError, decode_event, decode_payload, encode_batch, make_event

SEED = b'{"source_ip":"203.0.113.7","anomaly":"brute_force_ssh","severity":"critical"}'


def test_seed_message_gets_stable_content_id() -> None:
    a = decode_event(SEED)
    b = decode_event(SEED + b"\n")
    assert a.id == b.id and a.id.startswith("seed-") and a.is_seed
    other = decode_event(SEED.replace(b"critical", b"high"))
    assert other.id != a.id
    # the seed's three fields come first and verbatim on the way out
    assert a.to_json().startswith(SEED[:-1])


def test_full_event_round_trip() -> None:
    ev = make_event("2001:db8::1", "brute_force_ssh", "high", sensor="gcp-web-1", seq=3, rule="sshd", count=7,
                    window_s=600, user="root", log="/var/log/auth.log", evidence=["line one", "line two"])
    back = decode_event(ev.to_json())
    assert back == ev
    assert back.severity_rank == 3


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"[1,2]", "not_object"),
        (b'{"anomaly":"x","severity":"low"}', "missing_field"),
        (b'{"source_ip":7,"anomaly":"x","severity":"low"}', "wrong_type"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"apocalyptic"}', "unknown_severity"),
        (b'{"source_ip":"999.1.1.1","anomaly":"x","severity":"low"}', "bad_ip"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","count":NaN}', "bad_json"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","count":1e400}', "bad_json"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","count":true}', "wrong_type"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","seq":-1}', "bad_value"),
        (b'{"source_ip":"1.2.3.4","anomaly":"[bold red]x","severity":"low"}', "bad_value"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","id":"a b"}', "bad_value"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","evidence":"nope"}', "wrong_type"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","ts":"yesterday"}', "bad_value"),
        (b'{"source_ip":"1.2.3.4","anomaly":"\xff","severity":"low"}', "invalid_utf8"),
        (b"   ", "empty"),
        (b'{"source_ip":"1.2.3.4","anomaly":"x","severity":"low","user":"' + b"a" * 20000 + b'"}', "oversize"),
        (b"[" * 5000 + b"]" * 5000, "bad_json"),
    ],
)
def test_rejections_carry_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_event(raw)
    assert info.value.reason == reason


def test_evidence_is_capped_not_rejected() -> None:
    obj = orjson.loads(SEED)
    obj["evidence"] = ["x" * 600] * 20
    ev = decode_event(orjson.dumps(obj))
    assert len(ev.evidence) == model.MAX_EVIDENCE_LINES
    assert all(len(line) == model.MAX_EVIDENCE_LINE_CHARS for line in ev.evidence)


def test_payload_keeps_valid_lines_around_bad_ones() -> None:
    good = [make_event("198.51.100.9", "web_sqli", "high", sensor="s1", seq=i) for i in range(3)]
    payload = encode_batch(good[:2]) + b"garbage\r\n\r\n" + good[2].to_json()
    decoded = decode_payload(payload)
    assert [e.id for e in decoded.events] == [e.id for e in good]
    assert [(r.index, r.reason) for r in decoded.rejected] == [(2, "bad_json")]
    assert decoded.batch_size == 2


def test_oversize_payload_rejected_whole() -> None:
    decoded = decode_payload(b"x" * (model.MAX_PAYLOAD_BYTES + 1))
    assert not decoded.events and decoded.rejected[0].reason == "oversize"


def test_printable_defuses_terminal_escapes() -> None:
    text = model.printable("ok\x1b]52;c;ZXZpbA==\x07 \x1b[31mred\u202e")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b" in text


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_decoder_never_raises_anything_else_on_bytes(raw: bytes) -> None:
    try:
        decode_event(raw)
    except ValidationError:
        pass
    decode_payload(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {"source_ip": json_values | st.sampled_from(["203.0.113.7", "::1"]),
         "anomaly": json_values | st.just("x"),
         "severity": json_values | st.sampled_from(model.SEVERITIES)},
        optional={k: json_values for k in ("id", "seq", "count", "window_s", "evidence", "ts", "sensor", "user")},
    )
)
def test_decoder_never_raises_anything_else_on_json(obj: dict) -> None:
    try:
        raw = orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return
    try:
        ev = decode_event(raw)
    except ValidationError:
        return
    assert decode_event(ev.to_json()) == ev
