"""Worker scale-out: records/s with 2 worker processes vs 1, one topic of 4 partitions.

Each run starts ``pmaint worker`` processes (one consumer group, full pipeline, no RUL model or
InfluxDB) on fresh topics, waits until the group is settled (every worker ready and the 4
partitions spread over them), then sends frames of ``FRAME`` simulated records that were
encoded beforehand, so the producer costs little CPU during the run. The rate is the growth of
the workers' summed ``pmaint_records_total{outcome="ok"}`` between the first poll that sees
progress and the poll that sees all records, so starts and group joins do not count.

``value``: 2 workers; baseline: 1 worker, same broker, same records, same run. On a machine
with 2 cores (broker, producer and workers share them) the ratio stays well under 2.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kafka import KafkaProducer

from benchmarks.common import emit, fresh
from models.simulator import FleetSimulator
from streams.embedded import EmbeddedBroker
from streams.harness import WorkerProcess, start_worker, worker_env
from streams.kafka_clients import ensure_topics
from streams.routing import partition_for
from streams.settings import load_settings

PARTITIONS = 4
RECORDS = 40_000
ASSETS = 100  # 400 records an asset: past the 300-record warm-up, so alerting runs too
FRAME = 100


def encode_frames(records: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, frame) messages, each frame holding one partition's records."""
    now_ms = int(time.time() * 1000)
    sim = FleetSimulator(assets=ASSETS, seed=1, start_ms=now_ms - records // ASSETS * 60_000)
    out: list[tuple[int, bytes, bytes]] = []
    buffers: dict[int, list[dict[str, object]]] = {}
    for rec in sim.records(records):
        part = partition_for(rec.asset_id, PARTITIONS)
        buf = buffers.setdefault(part, [])
        buf.append(rec.to_message())
        if len(buf) >= FRAME:
            out.append((part, rec.asset_id.encode(), orjson.dumps({"records": buf})))
            buffers[part] = []
    for part, buf in buffers.items():
        if buf:
            out.append((part, str(buf[0]["asset_id"]).encode(), orjson.dumps({"records": buf})))
    return out


def owned(worker: WorkerProcess, topic: str) -> int:
    """Partitions of ``topic`` the worker holds (from its consumer-lag gauge)."""
    _, text = worker.get("/metrics")
    return len(re.findall(rf'^pmaint_consumer_lag\{{[^}}]*topic="{re.escape(topic)}"', text, re.M))


def run(bootstrap: str, workers: int, frames: list[tuple[int, bytes, bytes]], work: Path) -> float:
    prefix = fresh(f"scale{workers}")
    settings = load_settings(
        kafka_bootstrap=bootstrap,
        topic_telemetry=f"{prefix}.telemetry",
        topic_dlq=f"{prefix}.telemetry.dlq",
        topic_alerts=f"{prefix}.alerts",
        partitions=PARTITIONS,
    )
    ensure_topics(settings)
    env = worker_env(bootstrap, prefix, partitions=str(PARTITIONS), log_level="warning")
    procs: list[WorkerProcess] = []
    try:
        for _ in range(workers):
            procs.append(start_worker(env, work))
        deadline = time.monotonic() + 60
        while not (
            all(p.ready() for p in procs)
            and [owned(p, settings.topic_telemetry) for p in procs]
            == [PARTITIONS // workers] * workers
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the consumer group did not settle")
            time.sleep(0.2)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1
        )
        for part, key, value in frames:
            producer.send(settings.topic_telemetry, key=key, value=value, partition=part)
        producer.flush()
        producer.close()
        first: tuple[float, float] | None = None
        deadline = time.monotonic() + 240
        while True:
            done = sum(p.metric("pmaint_records_total", outcome="ok") for p in procs)
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done)
            if done >= RECORDS and first is not None:
                return (done - first[1]) / max(now - first[0], 1e-9)
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers processed {done}/{RECORDS} records")
            time.sleep(0.1)
    finally:
        for p in procs:
            p.kill()


def main() -> int:
    frames = encode_frames(RECORDS)
    with tempfile.TemporaryDirectory(prefix="pmaint-scaling-") as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(work / "broker.log")
        try:
            one = run(broker.bootstrap, 1, frames, work)
            two = run(broker.bootstrap, 2, frames, work)
        finally:
            broker.stop()
    emit(
        "scaling_2_workers", two, "records/s", one, baseline_name="1 worker process",
        partitions=PARTITIONS, records=RECORDS, assets=ASSETS, frame=FRAME,
        stage="full pipeline, no RUL model, no InfluxDB", workers=2,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
