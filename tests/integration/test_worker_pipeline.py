"""The real worker against the real broker: good traffic counted, every bad kind dead-lettered."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from streams.gateway import Gateway, simulated
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.topics import read_topic

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)
GOOD = {"asset_id": "bad-traffic", "ts": NOW_MS, "sensors": {"s1": 1.0}}


def rec(**changes: object) -> dict[str, object]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not None}


def bad_messages() -> list[tuple[bytes, str]]:
    """One message per dead-letter kind, with the reason the worker must give."""
    dumps = orjson.dumps
    return [
        (b'{"asset_id": "x", "ts": ', "invalid_json"),
        (b"[1, 2, 3]", "not_object"),
        (dumps({"hello": "world"}), "unknown_type"),
        (dumps(rec(asset_id=None)), "missing_field:asset_id"),
        (dumps(rec(asset_id="")), "bad_field:asset_id"),
        (dumps(rec(ts=None)), "missing_field:ts"),
        (dumps(rec(ts="last tuesday")), "bad_field:ts"),
        (dumps(rec(ts=NOW_MS + 10 * 86_400_000)), "ts_in_future"),
        (dumps(rec(sensors=None)), "missing_field:sensors"),
        (dumps(rec(sensors=[1, 2])), "bad_field:sensors"),
        (dumps(rec(sensors={})), "empty_field:sensors"),
        (dumps(rec(sensors={"s1": "hot"})), "non_numeric:s1"),
        (json.dumps(rec(sensors={"s7": float("nan")})).encode(), "non_finite:s7"),
        (json.dumps(rec(sensors={"s9": float("inf")})).encode(), "non_finite:s9"),
        (dumps(rec(sensors={f"s{i}": 1.0 for i in range(300)})), "too_many_fields:sensors"),
        (b'{"pad": "' + b"x" * 70_000 + b'"}', "too_large"),
        (dumps({"records": {"a": 1}}), "frame_not_list"),
    ]


def mixed_frame() -> tuple[bytes, int, list[str]]:
    """A frame of good records with a duplicate and a bad one among them."""
    records = [rec(ts=NOW_MS - i) for i in range(5)]
    records.append(rec(ts=NOW_MS - 1))  # duplicate of records[1]
    records.append(rec(sensors={"s1": True}))
    return orjson.dumps({"records": records}), 5, ["duplicate_record", "non_numeric:s1"]


@pytest.fixture
def worker(tansu: Server, topic_prefix: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix, max_message_bytes="65536", max_sensors="100"
    )
    proc = start_worker(env, tmp_path)
    yield proc
    proc.kill()


def test_good_counted_bad_dead_lettered(
    worker: WorkerProcess, tansu: Server, topic_prefix: str
) -> None:
    bootstrap = tansu.extra["bootstrap"]
    settings = load_settings(
        kafka_bootstrap=bootstrap,
        topic_telemetry=f"{topic_prefix}.telemetry",
        topic_dlq=f"{topic_prefix}.telemetry.dlq",
        topic_alerts=f"{topic_prefix}.alerts",
    )
    framed = Gateway(settings, frame=50)
    framed.send(simulated(assets=12, records=3000, seed=1))
    framed.close()
    single = Gateway(settings, frame=1)
    single.send(simulated(assets=5, records=500, seed=2))
    single.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    bad = bad_messages()
    for value, _ in bad:
        producer.send(settings.topic_telemetry, key=b"bad-traffic", value=value)
    frame, frame_good, frame_reasons = mixed_frame()
    producer.send(settings.topic_telemetry, key=b"bad-traffic", value=frame)
    producer.flush()
    producer.close()

    expected_ok = 3000 + 500 + frame_good
    expected_dead = Counter([reason for _, reason in bad] + frame_reasons)
    n_dead = sum(expected_dead.values())

    def caught_up() -> bool:
        ok = worker.metric("pmaint_records_total", outcome="ok")
        dead = worker.metric("pmaint_records_total", outcome="dead_letter")
        return ok >= expected_ok and dead >= n_dead

    wait_until(caught_up, 60, "worker processing")
    assert worker.metric("pmaint_records_total", outcome="ok") == expected_ok
    assert worker.metric("pmaint_records_total", outcome="dead_letter") == n_dead
    assert worker.metric("pmaint_dead_letters_total", reason="invalid_json") == 1
    assert worker.metric("pmaint_dead_letters_total", reason="non_finite") == 2

    letters = [
        {k: v.decode() for k, v in m.headers} | {"value": m.value.decode(errors="replace")}
        for m in read_topic(bootstrap, settings.topic_dlq)
    ]
    assert Counter(x["pmaint.reason"] for x in letters) == expected_dead
    for letter in letters:
        assert letter["pmaint.source.topic"] == settings.topic_telemetry
        assert int(letter["pmaint.source.offset"]) >= 0
        assert int(letter["pmaint.dead_at_ms"]) >= NOW_MS
    nan_letter = next(x for x in letters if x["pmaint.reason"] == "non_finite:s7")
    assert "NaN" in nan_letter["value"]
    dup = next(x for x in letters if x["pmaint.reason"] == "duplicate_record")
    assert dup["pmaint.frame_index"] == "5"

    status, body = worker.get("/ready")
    assert status == 200 and json.loads(body)["assets"] == 12 + 1  # the 5 overlap the 12
    assert worker.get("/health")[0] == 200
    assert worker.metric("pmaint_consumer_lag") == 0
