"""Hostile ingest against a real worker, Tansu and InfluxDB 1.6.7 (issue 13, rows D1, D2, D3,
D9, D10): misrouted records are forwarded in frames the worker accepts, nothing wedges, a record
nested too deep costs only itself, consumer lag is right after a restart, and assets whose names
differ only by a backslash stay distinct in InfluxDB.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from streams.core.points import anomaly_point
from streams.core.routing import partition_for
from streams.core.signals import AnomalySignal
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.influx import victoria_export, write_points
from tests.integration.test_hostile_input import influx_series
from tests.topics import read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 4
NOW_MS = int(time.time() * 1000)


def misrouted(asset: str) -> int:
    """A partition that is not ``asset``'s home."""
    return (partition_for(asset, PARTITIONS) + 1) % PARTITIONS


def frame(
    asset: str, first: int, n: int, sensors: int = 1, t0: int = NOW_MS - 5 * 3600_000
) -> bytes:
    records = [
        {
            "asset_id": asset,
            "ts": t0 + i * 1000,
            "sensors": {f"sensor_{k:03d}": float(k + i % 7) for k in range(sensors)},
        }
        for i in range(first, first + n)
    ]
    return orjson.dumps({"records": records})


def send(bootstrap: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    """Send every ``(partition, value)`` and flush once."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 << 20)
    try:
        for partition, value in messages:
            producer.send(topic, value=value, partition=partition)
        producer.flush(60)
    finally:
        producer.close()


def send_in_one_batch(worker: Worker, messages: list[tuple[int, bytes]]) -> None:
    """Send while the worker is stopped, so that its next fetch reads them all at once."""
    proc, env = worker
    proc.proc.send_signal(signal.SIGSTOP)
    try:
        send(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], messages)
    finally:
        proc.proc.send_signal(signal.SIGCONT)


Worker = tuple[WorkerProcess, dict[str, str]]


@pytest.fixture
def worker_factory(
    tansu: Server, influxdb1: Server, topic_prefix: str, tmp_path: Path
) -> Iterator[object]:
    started: list[WorkerProcess] = []
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        anomaly_warm_up="5", alert_stale_after_s="86400",
    )  # fmt: skip

    def start(**settings: str) -> Worker:
        full = env | {f"PMAINT_{k.upper()}": v for k, v in settings.items()}
        proc = start_worker(full, tmp_path)
        started.append(proc)
        return proc, full

    yield start
    for proc in started:
        proc.kill(signal.SIGKILL)


@pytest.fixture
def worker(worker_factory: object) -> Worker:
    return worker_factory()  # type: ignore[operator,no-any-return]


def dead_letters(env: dict[str, str]) -> list[tuple[bytes, dict[str, bytes]]]:
    return [
        (m.value, dict(m.headers))
        for m in read_topic(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_DLQ"])
    ]


def wait_for_records(proc: WorkerProcess, n: int, timeout: float) -> None:
    def done() -> bool:
        assert proc.proc.poll() is None, "worker exited"
        return proc.metric("pmaint_records_total", outcome="ok") >= n

    try:
        wait_until(done, timeout, f"{n} records processed")
    except RuntimeError:
        ok = proc.metric("pmaint_records_total", outcome="ok")
        dead = proc.metric("pmaint_dead_letters_total")
        raise AssertionError(
            f"{ok:.0f} of {n} records processed, {dead:.0f} dead letters"
        ) from None


# D1: all misrouted records of a batch were merged into one forwarded frame of 12,000 records,
# which the home partition dead-lettered as too_many_records: the asset was never seen.
@pytest.mark.timeout(180)
def test_forwarded_records_are_split_into_frames_the_worker_accepts(worker: Worker) -> None:
    proc, env = worker
    asset, wrong = "fwd-count", misrouted("fwd-count")
    messages = [(wrong, frame(asset, 0, 6000)), (wrong, frame(asset, 6000, 6000))]
    send_in_one_batch(worker, messages)
    wait_for_records(proc, 12_000, 150)
    time.sleep(1)
    assert proc.metric("pmaint_records_total", outcome="ok") == 12_000
    assert proc.metric("pmaint_rerouted_records_total") == 12_000
    assert proc.metric("pmaint_dead_letters_total") == 0
    assert dead_letters(env) == []
    _, body = proc.get(f"/assets/{asset}")
    assert orjson.loads(body)["asset_id"] == asset


# D2: three frames of 571 kB forwarded as one of 1.71 MB: MessageSizeTooLargeError retried
# forever, every partition stopped and /ready stayed 200.
@pytest.mark.timeout(180)
def test_forwarding_never_wedges_on_the_producer_size_limit(worker: Worker) -> None:
    proc, env = worker
    asset, wrong = "fwd-size15", misrouted("fwd-size15")
    messages = [(wrong, frame(asset, i * 1400, 1400, sensors=20)) for i in range(3)]
    assert all(500_000 < len(v) < 1_048_576 for _, v in messages)
    send_in_one_batch(worker, messages)
    wait_for_records(proc, 4200, 150)
    # the other partitions still flow
    other = next(p for p in range(PARTITIONS) if p not in (wrong, partition_for(asset, 4)))
    probe = next(f"probe-{i}" for i in range(1000) if partition_for(f"probe-{i}", 4) == other)
    send(
        env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], [(other, frame(probe, 0, 3))]
    )
    wait_for_records(proc, 4203, 30)
    assert proc.ready()
    assert proc.metric("pmaint_dead_letters_total") == 0


# D2: /ready must say when outputs are stuck, and recover once they go through.
@pytest.mark.timeout(120)
def test_ready_turns_false_while_outputs_stay_unacknowledged(
    worker_factory: object, influxdb1: Server
) -> None:
    proc, env = worker_factory(ready_send_failure_s="2")  # type: ignore[operator]
    asset = "stuck-1"
    influxdb1.pause()
    try:
        send(
            env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"],
            [(partition_for(asset, 4), frame(asset, 0, 20))],
        )  # fmt: skip
        wait_until(lambda: not proc.ready(), 30, "/ready 503 while InfluxDB is paused")
        status, body = proc.get("/ready")
        assert status == 503 and orjson.loads(body)["outputs_unacknowledged_s"] >= 2
    finally:
        influxdb1.resume()
    wait_for_records(proc, 20, 60)
    wait_until(proc.ready, 10, "/ready 200 again")


# D3: one record nested deeper than the JSON parser accepts cost the whole frame.
@pytest.mark.timeout(120)
def test_a_record_nested_too_deep_costs_only_itself(worker: Worker) -> None:
    proc, env = worker
    good = b'{"asset_id":"nest-good","ts":%d,"sensors":{"s1":1.0,"s2":2.0}}'
    messages = []
    for n, depth in enumerate((990, 5000)):
        bad = b'{"asset_id":"nest-bad","ts":1,"sensors":{"s1":1},"x":'
        bad += b"[" * depth + b"]" * depth + b"}"
        raw = b'{"records":[' + good % (NOW_MS - 60_000 * (n + 1)) + b"," + bad + b"]}"
        messages.append((partition_for("nest-good", 4), raw))
    send(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], messages)
    wait_for_records(proc, 2, 60)
    wait_until(lambda: proc.metric("pmaint_dead_letters_total") >= 2, 30, "two dead letters")
    letters = dead_letters(env)
    got = sorted((h["pmaint.reason"], h["pmaint.frame_index"]) for _, h in letters)
    assert got == [(b"invalid_json", b"1"), (b"ts_too_old", b"1")]
    for value, _ in letters:
        assert value.startswith(b'{"asset_id":"nest-bad"') and b"[" * 990 in value
    assert proc.metric("pmaint_records_total", outcome="ok") == 2


# D9: after kill -9 and a restart with no new traffic, the lag was the whole partition.
@pytest.mark.timeout(180)
def test_consumer_lag_is_right_after_a_restart(worker_factory: object) -> None:
    proc, env = worker_factory()  # type: ignore[operator]
    assets = [f"lag-{i}" for i in range(40)]
    messages = [(partition_for(a, 4), frame(a, i, 1)) for a in assets for i in range(25)]
    send(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], messages)
    wait_for_records(proc, len(messages), 90)
    wait_until(lambda: lag_samples(proc) == [0] * PARTITIONS, 30, "lag 0 before the restart")
    time.sleep(3)  # offsets committed (every second)
    proc.kill(signal.SIGKILL)
    restarted, _ = worker_factory()  # type: ignore[operator]
    wait_until(lambda: len(lag_samples(restarted)) == PARTITIONS, 30, "lag reported")
    time.sleep(3)  # the consumer knows every partition's end by now
    assert restarted.metric("pmaint_records_total", outcome="ok") == 0  # nothing replayed
    assert lag_samples(restarted) == [0] * PARTITIONS


def lag_samples(proc: WorkerProcess) -> list[float]:
    _, text = proc.get("/metrics")
    return [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("pmaint_consumer_lag{")
    ]


# D10: assets bs\x and bs/x both landed in series bs/x (31 points instead of 62).
@pytest.mark.timeout(120)
def test_assets_differing_by_a_backslash_stay_distinct(worker: Worker, influxdb1: Server) -> None:
    proc, env = worker
    per_asset, warm_up = 31, 5
    assets = ["bs\\x", "bs/x"]
    messages = [(partition_for(a, 4), frame(a, 0, per_asset, sensors=3)) for a in assets]
    refused = [(partition_for(a, 4), frame(a, 0, 2)) for a in ("tr\\", "a\\\\b", "c\\,d")]
    send(env["PMAINT_KAFKA_BOOTSTRAP"], env["PMAINT_TOPIC_TELEMETRY"], messages + refused)
    db = env["PMAINT_INFLUX_DATABASE"]
    q = 'SELECT count("score") FROM "anomaly" GROUP BY "asset_id"'

    def stored() -> dict[str, int]:
        series = influx_series(influxdb1.extra["url"], db, q)
        return {s["tags"]["asset_id"]: s["values"][0][1] for s in series}

    want = {a: per_asset - warm_up for a in assets}
    try:
        wait_until(lambda: stored() == want, 60, f"InfluxDB series {want}")
    except RuntimeError:
        raise AssertionError(f"InfluxDB holds {stored()}, not {want}") from None
    wait_until(lambda: proc.metric("pmaint_dead_letters_total") >= 6, 30, "six dead letters")
    reasons = {h["pmaint.reason"] for _, h in dead_letters(env)}
    assert reasons == {b"bad_field:asset_id"}


def peak_rss_mb(proc: WorkerProcess) -> float:
    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024


def send_gzip(env: dict[str, str], partition: int, values: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=env["PMAINT_KAFKA_BOOTSTRAP"], acks="all", compression_type="gzip",
        max_request_size=256 << 20,
    )  # fmt: skip
    try:
        for value in values:
            producer.send(env["PMAINT_TOPIC_TELEMETRY"], value=value, partition=partition)
        producer.flush(60)
    finally:
        producer.close()


def gzip_bomb(asset: str, inflated: int) -> bytes:
    head = b'{"asset_id":"%s","ts":%d,"sensors":{"s1":1.0},"pad":"' % (asset.encode(), NOW_MS)
    return head + b"x" * inflated + b'"}'


# Decompression happened before the size check: a 100 kB gzip'd message inflating to 100 MB
# cost +251 MB RSS. Now a batch inflates at most PMAINT_MAX_INFLATED_BATCH_BYTES.
@pytest.mark.timeout(150)
def test_a_gzip_bomb_is_dead_lettered_without_inflating_it(worker_factory: object) -> None:
    proc, env = worker_factory(max_inflated_batch_bytes=str(4 << 20))  # type: ignore[operator]
    asset = "zip-1"
    home = partition_for(asset, PARTITIONS)
    before = peak_rss_mb(proc)
    send_gzip(env, home, [frame(asset, 0, 10)])
    send_gzip(env, home, [gzip_bomb(asset, 100 << 20)])
    send_gzip(env, home, [frame(asset, 10, 10)])
    wait_for_records(proc, 20, 60)
    wait_until(lambda: proc.metric("pmaint_dead_letters_total") >= 1, 30, "a dead letter")
    grown = peak_rss_mb(proc) - before
    print(f"gzip bomb (100 MiB inflated): worker peak RSS grew {grown:.1f} MB")
    assert grown < 50, f"peak RSS grew {grown:.0f} MB"
    ((value, headers),) = dead_letters(env)
    assert (headers["pmaint.reason"], value) == (b"too_large", b"")
    assert headers["pmaint.source.partition"] == str(home).encode()
    assert proc.metric("pmaint_records_total", outcome="ok") == 20


# D10 on the v2 write path (InfluxDB 2.x/3.x rules, as VictoriaMetrics reads them).
def test_backslash_names_stay_distinct_over_the_v2_write_api(
    victoriametrics: Server, tmp_path: Path
) -> None:
    url = victoriametrics.extra["url"]
    settings = load_settings(
        influx_url=url, influx_api="v2", influx_bucket="pm", influx_org="acme",
        influx_token="tok", data_dir=tmp_path,
    )  # fmt: skip
    t0 = time.time() - 600
    assets = ["v2bs\\x", "v2bs/x", "v2bs\\\\y"]  # the last has no unambiguous spelling
    points = [anomaly_point(AnomalySignal(a, t0 + i, 0.9, 0.8)) for a in assets for i in range(5)]

    write_points(settings, points)
    series = victoria_export(url, '{__name__="anomaly_score",asset_id=~"v2bs.*"}')
    assert {s["metric"]["asset_id"]: len(s["values"]) for s in series} == {
        "v2bs\\x": 5,
        "v2bs/x": 5,
    }
    refused = (tmp_path / "dead-letter" / "influx.jsonl").read_text()
    assert refused.count("backslash") == 5
