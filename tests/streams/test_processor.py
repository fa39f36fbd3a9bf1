"""Batch processing: routing per asset, dead letters with their source, metrics."""

from __future__ import annotations

import orjson

from streams.fleet import Fleet
from streams.metrics import Metrics
from streams.processor import Inbound, TelemetryProcessor, frame_bytes
from streams.routing import partition_for
from streams.schema import Limits, decode

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
        again = decode(frame_bytes(records), Limits(), int(NOW * 1000))
        assert [r.asset_id for r in again.records] == [r.asset_id for r in records]
    assert sum(len(v) for v in result.forward.values()) == len(assets) - len(here)


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
