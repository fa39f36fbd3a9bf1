"""Publishing a worker's outputs: where they go (:class:`Sinks`) and how a batch part's outputs
get there (:class:`Publisher`).

A publication's parts go out together, in order: dead letters to ``pm.telemetry.dlq``, misrouted
records forwarded to their asset's partition, alert events to ``pm.alerts``, points to InfluxDB.
It returns once every one of them is acknowledged. A failing send is retried with backoff until it
goes through (:func:`deliver`), which slows the stream instead of dropping data; a send the broker
refuses for good (too large) is not retried: a forwarded frame is halved until its parts go
through, and a record refused on its own is dead-lettered (``undeliverable:<error>``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
import orjson
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

from streams.core.alert_event import AlertEvent
from streams.core.line_protocol import Point
from streams.core.pipeline import Outputs
from streams.core.processor import (
    BatchResult,
    Encoded,
    Inbound,
    TelemetryProcessor,
    dead_letter_message,
    forward_frames,
    join_frame,
    record_to_message,
)
from streams.core.schema import DeadLetter, Telemetry
from streams.retry import retry
from streams.rul_service import RulService
from streams.sinks.base import Sink

log = logging.getLogger("pmaint.publishing")

# the broker (or the producer's own check) refuses these for good: a retry cannot succeed
PERMANENT_SEND_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


async def deliver(send: Callable[[], Awaitable[Any]], what: str, attempts: int = 0) -> None:
    """Send and wait for the broker's ack, retrying with backoff until it succeeds.

    ``attempts`` > 0 bounds the tries (the last error is raised); 0 retries forever, which is
    what at-least-once needs: the batch is not acked until its outputs are. A permanent error
    (:data:`PERMANENT_SEND_ERRORS`) is raised at once.
    """

    async def once() -> None:
        await (await send())

    await retry(once, f"send to {what}", give_up=PERMANENT_SEND_ERRORS, attempts=attempts)


@dataclass
class Sinks:
    """Where a worker's outputs go; ``influx`` and ``rul`` are optional. Started and
    stopped once, with the app (:class:`SinkService`)."""

    telemetry: faust.TopicT
    dlq: faust.TopicT
    alerts: Sink[AlertEvent]
    checkpoints: MutableMapping[str, bytes]
    influx: Sink[Point] | None = None
    rul: RulService | None = None

    async def start(self) -> None:
        if self.influx is not None:
            await self.influx.start()
        if self.rul is not None:
            await self.rul.start()

    async def stop(self) -> None:
        if self.rul is not None:
            await self.rul.stop()
        await self.alerts.stop()
        if self.influx is not None:
            await self.influx.stop()


@dataclass
class Publication:
    """Parts whose outputs go out together, in order: a part scored while the publication before
    it awaits its acknowledgements joins the next one, so small parts (short holds of the event
    loop) do not cost a Kafka and an InfluxDB request each."""

    parts: list[tuple[BatchResult, Outputs]] = field(default_factory=list)
    checkpoints: dict[str, bytes] = field(default_factory=dict)  # written once it is published
    records: int = 0

    def add(self, part: BatchResult, out: Outputs, checkpoints: dict[str, bytes]) -> None:
        self.parts.append((part, out))
        self.checkpoints |= checkpoints
        self.records += len(part.records)


class Publisher:
    """Publishes the outputs of batch parts to :class:`Sinks` and waits for every
    acknowledgement."""

    def __init__(self, sinks: Sinks, processor: TelemetryProcessor) -> None:
        self.sinks = sinks
        self.processor = processor  # its frame limits, and its metrics
        self.metrics = processor.metrics
        self._since: float | None = None  # when the publication in progress started

    def unacknowledged_s(self) -> float:
        """How long the publication in progress has waited for its acknowledgements."""
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    async def publish(self, parts: Sequence[tuple[BatchResult, Outputs]]) -> None:
        """Publish the outputs of ``parts`` (in their order) and wait for every acknowledgement."""
        self._since = time.monotonic()
        try:
            await self._publish(parts)
        finally:
            self._since = None

    async def _publish(self, parts: Sequence[tuple[BatchResult, Outputs]]) -> None:
        now = time.time()
        dead = [letter for result, _ in parts for letter in result.dead]
        unknown = Inbound(self.sinks.telemetry.get_topic_name(), -1, -1, b"")  # offset unknown
        for record, reason in (f for _, out in parts for f in out.failed):  # a model failed on
            letter = DeadLetter(reason, orjson.dumps(record_to_message(record)), record.asset_id)
            dead.append((letter, unknown))
        forward: dict[int, list[Telemetry]] = {}  # a partition's records, in order
        for result, _ in parts:
            for partition, records in result.forward.items():
                forward.setdefault(partition, []).extend(records)
        alerts = [event for _, out in parts for event in out.alerts]
        points = [point for _, out in parts for point in out.points]
        forwards = []
        for partition, records in forward.items():
            frames, alone = forward_frames(records, self.processor.limits)
            forwards.append(self._forward(partition, frames, now))
            for record, encoded in alone:
                dead.append((DeadLetter("too_large", encoded, record.asset_id), unknown))
                self.metrics.dead_letters.labels("too_large").inc()
        sends = [self._dead_letter(letter, source, now) for letter, source in dead] + forwards
        if alerts:
            await self.sinks.alerts.add(alerts)
            sends.append(self.sinks.alerts.flush())
        if points and self.sinks.influx is not None:
            await self.sinks.influx.add(points)
            sends.append(self._flush_points(len(points)))
        if sends:
            await asyncio.gather(*sends)

    async def _dead_letter(self, letter: DeadLetter, source: Inbound, now: float) -> None:
        value, headers = dead_letter_message(letter, source, now)
        key = letter.asset_id.encode() if letter.asset_id else None
        send = partial(self.sinks.dlq.send, key=key, value=value, headers=headers)
        try:
            await deliver(send, self.sinks.dlq.get_topic_name())
        except PERMANENT_SEND_ERRORS as exc:  # at most 64 KiB: only a misconfigured broker
            log.error("dead letter (%s, %d bytes) refused: %s", letter.reason, len(value), exc)

    async def _forward(self, partition: int, frames: list[list[Encoded]], now: float) -> None:
        """Send frames to their partition in order; a frame refused for good is halved until
        its parts go through, and a record refused on its own is dead-lettered."""
        topic = self.sinks.telemetry.get_topic_name()
        for frame in frames:
            send = partial(
                self.sinks.telemetry.send,
                key=frame[0][0].asset_id.encode(),
                value=join_frame(frame),
                partition=partition,
            )
            try:
                await deliver(send, topic)
            except PERMANENT_SEND_ERRORS as exc:
                if len(frame) > 1:
                    half = len(frame) // 2
                    await self._forward(partition, [frame[:half], frame[half:]], now)
                    continue
                reason = f"undeliverable:{type(exc).__name__}"
                log.warning("forwarding a record of %s refused: %s", frame[0][0].asset_id, exc)
                self.metrics.dead_letters.labels("undeliverable").inc()
                letter = DeadLetter(reason, frame[0][1], frame[0][0].asset_id)
                await self._dead_letter(letter, Inbound(topic, -1, -1, b""), now)

    async def _flush_points(self, count: int) -> None:
        assert self.sinks.influx is not None
        await self.sinks.influx.flush()
        self.metrics.points.inc(count)
