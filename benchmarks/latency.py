"""End-to-end latency at half the measured maximum rate: produce → alert event, produce → point.

One ``pmaint worker`` process (full pipeline, InfluxDB 1.x configured, v1, its own database,
``PMAINT_ANOMALY_WARM_UP=30``, ``PMAINT_ALERT_DEBOUNCE_RECORDS=1``, and a policy file whose
``novelty_warm_up`` is the same 30 records: an asset here has a few hundred records, not the
long history of a plant's, and with the default 300 its spike detector would still be learning,
so a probe could only be caught by the slow-deviation path, which opens late by design) on 4
partitions. First a
burst of ``PRELOAD`` records warms every asset up and measures the worker's maximum rate (growth
of ``pmaint_records_total`` while it drains the burst's second half: an asset's first ~100 records
cost less to score than those of the load, see :func:`max_rate`).
Then frames are produced at half that rate for ``DURATION`` s, each record's event time being
its produce time. Every ``PROBE_S`` after the first ``SETTLE_S``:

* ``influx``: one record of the load is a probe; its anomaly point (asset, event time) is polled
  for in InfluxDB every 10 ms; latency = produce → point visible to a query.
* ``alert``: one record of a not-yet-alerted asset carries a sensor 1000 sd out of range; latency
  = produce → its ``open`` anomaly event read from the alert topic (aiokafka consumer).
* baseline: a small message on a plain topic, read by an aiokafka consumer in the same loop: the
  raw Kafka round trip under the same load, same run.
* relay: the same message sent on by a bare relay process (:mod:`benchmarks.relay`) to another
  topic and read there: the two hops a reading takes to its alert, with no work between, same
  run (each line's ``relay_ms`` at its percentile and ``relay_ratio``, value / relay_ms: what
  the pipeline adds beyond the transport).

Every consumer fetches as the worker does (its ``fetch_max_wait_ms``). Each line's JSON gives
the three slowest probes (seconds into the load, ms) and the worker's mean stage times per
batch; ``--trace`` prints them every half second to stderr. ``cores_used`` says what shared the
machine's cores (``cores``, ``affinity_cores``) while the load ran: the cores each process used
(the worker, the broker, InfluxDB, the relay and the benchmark's own process, CPU seconds over
the load's wall seconds).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.common import CpuShare, emit, fresh
from models.simulator import FleetSimulator, SimRecord
from streams.core.routing import partition_for
from streams.embedded import EmbeddedBroker, EmbeddedInfluxDB
from streams.harness import WorkerProcess, metric_sum, start_worker, worker_env
from streams.kafka_clients import ensure_topics
from streams.settings import Settings, load_settings

PARTITIONS = 4
ASSETS = 200
WARM_UP = 30  # records an asset learns from before it is scored
PRELOAD = 40_000  # 200 records an asset
RATE_FROM = 20_000  # the maximum rate is measured from here on (100 records an asset)
DURATION = 20.0
PROBE_S = 0.25
# probes begin this long into the load: the preload ends with every asset's checkpoint due at
# once and the load's first records raise a burst of drift alerts (its event time jumps ahead)
SETTLE_S = 2.0
TICK_S = 0.02
Latency = tuple[float, float]  # (seconds into the load it was produced, latency in seconds)


def message(rec: SimRecord, ts_ms: int, boost: bool = False) -> dict[str, object]:
    sensors = dict(rec.sensors)
    if boost:
        sensors["s2"] = sensors["s2"] * 3.0  # ~1000 sd above the asset's normal
    return {"asset_id": rec.asset_id, "ts": ts_ms, "settings": rec.settings, "sensors": sensors}


def preload(bootstrap: str, topic: str, stream: Iterator[SimRecord]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    start_ms = int(time.time() * 1000) - PRELOAD * 100
    buffers: dict[int, list[dict[str, object]]] = {}
    for i in range(PRELOAD):
        rec = next(stream)
        part = partition_for(rec.asset_id, PARTITIONS)
        buffers.setdefault(part, []).append(message(rec, start_ms + i * 100))
        if len(buffers[part]) >= 100:
            producer.send(topic, value=orjson.dumps({"records": buffers.pop(part)}), partition=part)
    for part, buf in buffers.items():
        producer.send(topic, value=orjson.dumps({"records": buf}), partition=part)
    producer.flush()
    producer.close()


def max_rate(worker: WorkerProcess) -> tuple[float, dict[str, float]]:
    """Records/s the worker drains the preload at from :data:`RATE_FROM` on: an asset's records
    cost as much there as during the load (its warm-up records skip scoring, and until about 100
    records its drift and correlation detectors are not running yet, so its records cost about
    0.6x: counting them would overstate the rate the load's records can be scored at). Also
    the worker's :func:`stage_totals` when the measurement began."""
    first: tuple[float, float] | None = None
    totals: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = worker.metric("pmaint_records_total", outcome="ok")
        now = time.perf_counter()
        if first is None and done >= RATE_FROM:
            first, totals = (now, done), stage_totals(worker)
        if done >= PRELOAD and first is not None:
            return (done - first[1]) / max(now - first[0], 1e-9), totals
        time.sleep(0.1)  # each read renders the worker's metrics on its event loop
    raise RuntimeError("the worker did not drain the preload")


class Run:
    """The load at ``rate`` records/s with its probes, and what came back when."""

    def __init__(self, settings: Settings, influx: str, db: str, base_topic: str) -> None:
        self.settings, self.influx, self.db, self.base_topic = settings, influx, db, base_topic
        self.alert_sent: dict[str, float] = {}
        self.alert_seen: dict[str, float] = {}
        self.alerted: set[str] = set()
        self.base_sent: dict[str, float] = {}
        self.base_seen: dict[str, float] = {}
        self.relay_seen: dict[str, float] = {}  # a base message back from the relay
        self.influx_sent: dict[int, float] = {}  # probe number → produce time
        self.influx_seen: dict[int, float] = {}
        self.probes: list[tuple[str, int, int]] = []  # asset, event time, probe number
        self.started = 0.0  # when the load began
        self.cores_used: dict[str, float] = {}  # by each process while the load ran
        self.stop = False

    async def catch_up(self, consumer: AIOKafkaConsumer) -> None:
        """Read the alerts the preload raised (which assets are alerted already) before the
        load begins: reading them during the load would delay the first probes."""
        end = await consumer.end_offsets(list(consumer.assignment()))
        for tp, offset in end.items():
            while await consumer.position(tp) < offset:
                await self.read_alerts(consumer)

    async def relay_ready(self, consumer: AIOKafkaConsumer) -> None:
        """Wait until the relay has sent on the base topic's first message."""
        deadline = time.monotonic() + 60
        while WARM not in self.relay_seen:
            if time.monotonic() > deadline:
                raise RuntimeError("the relay sent nothing on")
            await self.read(consumer, self.relay_seen)

    async def consume(self, read: Callable[[], Awaitable[None]]) -> None:
        while not self.stop:
            await read()

    async def read(self, consumer: AIOKafkaConsumer, seen: dict[str, float]) -> None:
        """Note in ``seen`` when each message of ``consumer`` was first seen."""
        batches = await consumer.getmany(timeout_ms=5)
        now = time.perf_counter()
        for messages in batches.values():
            for m in messages:
                seen.setdefault(m.value.decode(), now)

    async def read_alerts(self, consumer: AIOKafkaConsumer) -> None:
        """Follow the alert events: which assets are alerted, and when a probed asset's
        ``open`` anomaly event was first seen."""
        batches = await consumer.getmany(timeout_ms=5)
        now = time.perf_counter()
        for messages in batches.values():
            for m in messages:
                event = json.loads(m.value)
                if event.get("kind") != "anomaly":
                    continue
                if event.get("state") == "resolved":
                    self.alerted.discard(event["asset_id"])
                elif event.get("state") == "open":
                    self.alerted.add(event["asset_id"])
                    if event["asset_id"] in self.alert_sent:
                        self.alert_seen.setdefault(event["asset_id"], now)

    async def poll_points(self, http: aiohttp.ClientSession) -> None:
        """Check every outstanding probe point in turn, one query at a time (little extra load;
        a late point does not hold up the check of those after it)."""
        url = f"{self.influx}/query"
        while not (self.stop and not self.probes):
            for probe in list(self.probes):
                asset, ts_ms, n = probe
                q = f"SELECT score FROM anomaly WHERE asset_id='{asset}' AND time = {ts_ms}ms"
                async with http.get(url, params={"db": self.db, "q": q}) as r:
                    body = await r.json()
                if body["results"][0].get("series"):
                    self.influx_seen[n] = time.perf_counter()
                    self.probes.remove(probe)
                elif time.perf_counter() - self.influx_sent[n] > 15 or self.stop:
                    self.probes.remove(probe)  # missed: counted in probes, not in seen
            await asyncio.sleep(0.01)

    async def load(
        self, producer: AIOKafkaProducer, stream: Iterator[SimRecord], rate: float
    ) -> None:
        topic = self.settings.topic_telemetry
        async with aiohttp.ClientSession() as http:
            poller = asyncio.create_task(self.poll_points(http))
            started = self.started = time.perf_counter()
            sent, next_probe, n = 0, started + SETTLE_S, 0
            while (now := time.perf_counter()) - started < DURATION:
                due = int((now - started) * rate) - sent
                ts_ms = int(time.time() * 1000)
                frames: dict[int, list[dict[str, object]]] = {}
                probe = now >= next_probe and due > 0
                boosted = not probe
                for i in range(max(due, 0)):
                    rec = next(stream)
                    fresh_asset = rec.asset_id not in self.alerted | self.alert_sent.keys()
                    boost = not boosted and i >= 1 and fresh_asset
                    boosted = boosted or boost
                    part = partition_for(rec.asset_id, PARTITIONS)
                    frames.setdefault(part, []).append(message(rec, ts_ms, boost))
                    if boost:
                        self.alert_sent[rec.asset_id] = now
                    if probe and i == 0:
                        self.probes.append((rec.asset_id, ts_ms, n))
                        self.influx_sent[n] = now
                sent += max(due, 0)
                for part, recs in frames.items():
                    await producer.send(topic, orjson.dumps({"records": recs}), partition=part)
                if probe:
                    key = str(n)
                    self.base_sent[key] = time.perf_counter()
                    await producer.send(self.base_topic, key.encode())
                    next_probe += PROBE_S
                    n += 1
                await asyncio.sleep(TICK_S)
            deadline = time.perf_counter() + 15
            while self.probes and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            self.stop = True
            await poller


WARM = "warm"  # the base topic's first message, which creates it


async def measure(
    settings: Settings,
    influx: str,
    db: str,
    rate: float,
    stream: Iterator[SimRecord],
    pids: dict[str, int],
) -> Run:
    base_topic, relay_topic = fresh("latency.base"), fresh("latency.relay")
    run = Run(settings, influx, db, base_topic)
    bootstrap = settings.kafka_bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    # all read as the worker does: a fetch waits at most the worker's fetch_max_wait_ms (Tansu
    # answers a waiting fetch only when that expires: aiokafka's 500 ms would dominate a hop)
    wait = settings.fetch_max_wait_ms
    fetch = {"auto_offset_reset": "earliest", "fetch_max_wait_ms": wait}
    alerts = AIOKafkaConsumer(settings.topic_alerts, bootstrap_servers=bootstrap, **fetch)
    base = AIOKafkaConsumer(base_topic, bootstrap_servers=bootstrap, **fetch)
    relayed = AIOKafkaConsumer(relay_topic, bootstrap_servers=bootstrap, **fetch)
    await producer.start()
    for topic in (base_topic, relay_topic):  # created before their consumers start
        await producer.send_and_wait(topic, WARM.encode())
    relay = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.relay", bootstrap, base_topic, relay_topic, str(wait)]
    )
    try:
        for consumer in (alerts, base, relayed):
            await consumer.start()
        await run.catch_up(alerts)
        await run.relay_ready(relayed)
        tasks = [
            asyncio.create_task(run.consume(partial(run.read_alerts, alerts))),
            asyncio.create_task(run.consume(partial(run.read, base, run.base_seen))),
            asyncio.create_task(run.consume(partial(run.read, relayed, run.relay_seen))),
        ]
        share = CpuShare(pids | {"relay": relay.pid, "benchmark": os.getpid()})
        share.start()
        await run.load(producer, stream, rate)
        run.cores_used = share.stop()
        await asyncio.gather(*tasks)
    finally:
        relay.terminate()
        relay.wait(10)
        await producer.stop()
        for consumer in (alerts, base, relayed):
            await consumer.stop()
    return run


