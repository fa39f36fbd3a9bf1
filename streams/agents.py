"""The telemetry agent: what flows through a worker.

Kafka ``pm.telemetry`` → batches of events → :class:`TelemetryProcessor` (decode, validate,
route per asset, per-asset state) → outputs: dead letters to ``pm.telemetry.dlq``, records that
belong to another partition forwarded there. Every output is acknowledged by the broker before
the batch's offsets are acked, so a crash replays instead of losing (at-least-once). A bad
message never raises out of the loop; a failing send is retried with bounded backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

import faust
from faust.types import EventT, StreamT

from streams.processor import (
    BatchResult,
    Inbound,
    TelemetryProcessor,
    dead_letter_headers,
    frame_bytes,
)

log = logging.getLogger("pmaint.agents")


async def deliver(send: Callable[[], Awaitable[Any]], what: str, attempts: int = 0) -> None:
    """Send and wait for the broker's ack, retrying with backoff until it succeeds.

    ``attempts`` > 0 bounds the tries (the last error is raised); 0 retries forever, which is
    what at-least-once needs: the batch is not acked until its outputs are.
    """
    delay, tries = 0.1, 0
    while True:
        tries += 1
        try:
            fut = await send()
            await fut
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempts and tries >= attempts:
                raise
            log.warning("send to %s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 10.0)


class TelemetryAgent:
    """Consumes telemetry in batches and publishes the batch outputs."""

    def __init__(
        self,
        processor: TelemetryProcessor,
        telemetry: faust.TopicT,
        dlq: faust.TopicT,
        batch_max: int = 500,
        batch_within_s: float = 0.05,
    ) -> None:
        self.processor = processor
        self.telemetry = telemetry
        self.dlq = dlq
        self.batch_max = batch_max
        self.batch_within_s = batch_within_s
        self.positions: dict[int, int] = {}

    async def __call__(self, stream: StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(
            self.batch_max, within=self.batch_within_s
        )
        async for events in batches:
            await self.handle(events)

    async def handle(self, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        batch = [
            Inbound(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.value if isinstance(e.value, bytes) else bytes(e.value or b""),
                e.message.timestamp,
            )
            for e in events
        ]
        result = self.processor.process(batch)
        await self.publish(result)
        for message in batch:
            self.positions[message.partition] = message.offset + 1
        self.processor.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def publish(self, result: BatchResult) -> None:
        now = time.time()
        sends = [
            deliver(
                partial(
                    self.dlq.send,
                    key=dead.asset_id.encode() if dead.asset_id else None,
                    value=dead.payload,
                    headers=dead_letter_headers(dead, source, now),
                ),
                self.dlq.get_topic_name(),
            )
            for dead, source in result.dead
        ]
        sends += [
            deliver(
                partial(
                    self.telemetry.send,
                    key=records[0].asset_id.encode(),
                    value=frame_bytes(records),
                    partition=partition,
                ),
                self.telemetry.get_topic_name(),
            )
            for partition, records in result.forward.items()
        ]
        if sends:
            await asyncio.gather(*sends)
