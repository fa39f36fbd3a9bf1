"""Worker throughput vs the bare faust consume loop, same broker, same run.

Bare loop: a faust agent that only counts raw messages. ``ingest``: the real worker app up to
per-asset state (decode, validate, route, dead letters). ``full``: the whole worker pipeline
(plus anomaly monitor, drift, alerts; no RUL model or InfluxDB configured here). Single records
and frames of 100; timed from the first to the last processed record, so group joins do not
count.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faust

from benchmarks.common import Clock, emit, fresh, produce_frames, run_until
from streams.agents import TelemetryAgent
from streams.app import create_app
from streams.embedded import EmbeddedBroker, free_port
from streams.kafka_clients import ensure_topics
from streams.pipeline import Outputs
from streams.processor import BatchResult
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

    async def run_models(self, result: BatchResult) -> Outputs:
        return Outputs()


async def worker(settings: Settings, records: int, stage: str) -> float:
    """Records/s of the real worker app; ``stage`` "ingest" stops before the models."""
    app, runtime = create_app(settings, PARTITIONS)
    if stage == "ingest":
        runtime.agent.__class__ = IngestOnly
    clock = Clock(records)
    handle = runtime.agent.handle
    processed = runtime.metrics.records.labels("ok")

    async def timed(events: Any) -> None:
        if clock.count == 0:
            clock.first = time.perf_counter()
        await handle(events)
        clock.count = max(clock.count, int(processed._value.get()))
        if clock.done and not clock.last:
            clock.last = time.perf_counter()

    runtime.agent.handle = timed  # type: ignore[method-assign]
    await run_until(app, lambda: clock.done)
    return clock.rate()


def measure(bootstrap: str, records: int, frame: int, kind: str) -> float:
    settings = settings_for(bootstrap, f"bench-{kind}-{frame}")
    ensure_topics(settings)
    produce_frames(bootstrap, settings.topic_telemetry, records, frame, assets=200)
    if kind == "bare":
        return asyncio.run(bare_loop(settings, records, frame))
    return asyncio.run(worker(settings, records, kind))


def main() -> None:
    quick = "--quick" in sys.argv
    broker = EmbeddedBroker(Path(tempfile.mkdtemp()) / "broker.log")
    sizes = ((1, 10_000), (100, 50_000)) if quick else ((1, 20_000), (100, 150_000))
    try:
        for frame, records in sizes:
            bare = measure(broker.bootstrap, records, frame, "bare")
            for stage, what in (("ingest", "decode+validate+state"), ("full", "full pipeline")):
                emit(
                    f"{stage}_frame{frame}",
                    measure(broker.bootstrap, records, frame, stage),
                    "records/s", bare, baseline_name="bare faust consume loop",
                    stage=what, records=records, frame=frame, partitions=PARTITIONS,
                )  # fmt: skip
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
