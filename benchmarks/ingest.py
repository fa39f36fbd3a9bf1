"""Ingest throughput: the pmaint worker vs the bare faust consume loop, same broker, same run.

Bare loop: a faust agent that only counts raw messages. Worker: the real ``create_app`` pipeline
(decode, validate, route, per-asset state, dead letters). Single records and frames of 100.
Timed from the first to the last processed record, so group joins do not count.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import faust

from benchmarks.common import Clock, emit, fresh, produce_frames, run_until
from streams.app import create_app
from streams.broker import EmbeddedBroker, free_port
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


async def worker(settings: Settings, records: int) -> float:
    app, runtime = create_app(settings, PARTITIONS)
    ok = runtime.metrics.records.labels("ok")
    clock = Clock(records)
    original = runtime.agent.handle

    async def timed(events):  # type: ignore[no-untyped-def]
        await original(events)
        clock.tick(0)  # start the clock on the first batch
        clock.count = int(ok._value.get())
        if clock.done and not clock.last:
            clock.last = __import__("time").perf_counter()

    runtime.agent.handle = timed  # type: ignore[method-assign]
    await run_until(app, lambda: clock.done)
    return clock.rate()


def measure(bootstrap: str, records: int, frame: int) -> tuple[float, float]:
    rates = []
    for kind in ("bare", "worker"):
        settings = settings_for(bootstrap, f"bench-{kind}-{frame}")
        ensure_topics(settings)
        produce_frames(bootstrap, settings.topic_telemetry, records, frame, assets=200)
        if kind == "bare":
            rates.append(asyncio.run(bare_loop(settings, records, frame)))
        else:
            rates.append(asyncio.run(worker(settings, records)))
    return rates[0], rates[1]


def main() -> None:
    quick = "--quick" in sys.argv
    broker = EmbeddedBroker(Path(tempfile.mkdtemp()) / "broker.log")
    try:
        sizes = ((1, 10_000), (100, 50_000)) if quick else ((1, 40_000), (100, 400_000))
        for frame, records in sizes:
            bare, ours = measure(broker.bootstrap, records, frame)
            emit(
                f"ingest_frame{frame}", ours, "records/s", bare,
                baseline_name="bare faust consume loop", records=records, frame=frame,
                partitions=PARTITIONS,
            )  # fmt: skip
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
