"""Worker scale-out: records/s with 2 worker processes vs 1, one topic of 4 partitions.

Each run starts ``pmaint worker`` processes (one consumer group, full pipeline, no RUL model or
InfluxDB) on fresh topics, waits until the group is settled (every worker ready and the 4
partitions spread over them), then sends frames of ``FRAME`` simulated records that were
encoded beforehand, so the producer costs little CPU during the run. The rate is the growth of
the workers' summed ``pmaint_records_total{outcome="ok"}`` between the first poll that sees
progress and the poll that sees all records, so starts and group joins do not count.

``value``: 2 workers; baseline: 1 worker, same broker, same pre-encoded frames on 4 partitions,
same producer, same run. The two set-ups alternate (1, 2, 1, 2) and each figure is the median of
its runs, so load from outside drifting over the run does not favour one of them. The JSON line
states the cores (``os.cpu_count()``, the affinity mask) and what shares them (the broker, the
workers; the producer sends before the timed span mostly), with the CPU seconds the workers and
the broker used while timed: on ``cores`` cores the ratio cannot honestly exceed ``cores``.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kafka import KafkaProducer

from benchmarks.common import cpu_seconds, emit, fresh
from models.simulator import FleetSimulator
from streams.core.routing import partition_for
from streams.embedded import EmbeddedBroker
from streams.harness import WorkerProcess, start_worker, worker_env
from streams.kafka_clients import ensure_topics
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


Run = tuple[float, float, float]  # records/s, workers' CPU s, broker's CPU s while timed


def run(
    broker: EmbeddedBroker, workers: int, frames: list[tuple[int, bytes, bytes]], work: Path
) -> Run:
    bootstrap = broker.bootstrap
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
        first: tuple[float, float, float, float] | None = None

        def cpu() -> tuple[float, float]:
            return sum(cpu_seconds(p.proc.pid) for p in procs), cpu_seconds(broker.proc.pid)

        deadline = time.monotonic() + 240
        while True:
            done = sum(p.metric("pmaint_records_total", outcome="ok") for p in procs)
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done, *cpu())
            if done >= RECORDS and first is not None:
                worker_cpu, broker_cpu = cpu()
                rate = (done - first[1]) / max(now - first[0], 1e-9)
                return rate, worker_cpu - first[2], broker_cpu - first[3]
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers processed {done}/{RECORDS} records")
            time.sleep(0.1)
    finally:
        for p in procs:
            p.kill()


def main() -> int:
    frames = encode_frames(RECORDS)
    runs: dict[int, list[Run]] = {1: [], 2: []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pmaint-scaling-") as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(work / "broker.log")
        try:
            for workers in (1, 2, 1, 2):
                runs[workers].append(run(broker, workers, frames, work))
        finally:
            broker.stop()
    one, two = (statistics.median(r[0] for r in runs[n]) for n in (1, 2))
    emit(
        "scaling_2_workers", two, "records/s", one, baseline_name="1 worker process",
        partitions=PARTITIONS, records=RECORDS, assets=ASSETS, frame=FRAME,
        stage="full pipeline, no RUL model, no InfluxDB", workers=2,
        cores=os.cpu_count(), affinity_cores=len(os.sched_getaffinity(0)),
        sharing="broker (Tansu) + workers; producer before/at the start of the timed span",
        runs_1=[round(r[0]) for r in runs[1]], runs_2=[round(r[0]) for r in runs[2]],
        worker_cpu_s_1=[round(r[1], 2) for r in runs[1]],
        worker_cpu_s_2=[round(r[1], 2) for r in runs[2]],
        broker_cpu_s_1=[round(r[2], 2) for r in runs[1]],
        broker_cpu_s_2=[round(r[2], 2) for r in runs[2]],
        load1_before=round(load_before, 2), load1_after=round(os.getloadavg()[0], 2),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
