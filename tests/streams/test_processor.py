"""Batch processing: routing per asset, dead letters with their source, metrics."""

from __future__ import annotations

import orjson
import pytest

from streams.core.fleet import Fleet
from streams.core.metrics import Metrics
from streams.core.processor import Inbound, TelemetryProcessor, forward_frames, join_frame
from streams.core.routing import partition_for
from streams.core.schema import Limits, Telemetry, decode

NOW = 1_767_225_600.0


def processor(fleet: Fleet | None = None) -> TelemetryProcessor:
    return TelemetryProcessor(
        Limits(), 4, Fleet() if fleet is None else fleet, Metrics(), clock=lambda: NOW
    )


def record(asset: str, i: int = 0) -> dict[str, object]:
    return {"asset_id": asset, "ts": int(NOW * 1000) - i, "sensors": {"s1": float(i)}}


def test_records_of_other_partitions_are_forwarded_home() -> None:
    assets = [f"asset-{i:03d}" for i in range(20)]
    frame = orjson.dumps({"records": [record(a) for a in assets]})
    fleet = Fleet()
    result = processor(fleet).process([Inbound("t", 0, 7, frame)])
    here = [a for a in assets if partition_for(a, 4) == 0]
    assert sorted(r.asset_id for r, _ in result.records) == sorted(here)
    assert sorted(fleet.assets) == sorted(here)
    for part, records in result.forward.items():
        assert part != 0
        assert {partition_for(r.asset_id, 4) for r in records} == {part}
        (frame,), _ = forward_frames(records, Limits())
        again = decode(join_frame(frame), Limits(), int(NOW * 1000))
        assert [r.asset_id for r in again.records] == [r.asset_id for r in records]
    assert sum(len(v) for v in result.forward.values()) == len(assets) - len(here)


@pytest.mark.parametrize(("max_bytes", "max_records"), [(2048, 10_000), (1 << 20, 7), (4096, 5)])
def test_forwarded_frames_are_frames_the_worker_accepts(max_bytes: int, max_records: int) -> None:
    limits = Limits(max_bytes=max_bytes, max_records=max_records)
    ts = int(NOW * 1000)
    records = [
        Telemetry(f"a{i % 3}", ts - i, {f"s{k}": k * 0.1 + i for k in range(1 + i % 9)})
        for i in range(300)
    ]
    frames, alone = forward_frames(records, limits)
    assert alone == [] and len(frames) > 1
    again = []
    for frame in frames:
        raw = join_frame(frame)
        assert len(raw) <= max_bytes and len(frame) <= max_records
        decoded = decode(raw, limits, ts)
        assert decoded.dead == []
        again += decoded.records
    assert again == records  # every record, in order


def test_a_record_bigger_than_any_frame_comes_back_apart() -> None:
    ts = int(NOW * 1000)
    big = Telemetry("big", ts, {f"s{k}": 1.0 for k in range(200)})
    small = Telemetry("small", ts, {"s1": 1.0})
    frames, alone = forward_frames([small, big, small], Limits(max_bytes=1024))
    assert [[r for r, _ in f] for f in frames] == [[small, small]]
    assert [r for r, _ in alone] == [big] and len(alone[0][1]) > 1024


def test_dead_letters_keep_their_source_and_count() -> None:
    p = processor()
    result = p.process([Inbound("t", 1, 42, b"nope"), Inbound("t", 1, 43, b"[]")])
    p.count(result)
    assert [(d.reason, s.offset) for d, s in result.dead] == [
        ("invalid_json", 42),
        ("not_object", 43),
    ]
    assert p.metrics.records.labels("dead_letter")._value.get() == 2
    assert p.metrics.dead_letters.labels("invalid_json")._value.get() == 1
