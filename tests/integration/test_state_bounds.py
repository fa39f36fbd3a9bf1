"""Per-asset state against the real broker: checkpoints that are not ours are refused, an asset's
sensor names are capped, and a fleet larger than the memory budget keeps being scored."""

from __future__ import annotations

import json
import pickle
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from models import state_codec
from streams.core.fleet import AssetState
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.routing import partition_for
from streams.core.schema import Telemetry
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from tests.topics import read_topic

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


def rss_bytes(worker: WorkerProcess) -> int:
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def asset(worker: WorkerProcess, asset_id: str) -> dict[str, object]:
    status, body = worker.get(f"/assets/{asset_id}")
    assert status == 200, body
    result: dict[str, object] = json.loads(body)
    return result


def send(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000, linger_ms=20)
    for key, value in messages:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()


class RunsCode:
    """Unpickling this touches a file: what a crafted pickle checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return Path.touch, (self.marker,)


def good_checkpoint(records: int) -> bytes:
    pipeline = ModelPipeline(PipelineConfig())
    state = AssetState("ck-good", 0, NOW_MS)
    for i in range(records):
        record = Telemetry("ck-good", NOW_MS - (records - i) * 1000, {"s1": 1.0 + i % 3})
        state.observe(record)
        pipeline.observe(state, record, Outputs())
    raw = pipeline.checkpoint(state)
    assert raw is not None
    return raw


def test_crafted_checkpoints_are_refused_and_the_asset_starts_afresh(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = tansu.extra["bootstrap"]
    env = worker_env(bootstrap, topic_prefix)
    changelog = f"{env['PMAINT_APP_ID']}-checkpoints-changelog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(changelog, 4, 1)])
    admin.close()
    marker = tmp_path / "code-ran"
    fields = {
        "monitor": None, "alerts": None, "records": 7, "first_seen_ms": NOW_MS,
        "last_seen_ms": NOW_MS, "open_alerts": {}, "sensors": ["s1"],
    }  # fmt: skip
    evil = {
        "ck-pickle": pickle.dumps({"v": 1, "monitor": RunsCode(marker)}),
        "ck-old-format": zlib.compress(pickle.dumps(RunsCode(marker))),
        "ck-foreign-class": b"pmst\x01" + zlib.compress(msgpack.packb([6, "os:system", "a", 1])),
        "ck-old-version": state_codec.encode(fields | {"v": 1}),
        "ck-codec-version": b"pmst\x09" + state_codec.encode(fields | {"v": 2})[5:],
        "ck-garbage": b"\x00\xff" * 100,
        "ck-wrong-shape": state_codec.encode({"v": 2, "records": "many"}),
    }
    # One acknowledged send each: Tansu 0.6 reports a partition's end offset short after a
    # multi-record batch, and faust's recovery reads only up to that end offset.
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4_000_000)
    for key, value in [*evil.items(), ("ck-good", good_checkpoint(40))]:
        producer.send(changelog, key=key.encode(), value=value).get(10)
    producer.close()

    worker = start_worker(env, tmp_path)
    try:
        telemetry = [
            (a, orjson.dumps({"asset_id": a, "ts": NOW_MS, "sensors": {"s1": 2.0}}))
            for a in [*evil, "ck-good"]
        ]
        send(bootstrap, env["PMAINT_TOPIC_TELEMETRY"], telemetry)
        wait_until(
            lambda: worker.metric("pmaint_records_total", outcome="ok") >= len(telemetry),
            60, "telemetry processed",
        )  # fmt: skip
        good = asset(worker, "ck-good")
        assert good["restored"] is True and good["records"] == 41
        for asset_id in evil:
            state = asset(worker, asset_id)
            assert state["restored"] is False and state["records"] == 1, asset_id
            assert "score" in state  # scored from a fresh model
        assert worker.metric("pmaint_checkpoints_refused_total") == len(evil)
        assert not marker.exists()
        log = worker.log.read_text()
        for asset_id in evil:
            assert f"checkpoint of {asset_id!r} refused" in log
    finally:
        worker.kill()


def test_sensor_names_per_asset_are_capped_and_the_rest_dead_lettered(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    """D4: 300 records of one asset, each with 1,000 new sensor names."""
    bootstrap = tansu.extra["bootstrap"]
    env = worker_env(bootstrap, topic_prefix, max_sensors_per_asset="1000")
    worker = start_worker(env, tmp_path)
    try:
        before = rss_bytes(worker)
        messages = [
            ("churn-1", orjson.dumps({
                "asset_id": "churn-1", "ts": NOW_MS - 300_000 + i * 1000,
                "sensors": {f"sensor_{i}_{j:03d}": float(j) for j in range(1000)},
            }))
            for i in range(300)
        ]  # fmt: skip
        known = {"asset_id": "churn-1", "ts": NOW_MS, "sensors": {"sensor_0_001": 2.0}}
        messages.append(("churn-1", orjson.dumps(known)))  # known names pass at the cap
        send(bootstrap, env["PMAINT_TOPIC_TELEMETRY"], messages)
        done = lambda: worker.metric("pmaint_records_total") >= len(messages)  # noqa: E731
        wait_until(done, 120, "records processed")
        grown = rss_bytes(worker) - before
        assert worker.metric("pmaint_records_total", outcome="ok") == 2
        dead = worker.metric("pmaint_dead_letters_total", reason="too_many_sensors_for_asset")
        assert dead == 299
        state = asset(worker, "churn-1")
        assert state["sensors"] == 1000 and state["records"] == 2
        letters = read_topic(bootstrap, env["PMAINT_TOPIC_DLQ"])
        assert len(letters) == 299
        for m in letters:
            assert dict(m.headers)["pmaint.reason"] == b"too_many_sensors_for_asset"
            assert len(orjson.loads(m.value)["sensors"]) == 1000  # the whole record kept
        assert grown < 150 * 1024**2, f"RSS grew {grown / 1e6:.0f} MB"
        print(f"D4: RSS grew {grown / 1e6:.1f} MB over 300 records of 1,000 new sensors")
    finally:
        worker.kill()


@pytest.mark.timeout(900)
def test_fleet_over_budget_is_evicted_restored_and_still_scored(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    """D5: 20,000 assets through a worker that may hold 2,000 (each asset is checkpointed twice;
    on two shared cores Tansu takes a few thousand changelog writes a second)."""
    assets, budget, partitions = 20_000, 2_000, 4
    bootstrap = tansu.extra["bootstrap"]
    env = worker_env(
        bootstrap, topic_prefix, asset_budget=str(budget), partitions="4",
        checkpoint_interval_s="1",
    )  # fmt: skip
    worker = start_worker(env, tmp_path)
    ids = [f"fleet-{i:05d}" for i in range(assets)]
    by_partition: dict[int, list[str]] = {}
    for a in ids:
        by_partition.setdefault(partition_for(a, partitions), []).append(a)

    def frames(round_: int) -> list[tuple[str, bytes]]:
        out = []
        for members in by_partition.values():
            for start in range(0, len(members), 500):
                part = members[start : start + 500]
                records = [
                    {"asset_id": a, "ts": NOW_MS - 60_000 + round_ * 1000,
                     "sensors": {"s1": 1.0 + round_, "s2": 2.0}}
                    for a in part
                ]  # fmt: skip
                out.append((part[0], orjson.dumps({"records": records})))
        return out

    try:
        before = rss_bytes(worker)
        peak = before
        for round_ in (1, 2):
            send(bootstrap, env["PMAINT_TOPIC_TELEMETRY"], frames(round_))

            def caught_up(n: int = round_ * assets) -> bool:
                nonlocal peak
                peak = max(peak, rss_bytes(worker))
                return worker.metric("pmaint_records_total", outcome="ok") >= n

            wait_until(caught_up, 240, f"round {round_} scored")
        assert worker.metric("pmaint_records_total", outcome="ok") == 2 * assets
        assert worker.metric("pmaint_evictions_total") >= 2 * (assets - budget)
        # each asset saved twice (evicted, or idle with changes once traffic stopped)
        saved = lambda: worker.metric("pmaint_checkpoints_total") >= 2 * assets  # noqa: E731
        idle_since = time.monotonic()
        try:
            wait_until(saved, 120, "idle assets checkpointed")
        except RuntimeError as e:
            counts = {m: worker.metric(m) for m in ("pmaint_checkpoints_total", "pmaint_assets")}
            raise AssertionError(f"{e}; worker: {counts}") from e
        print(f"D5: idle assets checkpointed in {time.monotonic() - idle_since:.1f} s")
        _, ready = worker.get("/ready")
        assert json.loads(ready)["assets"] <= budget
        _, body = worker.get("/assets")
        in_memory = json.loads(body)["assets"][:50]
        assert len(in_memory) >= 10
        for state in in_memory:  # evicted after round 1, restored for round 2, scored
            assert state["records"] == 2 and state["restored"] is True and "score" in state
        grown = peak - before
        print(f"D5: peak RSS grew {grown / 1e6:.1f} MB with {assets} assets, budget {budget}")
        assert grown < 250 * 1024**2
    finally:
        worker.kill()
