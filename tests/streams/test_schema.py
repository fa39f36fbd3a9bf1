"""Telemetry decoding: the contract's rules, and no input that makes it raise."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.processor import record_to_message
from streams.core.schema import Limits, decode, parse_ts

NOW = 1_767_225_600_000
LIMITS = Limits(max_bytes=10_000, max_records=50, max_sensors=20, max_future_ms=60_000)


def one(record: object) -> str | None:
    d = decode(orjson.dumps(record), LIMITS, NOW)
    return d.dead[0].reason if d.dead else None


def test_accepts_rfc3339_and_optional_fields() -> None:
    d = decode(
        orjson.dumps({
            "asset_id": "P-7", "ts": "2026-01-01T00:00:00.250+00:00", "sensors": {"s1": 3},
            "cycle": 4, "settings": {"setting1": 0.5}, "site": "plant a", "line": "L1",
            "type": "pump", "life": "serial-0042",
        }),
        LIMITS, NOW,
    )  # fmt: skip
    (r,) = d.records
    assert (r.ts_ms, r.sensors, r.cycle, r.site) == (NOW + 250, {"s1": 3.0}, 4, "plant a")
    assert isinstance(r.sensors["s1"], float)
    assert r.type == "pump" and record_to_message(r)["type"] == "pump"  # kept when forwarded
    assert r.life == "serial-0042" and record_to_message(r)["life"] == "serial-0042"
    assert decode(orjson.dumps(record_to_message(r)), LIMITS, NOW).records == [r]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "cycle": -1}, "bad_field:cycle"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "cycle": True}, "bad_field:cycle"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "site": 5}, "bad_field:site"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "type": ["pump"]}, "bad_field:type"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "life": 2}, "bad_field:life"),
        ({"asset_id": "a\nb", "ts": NOW, "sensors": {"s1": 1}}, "bad_field:asset_id"),
        ({"asset_id": " a", "ts": NOW, "sensors": {"s1": 1}}, "bad_field:asset_id"),
        ({"asset_id": "a", "ts": True, "sensors": {"s1": 1}}, "bad_field:ts"),
        ({"asset_id": "a", "ts": 0, "sensors": {"s1": 1}}, "ts_too_old"),
        ({"asset_id": "a", "ts": "2026-01-01T00:00:00", "sensors": {"s1": 1}}, "bad_field:ts"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s\n1": 1}}, "bad_name:sensors"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": None}}, "non_numeric:s1"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": [1]}}, "non_numeric:s1"),
        ({"asset_id": "a", "ts": NOW, "sensors": {"s1": 1}, "settings": {"x": "y"}},
         "non_numeric:settings.x"),
        ({"asset_id": "a", "ts": NOW, "sensors": {f"s{i}": 1 for i in range(21)}},
         "too_many_fields:sensors"),
    ],
)  # fmt: skip
def test_rejects_with_reason(record: dict[str, object], reason: str) -> None:
    assert one(record) == reason


def test_frame_limits_and_future() -> None:
    many = {"records": [{"asset_id": "a", "ts": NOW + i, "sensors": {"s": 1}} for i in range(51)]}
    assert one(many) == "too_many_records"
    assert one({"records": []}) == "empty_frame"
    assert one({"asset_id": "a", "ts": NOW + 61_000, "sensors": {"s": 1}}) == "ts_in_future"
    assert one({"asset_id": "a", "ts": NOW + 59_000, "sensors": {"s": 1}}) is None


def test_nan_in_a_frame_costs_only_its_record() -> None:
    raw = json.dumps({"records": [
        {"asset_id": "a", "ts": NOW, "sensors": {"s1": float("nan")}},
        {"asset_id": "b", "ts": NOW, "sensors": {"s1": -float("inf")}},
        {"asset_id": "c", "ts": NOW, "sensors": {"s1": 2.0}},
    ]}).encode()  # fmt: skip
    d = decode(raw, LIMITS, NOW)
    assert [r.asset_id for r in d.records] == ["c"]
    assert [(x.reason, x.asset_id, x.frame_index) for x in d.dead] == [
        ("non_finite:s1", "a", 0),
        ("non_finite:s1", "b", 1),
    ]
    assert b"NaN" in d.dead[0].payload


def deep_frame(depth: int) -> bytes:
    good = b'{"asset_id":"good","ts":%d,"sensors":{"s1":1.0}}' % NOW
    bad = b'{"asset_id":"bad","ts":1,"sensors":{"s1":1},"x":'
    bad += b"[" * depth + b"]" * depth + b"}"
    return b'{"records":[' + good + b"," + bad + b", " + good.replace(b"good", b"also") + b"]}"


# depth 1022: the frame is too deep for orjson (1024 levels), the record alone is not
@pytest.mark.parametrize(
    ("depth", "reason"),
    [(990, "ts_too_old"), (1021, "ts_too_old"), (1022, "ts_too_old"), (1030, "invalid_json"),
     (5000, "invalid_json")],
)  # fmt: skip
def test_a_record_too_deep_for_the_parser_costs_only_itself(depth: int, reason: str) -> None:
    raw = deep_frame(depth)
    d = decode(raw, Limits(max_bytes=100_000), NOW)
    assert [r.asset_id for r in d.records] == ["good", "also"]
    ((dead, index, payload),) = [(x.reason, x.frame_index, x.payload) for x in d.dead]
    assert (dead, index) == (reason, 1)
    assert payload.startswith(b'{"asset_id":"bad"') and payload.endswith(b"]}") and payload in raw


def test_a_broken_frame_is_still_invalid_json() -> None:
    for raw in (deep_frame(2000)[:-2], b'{"records": [1, 2}', b'{"other": [' + b"[" * 2000 + b"]"):
        assert [x.reason for x in decode(raw, LIMITS, NOW).dead] == ["invalid_json"]


def test_too_large_keeps_original_bytes() -> None:
    raw = b"x" * 10_001
    (dead,) = decode(raw, LIMITS, NOW).dead
    assert (dead.reason, dead.payload) == ("too_large", raw)


def test_parse_ts_offsets() -> None:
    assert parse_ts("2026-01-01T01:00:00+01:00") == NOW
    assert parse_ts(1.767225600e12) == NOW


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    d = decode(raw, LIMITS, NOW)
    assert len(d.records) + len(d.dead) >= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["asset_id", "ts", "sensors", "cycle", "settings", "site", "records"]),
        json_values,
    )
)
def test_arbitrary_json_objects_never_raise(message: dict[str, object]) -> None:
    raw = json.dumps(message).encode()
    d = decode(raw, LIMITS, NOW)
    for r in d.records:
        assert r.asset_id and all(isinstance(v, float | int) for v in r.sensors.values())
    for x in d.dead:
        assert x.reason
