"""Worker throughput vs the bare faust consume loop, same broker, same run.

Bare loop: a faust agent that only counts raw messages. ``ingest``: the real worker app up to
per-asset state (decode, validate, route, dead letters). ``full``: the whole worker pipeline
(plus anomaly monitor, drift, alerts; no RUL model or InfluxDB configured here). ``pipeline``:
``full`` with a RUL model (an untrained network of the default 5-member architecture: speed does
not depend on the weights) forecasting every 10th record of an asset, and InfluxDB 1.x as sink.
``--only NAME`` runs one line (with its bare loop). Single records and frames of 100; timed from
the first to the last record whose outputs were acknowledged, so group joins do not count.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faust

from benchmarks.common import Clock, emit, fresh, produce_frames, run_until
from benchmarks.rul import untrained_predictor
from models.rul.serve import RulPredictor
from streams.agents import TelemetryAgent
from streams.app import create_app
from streams.core.pipeline import Outputs
from streams.core.processor import BatchResult
from streams.embedded import EmbeddedBroker, EmbeddedInfluxDB, free_port
from streams.kafka_clients import ensure_topics
from streams.settings import Settings, load_settings

PARTITIONS = 4


def settings_for(bootstrap: str, name: str) -> Settings:
    return load_settings(
        kafka_bootstrap=bootstrap,
        app_id=fresh(name),
        topic_telemetry=fresh(f"{name}.telemetry"),
        topic_dlq=fresh(f"{name}.dlq"),
        topic_alerts=fresh(f"{name}.alerts"),
        partitions=PARTITIONS,
        web_port=free_port(),
        data_dir=tempfile.mkdtemp(),
        group_rebalance_timeout_s=2.0,
        group_session_timeout_s=4.0,
    )


async def bare_loop(settings: Settings, records: int, frame: int) -> float:
    app = faust.App(
        settings.app_id, broker=settings.kafka_url(), web_port=settings.web_port,
        datadir=settings.data_dir, consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=2.0, broker_session_timeout=4.0, autodiscover=False,
    )  # fmt: skip
    topic = app.topic(settings.topic_telemetry, value_serializer="raw", partitions=PARTITIONS)
    clock = Clock(records)

    @app.agent(topic)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            clock.tick(frame)

    await run_until(app, lambda: clock.done)
    return clock.rate()


class IngestOnly(TelemetryAgent):
    """The worker's ingest stage alone: decode, validate, route, per-asset state, dead letters."""

    def score(self, result: BatchResult) -> Outputs:
        return Outputs()


async def worker(
    settings: Settings, records: int, stage: str, predictor: RulPredictor | None = None
) -> float:
    """Records/s of the real worker app; ``stage`` "ingest" stops before the models."""
    app, runtime = create_app(settings, PARTITIONS, predictor)
    if stage == "ingest":
        runtime.agent.__class__ = IngestOnly
    clock = Clock(records)
    feed = runtime.agent.feed
    processed = runtime.metrics.records.labels("ok")

    async def timed(events: Any) -> None:
        if not clock.first:
            clock.first = time.perf_counter()
        await feed(events)

    def done() -> bool:  # counted once a part's outputs are acknowledged
        clock.count = int(processed._value.get())
        if clock.done and not clock.last:
            clock.last = time.perf_counter()
        return clock.done

    runtime.agent.feed = timed  # type: ignore[method-assign]
    await run_until(app, done)
    return clock.rate()


def measure(bootstrap: str, records: int, frame: int, kind: str, influx: str = "") -> float:
    settings = settings_for(bootstrap, f"bench-{kind}-{frame}")
    if kind == "pipeline":  # a RUL model every 10th record of an asset, InfluxDB 1.x
        settings = settings.model_copy(
            update={
                "rul_every": 10, "influx_url": influx, "influx_api": "v1",
                "influx_database": fresh("bench").replace("-", "_"),
            }
        )  # fmt: skip
    ensure_topics(settings)
    produce_frames(bootstrap, settings.topic_telemetry, records, frame, assets=200)
    if kind == "bare":
        return asyncio.run(bare_loop(settings, records, frame))
    if kind == "pipeline":
        return asyncio.run(worker(settings, records, "full", untrained_predictor("cpu")))
    return asyncio.run(worker(settings, records, kind))


def pipeline_frame100(bootstrap: str, records: int, bare: float) -> None:
    """``pipeline_frame100``: the full pipeline with a RUL model forecasting every 10th record
    of an asset and a real InfluxDB 1.x sink."""
    work = Path(tempfile.mkdtemp(prefix="pmaint-ingest-"))
    influx = EmbeddedInfluxDB(work)
    try:
        rate = measure(bootstrap, records, 100, "pipeline", influx.url)
    finally:
        influx.stop()
    emit(
        "pipeline_frame100", rate, "records/s", bare, baseline_name="bare faust consume loop",
        stage="full pipeline + RUL every 10th record (5-member ensemble, CPU) + InfluxDB 1.x",
        records=records, frame=100, partitions=PARTITIONS, target=30_000,
        load1=round(os.getloadavg()[0], 2), cores=os.cpu_count(),
    )  # fmt: skip


def main() -> None:
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    broker = EmbeddedBroker(Path(tempfile.mkdtemp()) / "broker.log")
    sizes = ((1, 10_000), (100, 50_000)) if quick else ((1, 20_000), (100, 150_000))
    try:
        for frame, records in sizes:
            if only is not None and not only.endswith(f"_frame{frame}"):
                continue
            bare = measure(broker.bootstrap, records, frame, "bare")
            for stage, what in (("ingest", "decode+validate+state"), ("full", "full pipeline")):
                if only is not None and only != f"{stage}_frame{frame}":
                    continue
                emit(
                    f"{stage}_frame{frame}",
                    measure(broker.bootstrap, records, frame, stage),
                    "records/s", bare, baseline_name="bare faust consume loop",
                    stage=what, records=records, frame=frame, partitions=PARTITIONS,
                )  # fmt: skip
            if frame == 100 and only in (None, "pipeline_frame100"):
                pipeline_frame100(broker.bootstrap, records // 3, bare)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
