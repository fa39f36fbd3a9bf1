"""Alert output: publish alert events to ``pm.alerts``, keyed by asset, and wait for the acks.

Works with an aiokafka ``AIOKafkaProducer`` (``send`` → future of the broker's ack) or a
faust topic (``send`` → ``FutureMessage`` resolved once the broker acked). The Kafka message
timestamp is the alert's event time, and the payload is :meth:`AlertEvent.to_json`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from streams.core.alert_event import AlertEvent
from streams.retry import retry


class AlertPublisher:
    """Publishes alert events; ``await publish(events)`` returns once every one is acked.

    ``sender`` is an aiokafka producer (then ``topic`` is required) or a faust topic.
    """

    def __init__(self, sender: Any, topic: str | None = None) -> None:
        self._producer = hasattr(sender, "send_and_wait")
        if self._producer and not topic:
            raise ValueError("an aiokafka producer needs the topic name")
        self._sender = sender
        self.topic = topic or str(getattr(sender, "get_topic_name", lambda: "")())
        self.published = 0
        self._added: list[AlertEvent] = []

    async def start(self) -> None:
        """Nothing to open: the producer is the app's."""

    async def stop(self) -> None:
        await self.flush()

    async def add(self, items: Sequence[AlertEvent]) -> None:
        """Take events to publish with the next :meth:`flush`."""
        self._added += items

    async def flush(self) -> None:
        """Publish the events added so far and wait for their acks, retrying until they go
        through (idempotent: a resend repeats the same alert ids)."""
        if self._added:
            events, self._added = self._added, []
            await retry(lambda: self.publish(events), f"publishing alerts to {self.topic}")

    async def _send(self, event: AlertEvent) -> Awaitable[Any]:
        key, value = event.asset_id.encode(), event.to_json()
        ts_ms = round(event.ts * 1000)
        if self._producer:
            fut: Awaitable[Any] = await self._sender.send(
                self.topic, value=value, key=key, timestamp_ms=ts_ms
            )
        else:
            fut = await self._sender.send(
                key=key,
                value=value,
                timestamp=ts_ms / 1000,
                key_serializer="raw",
                value_serializer="raw",
            )
        return fut

    async def publish(self, events: Iterable[AlertEvent]) -> int:
        """Send all ``events`` (in order, pipelined) and wait for the broker's acks."""
        pending = [await self._send(event) for event in events]
        if pending:
            await asyncio.gather(*pending)
        self.published += len(pending)
        return len(pending)
