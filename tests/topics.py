"""Read back what is on a topic, from the beginning, until the topic goes quiet."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.alert_event import AlertEvent


async def _read(bootstrap: str, topic: str, quiet_polls: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[Any] = []
        idle = 0
        while idle < quiet_polls:
            batch = await consumer.getmany(timeout_ms=500)
            got = [m for ms in batch.values() for m in ms]
            out += got
            idle = 0 if got else idle + 1
        return out
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str, quiet_polls: int = 3) -> list[Any]:
    """Every message on ``topic`` (aiokafka ``ConsumerRecord``s)."""
    return asyncio.run(_read(bootstrap, topic, quiet_polls))


def read_alerts(bootstrap: str, topic: str) -> list[AlertEvent]:
    """Every alert event on ``topic``."""
    return [AlertEvent.from_json(m.value) for m in read_topic(bootstrap, topic)]
