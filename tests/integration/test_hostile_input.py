"""A torture corpus against a real worker with InfluxDB: every bad message is dead-lettered
with its reason, every good record (odd but valid ids and sensor names included) is processed,
the worker stays ready, and InfluxDB holds only well-formed series.

Good records are sent one per message and interleaved with the bad ones, so a bad message that
stalled or crashed the agent would cost its good neighbours.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from streams.core.line_protocol import clean_name
from streams.core.routing import partition_for
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from tests.topics import read_topic

pytestmark = pytest.mark.integration

WARM_UP, PER_ASSET, PARTITIONS = 5, 30, 4
NOW_MS = int(time.time() * 1000)
BASE_MS = NOW_MS - 7_200_000
# Odd but valid: printable, no surrounding space. They must reach InfluxDB intact (a backslash
# before an ordinary character is stored as it is, see streams/core/line_protocol.py).
GOOD_ASSETS = ["pump 1", "a,b=c", 'say "hi"', "back\\slash", "泵-7", "ünïcödé", "x" * 128]
GOOD_SENSORS = ["temp C", "p,1", "k=v", 'q"t', "b\\s", "s1", "δ"]
CONTROL = [chr(c) for c in range(32)] + ["\x7f"]


def rec(asset: object = "pump 1", ts: object = None, sensors: object = None, **kw: object) -> bytes:
    body: dict[str, object] = {"asset_id": asset, "ts": BASE_MS if ts is None else ts}
    body["sensors"] = {"s1": 1.0, "s2": 2.0} if sensors is None else sensors
    return orjson.dumps(body | kw)


def raw_rec(sensors_json: str, asset: str = "raw-1") -> bytes:
    return f'{{"asset_id":"{asset}","ts":{BASE_MS},"sensors":{sensors_json}}}'.encode()


def good_frame_with_bad_neighbours() -> tuple[bytes, list[str]]:
    good = {"asset_id": "frame-ok", "ts": BASE_MS, "sensors": {"s1": 1.0}}
    records = [good, {"ts": BASE_MS, "sensors": {"s1": 1}}, good, 5, {**good, "ts": BASE_MS + 1}]
    return orjson.dumps({"records": records}), [
        "missing_field:asset_id",
        "duplicate_record",
        "not_object",
    ]


# (message, reasons its dead letters must carry)
CORPUS: list[tuple[bytes, list[str]]] = [
    (b'{"asset_id": ', ["invalid_json"]),
    (b'{"records": [{"asset_id": "a", "ts": 1', ["invalid_json"]),
    (b"[" * 100_000, ["invalid_json"]),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, ["invalid_json"]),
    (b"", ["invalid_json"]),
    (b"\xff\xfe\x00garbage", ["invalid_json"]),
    (b"{'asset_id': 'single quotes'}", ["invalid_json"]),
    (b"null", ["not_object"]),
    (b"[1, 2]", ["not_object"]),
    (b'"just a string"', ["not_object"]),
    (b'{"foo": 1}', ["unknown_type"]),
    (orjson.dumps({"ts": BASE_MS, "sensors": {"s1": 1}}), ["missing_field:asset_id"]),
    (orjson.dumps({"asset_id": "m", "sensors": {"s1": 1}}), ["missing_field:ts"]),
    (orjson.dumps({"asset_id": "m", "ts": BASE_MS}), ["missing_field:sensors"]),
    (rec(asset=None), ["missing_field:asset_id"]),
    (rec(asset=7), ["bad_field:asset_id"]),
    (rec(asset=""), ["bad_field:asset_id"]),
    (rec(asset="x" * 129), ["bad_field:asset_id"]),
    (rec(asset=" leading"), ["bad_field:asset_id"]),
    (rec(asset="line\nbreak"), ["bad_field:asset_id"]),
    (rec(asset="nul\x00byte"), ["bad_field:asset_id"]),
    (rec(asset="sep\u2028arator"), ["bad_field:asset_id"]),
    (rec(asset={"nested": "id"}), ["bad_field:asset_id"]),
    (b'{"asset_id":"\\ud800","ts":1,"sensors":{"s1":1}}', ["bad_field:asset_id"]),
    (rec(ts="yesterday"), ["bad_field:ts"]),
    (rec(ts="2026-01-01T00:00:00"), ["bad_field:ts"]),  # no zone
    (rec(ts=True), ["bad_field:ts"]),
    (rec(ts=[BASE_MS]), ["bad_field:ts"]),
    (rec(ts=0), ["ts_too_old"]),
    (rec(ts=-5), ["ts_too_old"]),
    (rec(ts="1970-01-01T00:00:00Z"), ["ts_too_old"]),
    (rec(ts=32_503_680_000_000), ["ts_in_future"]),  # year 3000
    (rec(ts=1e300), ["ts_in_future"]),
    (b'{"asset_id":"n","ts":NaN,"sensors":{"s1":1}}', ["bad_field:ts"]),
    (rec(sensors=[1, 2]), ["bad_field:sensors"]),
    (rec(sensors={}), ["empty_field:sensors"]),
    (rec(sensors={"s1": "12"}), ["non_numeric:s1"]),
    (rec(sensors={"s1": True}), ["non_numeric:s1"]),
    (rec(sensors={"s1": None}), ["non_numeric:s1"]),
    (rec(sensors={"s1": {"deep": {"er": 1}}}), ["non_numeric:s1"]),
    (raw_rec('{"s1":NaN}'), ["non_finite:s1"]),
    (raw_rec('{"s1":Infinity}'), ["non_finite:s1"]),
    (raw_rec('{"s1":-Infinity}'), ["non_finite:s1"]),
    (raw_rec('{"s1":1e999}'), ["non_finite:s1"]),
    (raw_rec('{"s1":1.0,"s1":"dup"}'), ["non_numeric:s1"]),  # duplicate key: last one wins
    (rec(sensors={"s\n1": 1.0}), ["bad_name:sensors"]),
    (rec(sensors={"": 1.0}), ["bad_name:sensors"]),
    (rec(sensors={"tab\there": 1.0}), ["bad_name:sensors"]),
    (rec(sensors={f"s{i}": float(i) for i in range(10_000)}), ["too_many_fields:sensors"]),
    (rec(settings="x"), ["bad_field:settings"]),
    (rec(settings={"op": "fast"}), ["non_numeric:settings.op"]),
    (rec(cycle=-1), ["bad_field:cycle"]),
    (rec(cycle="3"), ["bad_field:cycle"]),
    (rec(cycle=1.5), ["bad_field:cycle"]),
    (rec(site=5), ["bad_field:site"]),
    (rec(line="a\r\nb"), ["bad_field:line"]),
    (orjson.dumps({"records": {"a": 1}}), ["frame_not_list"]),
    (orjson.dumps({"records": []}), ["empty_frame"]),
    (orjson.dumps({"records": [1] * 10_001}), ["too_many_records"]),
    good_frame_with_bad_neighbours(),
]


def good_messages() -> list[tuple[str, bytes]]:
    out = []
    for n, asset in enumerate(GOOD_ASSETS):
        for i in range(PER_ASSET):
            sensors = {s: float(10 * k + (i * (n + 3)) % 7) for k, s in enumerate(GOOD_SENSORS)}
            out.append((asset, rec(asset, BASE_MS + i * 60_000, sensors, site="plant 1")))
    return out


def influx_series(url: str, db: str, q: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"db": db, "q": q})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=20) as r:
        body = json.loads(r.read())
    return list(body["results"][0].get("series", []))


@pytest.fixture
def worker(
    tansu: Server, influxdb1: Server, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        anomaly_warm_up=str(WARM_UP), alert_stale_after_s="7200",
    )  # fmt: skip
    proc = start_worker(env, tmp_path)
    yield proc, env
    proc.kill(signal.SIGKILL)  # a stalled worker would not stop on SIGTERM


def send_all(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 << 20)
    try:
        for key, value in messages:
            producer.send(
                topic, key=key.encode(), value=value, partition=partition_for(key, PARTITIONS)
            )
        producer.flush(30)
    finally:
        producer.close()


def run_corpus(
    worker: tuple[WorkerProcess, dict[str, str]],
    corpus: list[tuple[bytes, list[str]]],
    influx_url: str,
    timeout: float = 60,
    extra_ok: int = 0,
) -> None:
    proc, env = worker
    good = good_messages()
    # interleave: a bad message after every few good ones, spread over all partitions
    messages: list[tuple[str, bytes]] = []
    bad = [(f"bad-{i}", value) for i, (value, _) in enumerate(corpus)]
    step = max(1, len(good) // max(1, len(bad)))
    for i, item in enumerate(good):
        messages.append(item)
        if i % step == 0 and bad:
            messages.append(bad.pop(0))
    messages += bad
    send_all(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], messages)

    expected_ok = len(good) + extra_ok
    expected_reasons = Counter(r for _, reasons in corpus for r in reasons)
    dead = sum(expected_reasons.values())

    def done() -> bool:
        assert proc.proc.poll() is None, "worker exited"
        ok = proc.metric("pmaint_records_total", outcome="ok")
        return ok >= expected_ok and proc.metric("pmaint_dead_letters_total") >= dead

    wait_until(done, timeout, "every good record processed and every bad one dead-lettered")
    time.sleep(1)
    assert proc.ready()
    assert proc.metric("pmaint_records_total", outcome="ok") == expected_ok

    letters = [
        (m.value, dict(m.headers))
        for m in read_topic(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_DLQ"])
    ]
    reasons = Counter(h["pmaint.reason"].decode() for _, h in letters)
    assert reasons == expected_reasons
    originals = {value for value, _ in corpus}
    by_digest = {hashlib.sha256(v).hexdigest().encode(): v for v in originals}
    for value, headers in letters:  # a whole bad message goes to the DLQ byte for byte ...
        if "pmaint.truncated" in headers:  # ... or, over 64 KiB, cut with its size and digest
            original = by_digest[headers["pmaint.sha256"]]
            assert value == original[: len(value)] and len(value) == 65_536
            assert int(headers["pmaint.original_bytes"]) == len(original)
        elif "pmaint.frame_index" not in headers:
            assert value in originals, value[:80]
        assert int(headers["pmaint.source.offset"]) >= 0

    db = env["PMAINT_INFLUX_DATABASE"]
    counts = influx_series(influx_url, db, 'SELECT count("score") FROM "anomaly" GROUP BY *')
    stored = {s["tags"]["asset_id"]: s["values"][0][1] for s in counts}
    assert stored == {clean_name(a): PER_ASSET - WARM_UP for a in GOOD_ASSETS}
    for q in ("SHOW TAG VALUES WITH KEY =~ /.*/", "SHOW FIELD KEYS", "SHOW MEASUREMENTS"):
        for series in influx_series(influx_url, db, q):
            for row in series["values"]:
                for text in row:
                    assert not any(c in str(text) for c in CONTROL), (q, row)
    tags = influx_series(influx_url, db, 'SHOW TAG VALUES FROM "anomaly" WITH KEY = "asset_id"')
    assert {v for _, v in tags[0]["values"]} == {clean_name(a) for a in GOOD_ASSETS}
    fields = influx_series(influx_url, db, 'SHOW FIELD KEYS FROM "anomaly"')
    keys = {k for k, _ in fields[0]["values"]}
    allowed = {"score", "threshold", "is_anomaly"} | {f"c_{clean_name(s)}" for s in GOOD_SENSORS}
    assert {"score", "threshold", "is_anomaly"} <= keys <= allowed, keys - allowed
    sites = influx_series(influx_url, db, 'SHOW TAG VALUES FROM "anomaly" WITH KEY = "site"')
    assert [v for _, v in sites[0]["values"]] == ["plant 1"]


@pytest.mark.timeout(120)
def test_torture_corpus_is_dead_lettered_and_good_traffic_survives(
    worker: tuple[WorkerProcess, dict[str, str]], influxdb1: Server
) -> None:
    assert len(CORPUS) >= 30
    run_corpus(worker, CORPUS, influxdb1.extra["url"], extra_ok=2)  # the mixed frame's good two


# Integers beyond the float range once raised OverflowError out of the decoder and crashed the
# agent, leaving the batch's good neighbours unprocessed.
@pytest.mark.timeout(90)
def test_integers_beyond_float_range_are_dead_lettered(
    worker: tuple[WorkerProcess, dict[str, str]], influxdb1: Server
) -> None:
    huge = "1" + "0" * 400  # valid JSON, finite as an integer, no float can hold it
    corpus = [
        (raw_rec(f'{{"s1":{huge}}}'), ["non_finite:s1"]),
        (f'{{"asset_id":"h","ts":{huge},"sensors":{{"s1":1}}}}'.encode(), ["bad_field:ts"]),
    ]
    run_corpus(worker, corpus, influxdb1.extra["url"], timeout=25)


# A too_large dead letter once carried the whole message, over the producer's request limit,
# and was retried forever, stalling every partition of the worker; now its payload is cut.
@pytest.mark.timeout(90)
def test_messages_over_the_size_limit_are_dead_lettered(
    worker: tuple[WorkerProcess, dict[str, str]], influxdb1: Server
) -> None:
    # PMAINT_MAX_MESSAGE_BYTES is left at its 1 MiB default: both are over it
    corpus = [
        (rec(sensors={"s1": 1.0}, pad="x" * (2 << 20)), ["too_large"]),
        (rec(sensors={"s1": 1.0}, pad="x" * (10 << 20)), ["too_large"]),
    ]
    run_corpus(worker, corpus, influxdb1.extra["url"], timeout=25)
