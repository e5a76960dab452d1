"""Mitigation request/result messages: round trips, strictness, and no exception but MitigationError on any input."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilot_tui.engines.mitigation import (
    MitigationError,
    MitigationRequest,
    MitigationResult,
    canonical_ip,
    message_kind,
    parse_request,
    parse_result,
    utc_iso,
)

pytestmark = pytest.mark.timeout(30)


def test_request_round_trip_and_wire_form() -> None:
    req = MitigationRequest.new("block", "203.0.113.7", duration_s=3600, event_id="0193f1c2-aa", reason="brute_force_ssh",
                                requested_by="analyst", now=1_800_000_000.0)
    wire = orjson.loads(req.encode())
    assert wire == {"schema": "pilot-tui.mitigate/1", "request_id": req.request_id, "action": "block",
                    "ip": "203.0.113.7", "duration_s": 3600, "event_id": "0193f1c2-aa", "reason": "brute_force_ssh",
                    "requested_by": "analyst", "issued_at": "2027-01-15T08:00:00.000Z", "valid_s": 300}
    assert parse_request(req.encode()) == req
    assert parse_request(req.encode().decode()) == req
    bare = MitigationRequest.new("unblock", "2001:DB8::0:7")
    assert bare.ip == "2001:db8::7" and "duration_s" not in orjson.loads(bare.encode())


def test_result_round_trip() -> None:
    res = MitigationResult("r-1", "203.0.113.7", "block", "applied", "dry-run", "blocked for 3600s",
                           utc_iso(1_800_000_000), "aws-exec-node")
    assert orjson.loads(res.encode())["schema"] == "pilot-tui.mitigate-result/1"
    assert parse_result(res.encode()) == res and res.ok
    refused = MitigationResult("", "", "", "refused", "dry-run", "bad_json: …")
    assert parse_result(refused.encode()) == refused and not refused.ok


def test_message_kind_routes_by_schema() -> None:
    assert message_kind(MitigationRequest.new("block", "1.2.3.4").encode()) == "request"
    assert message_kind(MitigationResult("r", "1.2.3.4", "block", "failed", "nft").encode()) == "result"
    assert message_kind(b'{"source_ip": "1.2.3.4"}') is None
    assert message_kind(b"\xff") is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema": "pilot-tui.mitigate/2"}, "bad_schema"),
        ({"schema": None}, "bad_schema"),
        ({"request_id": None}, "missing_field"),
        ({"request_id": 7}, "wrong_type"),
        ({"request_id": "has space"}, "bad_value"),
        ({"request_id": "x" * 129}, "bad_value"),
        ({"action": "drop"}, "bad_value"),
        ({"ip": "::1%eth0"}, "bad_ip"),
        ({"ip": " 1.2.3.4"}, "bad_ip"),
        ({"ip": "01.2.3.4"}, "bad_ip"),
        ({"ip": "-1.2.3.4"}, "bad_ip"),
        ({"ip": 16909060}, "wrong_type"),
        ({"duration_s": True}, "wrong_type"),
        ({"duration_s": 1.5}, "wrong_type"),
        ({"duration_s": -5}, "bad_value"),
        ({"event_id": ""}, "bad_value"),
        ({"reason": "x\x1b[31m"}, "bad_value"),
        ({"issued_at": "yesterday"}, "bad_value"),
        ({"issued_at": 1_800_000_000}, "wrong_type"),
        ({"valid_s": "300"}, "wrong_type"),
        ({"valid_s": 0}, "bad_value"),
        ({"valid_s": 10**9}, "bad_value"),
    ],
)
def test_request_rejections_name_the_reason(change: dict[str, object], reason: str) -> None:
    obj = {"schema": "pilot-tui.mitigate/1", "request_id": "r-1", "action": "block", "ip": "203.0.113.7"}
    obj.update(change)
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(MitigationError) as info:
        parse_request(orjson.dumps(obj))
    assert info.value.reason == reason and info.value.detail
    if "request_id" not in change:
        assert info.value.request_id == "r-1"  # salvaged for the refusal


def test_unknown_fields_are_ignored_and_oversize_refused() -> None:
    obj = {"schema": "pilot-tui.mitigate/1", "request_id": "r", "action": "block", "ip": "1.2.3.4", "future": [1]}
    assert parse_request(orjson.dumps(obj)).ip == "1.2.3.4"
    obj["pad"] = "x" * 70_000
    with pytest.raises(MitigationError, match="oversize"):
        parse_request(orjson.dumps(obj))


def test_result_rejections() -> None:
    good = orjson.loads(MitigationResult("r", "1.2.3.4", "block", "applied", "nft").encode())
    for change, reason in [({"status": "maybe"}, "bad_value"), ({"expires_at": "soon"}, "bad_value"),
                           ({"detail": 5}, "wrong_type"), ({"schema": "pilot-tui.mitigate/1"}, "bad_schema")]:
        with pytest.raises(MitigationError) as info:
            parse_result(orjson.dumps({**good, **change}))
        assert info.value.reason == reason
    del good["request_id"]
    with pytest.raises(MitigationError, match="missing_field"):
        parse_result(orjson.dumps(good))


def test_canonical_ip() -> None:
    assert canonical_ip("::ffff:203.0.113.7") == "203.0.113.7"
    assert canonical_ip("2001:0DB8:0:0::7") == "2001:db8::7"
    for bad in ["", "1.2.3.4/32", "localhost", "1.2.3.4\n", "1" * 50]:
        with pytest.raises(ValueError):
            canonical_ip(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
keys = st.sampled_from(["schema", "request_id", "action", "ip", "duration_s", "event_id", "reason", "requested_by",
                        "status", "backend", "detail", "expires_at", "executor", "issued_at", "valid_s"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_bytes_only_ever_raise_mitigation_error(data: bytes) -> None:
    for parse in (parse_request, parse_result):
        try:
            parse(data)
        except MitigationError:
            pass
    message_kind(data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=10), st.sampled_from(["pilot-tui.mitigate/1",
                                                                       "pilot-tui.mitigate-result/1"]))
def test_hostile_objects_only_ever_raise_mitigation_error(obj: dict[str, object], schema: str) -> None:
    obj = {**obj, "schema": schema}
    data = json.dumps(obj).encode()  # stdlib: also writes integers beyond 64 bits
    for parse in (parse_request, parse_result):
        try:
            parsed = parse(data)
        except MitigationError as exc:
            assert exc.reason and exc.detail
        else:
            assert parse(parsed.encode()) == parsed  # whatever parses, round-trips