STAGES = ("wait", "decode", "models", "publish", "save")


def stage_totals(worker: WorkerProcess) -> dict[str, float]:
    """The worker's seconds per stage of its loop so far, with its batch, message and record
    counts and its messages' summed age when decoded (one read of its metrics)."""
    page = worker.get("/metrics")[1]
    totals = {s: metric_sum(page, "pmaint_stage_seconds_total", stage=s) for s in STAGES}
    totals["batches"] = metric_sum(page, "pmaint_batch_processing_seconds_count")
    totals["records"] = metric_sum(page, "pmaint_records_total")
    totals["messages"] = metric_sum(page, "pmaint_event_lag_seconds_count")
    totals["lag"] = metric_sum(page, "pmaint_event_lag_seconds_sum")
    return totals


def per_batch(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds per batch in each stage between two :func:`stage_totals`, the mean
    records and messages per batch, and a message's mean age when decoded (``lag_ms``: what
    waited before the worker's loop took it): where a reading waits."""
    batches = max(after["batches"] - before["batches"], 1.0)
    messages = max(after["messages"] - before["messages"], 1.0)
    out = {f"{s}_ms": round((after[s] - before[s]) / batches * 1000, 1) for s in STAGES}
    out["records_per_batch"] = round((after["records"] - before["records"]) / batches, 1)
    out["messages_per_batch"] = round(messages / batches, 1)
    out["lag_ms"] = round((after["lag"] - before["lag"]) / messages * 1000, 1)
    return out


def latencies(sent: dict[Any, float], seen: dict[Any, float], start: float) -> list[Latency]:
    """Each probe seen: (seconds into the load it was produced, its latency in seconds).

    >>> latencies({"a": 1.5, "b": 2.0}, {"a": 1.75}, start=1.0)
    [(0.5, 0.25)]
    """
    return [(t - start, seen[k] - t) for k, t in sent.items() if k in seen]


def pct(values: list[Latency], q: float) -> float:
    lat = [v for _, v in values]
    return float(np.percentile(np.array(lat) * 1000, q)) if lat else float("nan")


def slowest(values: list[Latency], n: int = 3) -> list[tuple[float, float]]:
    """The ``n`` slowest probes: (seconds into the load, latency in ms), slowest first."""
    worst = sorted(values, key=lambda v: -v[1])[:n]
    return [(round(t, 2), round(lat * 1000, 1)) for t, lat in worst]


class Sampler(threading.Thread):
    """``--trace``: the worker's stage totals every half second during the load (a timeline
    of where readings waited, next to the slowest probes)."""

    def __init__(self, worker: WorkerProcess) -> None:
        super().__init__(daemon=True)
        self.worker, self.samples = worker, [(time.perf_counter(), stage_totals(worker))]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.samples.append((time.perf_counter(), stage_totals(self.worker)))

    def timeline(self, start: float) -> list[dict[str, float]]:
        rows = []
        for (_, before), (t, after) in itertools.pairwise(self.samples):
            batches = after["batches"] - before["batches"]
            rows.append({"t": round(t - start, 2), "batches": batches} | per_batch(after, before))
        return rows


def main() -> int:
    trace = "--trace" in sys.argv
    with tempfile.TemporaryDirectory(prefix="pmaint-latency-") as tmp:
        work = Path(tmp)
        (work / "influx").mkdir()
        broker = EmbeddedBroker(work / "broker.log")
        influx = EmbeddedInfluxDB(work / "influx")
        worker: WorkerProcess | None = None
        try:
            prefix, db = fresh("latency"), "latency"
            settings = load_settings(
                kafka_bootstrap=broker.bootstrap, topic_telemetry=f"{prefix}.telemetry",
                topic_dlq=f"{prefix}.telemetry.dlq", topic_alerts=f"{prefix}.alerts",
                partitions=PARTITIONS,
            )  # fmt: skip
            ensure_topics(settings)
            policy = work / "policy.toml"
            policy.write_text(f"[defaults]\nnovelty_warm_up = {WARM_UP}\n")
            env = worker_env(
                broker.bootstrap, prefix, partitions=str(PARTITIONS), log_level="warning",
                influx_url=influx.url, influx_api="v1", influx_database=db,
                anomaly_warm_up=str(WARM_UP), alert_debounce_records="1", alert_cooldown_s="0",
                policy_file=str(policy),
            )  # fmt: skip
            worker = start_worker(env, work)
            stream = FleetSimulator(assets=ASSETS, seed=3).records(10**9)
            preload(broker.bootstrap, settings.topic_telemetry, stream)
            top, measured_from = max_rate(worker)
            before = stage_totals(worker)  # the preload's batches, at the maximum rate
            sampler = Sampler(worker)
            if trace:
                sampler.start()
            pids = {
                "worker": worker.proc.pid,
                "broker": broker.proc.pid,
                "influxdb": influx.proc.pid,
            }
            run = asyncio.run(measure(settings, influx.url, db, top / 2, stream, pids))
            sampler.done.set()
            stages = per_batch(stage_totals(worker), before)
            preload_stages = per_batch(before, measured_from)  # where the maximum was measured
        finally:
            if worker is not None:
                worker.kill()
            influx.stop()
            broker.stop()
    alert_lat = latencies(run.alert_sent, run.alert_seen, run.started)
    influx_lat = latencies(run.influx_sent, run.influx_seen, run.started)
    base_lat = latencies(run.base_sent, run.base_seen, run.started)
    relay_lat = latencies(run.base_sent, run.relay_seen, run.started)
    common = {
        "baseline_name": "raw Kafka produce→consume, same load",
        "rate": round(top / 2, 1), "max_rate": round(top, 1), "duration_s": DURATION,
        "per_batch": stages, "per_batch_preload": preload_stages,
        "cores": os.cpu_count(), "affinity_cores": len(os.sched_getaffinity(0)),
        "cores_used": run.cores_used,
    }  # fmt: skip
    for q in (50, 99):
        relay_ms = pct(relay_lat, q)
        for name, lat, sent in (
            ("alert", alert_lat, run.alert_sent),
            ("influx", influx_lat, run.influx_sent),
        ):
            value = pct(lat, q)
            emit(
                f"latency_{name}_p{q}", value, "ms", pct(base_lat, q), probes=len(sent),
                seen=len(lat), slowest=slowest(lat), baseline_slowest=slowest(base_lat),
                relay_ms=round(relay_ms, 3), relay_ratio=round(value / relay_ms, 3),
                relay_seen=len(relay_lat), relay_slowest=slowest(relay_lat), **common,
            )  # fmt: skip
    if trace:
        for row in sampler.timeline(run.started):
            print(json.dumps(row), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
