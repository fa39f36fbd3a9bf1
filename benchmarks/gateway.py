"""Gateway publishing rate: ``streams.gateway.Gateway`` (kafka-python) against an aiokafka
producer (the worker's client, record batches built in C) sending the same frames, same run.

The records are built before timing; both sides encode each message with orjson, key it by
asset, send it to the asset's partition (``linger_ms`` 5, 256 KiB batches, ``acks=all``) and
wait for every acknowledgement. Lines ``gateway_frame1`` and ``gateway_frame100`` (records a
message); ``checksums`` says whether kafka-python had the compiled CRC-32C.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaProducer

from benchmarks.common import emit, fresh
from streams.embedded import EmbeddedBroker
from streams.gateway import Gateway, Record, compiled_checksums, frames, simulated
from streams.kafka_clients import ensure_topics
from streams.settings import Settings, load_settings

RECORDS = {1: 40_000, 100: 200_000}


async def aiokafka_rate(settings: Settings, records: list[Record], frame: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, max_batch_size=256 * 1024,
        acks="all",
    )  # fmt: skip
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(settings.topic_telemetry))
        started = time.perf_counter()
        sends = []
        for partition, batch in frames(records, frame, partitions):
            value = orjson.dumps(batch[0] if frame == 1 else {"records": batch})
            key = str(batch[0]["asset_id"]).encode()
            sends.append(
                await producer.send(settings.topic_telemetry, value, key=key, partition=partition)
            )
        await asyncio.gather(*sends)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


def gateway_rate(settings: Settings, records: list[Record], frame: int) -> float:
    gateway = Gateway(settings, frame=frame)
    try:
        started = time.perf_counter()
        gateway.send(records)
        return len(records) / (time.perf_counter() - started)
    finally:
        gateway.close()


def main() -> None:
    broker = EmbeddedBroker()
    try:
        for frame, count in RECORDS.items():
            records = list(simulated(assets=200, records=count, seed=1))
            topics = {"kafka_bootstrap": broker.bootstrap}
            base = load_settings(**topics, topic_telemetry=fresh("gw-base"))
            ours = load_settings(**topics, topic_telemetry=fresh("gw"))
            ensure_topics(base)
            ensure_topics(ours)
            baseline = asyncio.run(aiokafka_rate(base, records, frame))
            rate = gateway_rate(ours, records, frame)
            emit(
                f"gateway_frame{frame}", rate, "records/s", baseline,
                baseline_name="aiokafka producer, same frames", records=count, frame=frame,
                checksums="compiled" if compiled_checksums() else "pure Python",
            )  # fmt: skip
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
