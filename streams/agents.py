"""The telemetry agent: what flows through a worker.

Kafka ``pm.telemetry`` → batches of events → offset check (:mod:`streams.offsets`: records
faust skipped around a rebalance are read again) → :class:`TelemetryProcessor` (decode, validate,
route per asset, per-asset bookkeeping) → :class:`ModelPipeline` (anomaly monitor, drift, RUL
window, alert lifecycle) → RUL forecasts batched across assets → outputs: dead letters to
``pm.telemetry.dlq``, misrouted records forwarded to their asset's partition, alert events to
``pm.alerts``, points to InfluxDB, model checkpoints to the changelog table (assets beyond the
memory budget are checkpointed and dropped, and restored from it on their next record).

Every output of a batch is acknowledged (by the broker, by InfluxDB) before the batch's offsets
are acked, so a crash replays instead of losing (at-least-once; outputs are idempotent). A bad
message never raises out of the loop; a failing send is retried with backoff until it goes
through, which slows the stream (backpressure) instead of dropping data. A send the broker refuses
for good (too large) is not retried: a forwarded frame is halved until its parts go through, and
a record refused on its own is dead-lettered (``undeliverable:<error>``). While a batch's outputs
wait for their acknowledgements, :meth:`TelemetryAgent.unacknowledged_s` says how long (``/ready``
turns 503 past ``PMAINT_READY_SEND_FAILURE_S``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from faust.types import EventT, StreamT

from streams import inflate
from streams.fleet import AssetState
from streams.fleet_clock import FleetClock
from streams.offsets import OffsetTracker
from streams.pipeline import ModelPipeline, Outputs
from streams.processor import (
    BatchResult,
    Encoded,
    Inbound,
    TelemetryProcessor,
    dead_letter_message,
    forward_frames,
    join_frame,
    record_to_message,
)
from streams.rul_batcher import RulBatcher
from streams.schema import DeadLetter
from streams.sinks.influx import InfluxSink
from streams.sinks.kafka import AlertPublisher

log = logging.getLogger("pmaint.agents")

STAGES = ("decode", "models", "publish", "save")  # of a batch part, timed in pmaint_stage_seconds
Rewind = Callable[[int, int], Awaitable[None]]

# the broker (or the producer's own check) refuses these for good: a retry cannot succeed
PERMANENT_SEND_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


async def deliver(send: Callable[[], Awaitable[Any]], what: str, attempts: int = 0) -> None:
    """Send and wait for the broker's ack, retrying with backoff until it succeeds.

    ``attempts`` > 0 bounds the tries (the last error is raised); 0 retries forever, which is
    what at-least-once needs: the batch is not acked until its outputs are. A permanent error
    (:data:`PERMANENT_SEND_ERRORS`) is raised at once.
    """
    delay, tries = 0.1, 0
    while True:
        tries += 1
        try:
            fut = await send()
            await fut
            return
        except (asyncio.CancelledError, *PERMANENT_SEND_ERRORS):
            raise
        except Exception as exc:
            if attempts and tries >= attempts:
                raise
            log.warning("send to %s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 10.0)


@dataclass
class Sinks:
    """Where a worker's outputs go. ``influx`` and ``batcher`` are optional."""

    telemetry: faust.TopicT
    dlq: faust.TopicT
    alerts: AlertPublisher
    checkpoints: MutableMapping[str, bytes]
    influx: InfluxSink | None = None
    batcher: RulBatcher | None = None
    started: bool = False

    async def start(self) -> None:
        if not self.started:
            self.started = True
            if self.influx is not None:
                await self.influx.start()
            if self.batcher is not None:
                await self.batcher.start()

    async def stop(self) -> None:
        if self.started:
            self.started = False
            if self.batcher is not None:
                await self.batcher.stop()
            if self.influx is not None:
                await self.influx.close()


def chunks(batch: list[Inbound], max_bytes: int) -> Iterator[list[Inbound]]:
    """``batch`` in parts of at most ``max_bytes`` (or one message): the assets a part brings
    into memory are evicted before the next part, so a batch of frames of many assets cannot
    take the fleet far past its budget.

    >>> [len(c) for c in chunks([Inbound("t", 0, i, b"x" * 40) for i in range(5)], 100)]
    [2, 2, 1]
    """
    part: list[Inbound] = []
    size = 0
    for message in batch:
        if part and size + len(message.value) > max_bytes:
            yield part
            part, size = [], 0
        part.append(message)
        size += len(message.value)
    if part:
        yield part


class TelemetryAgent:
    """Consumes telemetry in batches and publishes every output of a batch before acking it."""

    def __init__(
        self,
        processor: TelemetryProcessor,
        pipeline: ModelPipeline,
        sinks: Sinks,
        rewind: Rewind,
        batch_max: int = 500,
        batch_within_s: float = 0.05,
        tick_every_s: float = 1.0,
        save_max: int = 1000,
        chunk_bytes: int = 262_144,
    ) -> None:
        self.processor = processor
        self.pipeline = pipeline
        self.sinks = sinks
        self.metrics = processor.metrics
        self.batch_max = batch_max
        self.batch_within_s = batch_within_s
        self.tick_every_s = tick_every_s
        self.save_max = save_max  # idle assets checkpointed per batch
        self.chunk_bytes = chunk_bytes  # a batch is handled in parts of about this many bytes
        self.offsets = OffsetTracker()
        self.rewind = rewind  # seeks a telemetry partition back to an offset
        self._ticked = 0.0
        self._handled = 0.0  # when the last batch was done
        self._publishing_since: float | None = None
        self.clock = FleetClock()  # event-time "now" for silent-asset checks

    def unacknowledged_s(self) -> float:
        """How long the current batch's outputs have waited for their acknowledgements."""
        since = self._publishing_since
        return 0.0 if since is None else time.monotonic() - since

    async def __call__(self, stream: StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(
            self.batch_max, within=self.batch_within_s
        )
        async for events in batches:
            await self.handle(events)

    async def handle(self, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        stage = self.metrics.stage_seconds
        if self._handled:
            stage.labels("wait").inc(started - self._handled)
        await self.sinks.start()
        batch = [
            Inbound(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.value if isinstance(e.value, bytes) else bytes(e.value or b""),
                e.message.timestamp,
                inflate.INFLATE_HEADER in dict(e.message.headers or ()),
            )
            for e in events
        ]
        self.pipeline.swap()  # new RUL models start with a batch, never within one
        for chunk in chunks(await self.admit(batch), self.chunk_bytes):
            t0 = time.perf_counter()
            result = self.processor.process(chunk)
            t1 = time.perf_counter()
            out = await self.run_models(result)
            t2 = time.perf_counter()
            await self.publish(result, out)
            t3 = time.perf_counter()
            self.save_states(out)
            self.processor.count(result)
            t4 = time.perf_counter()
            for name, s in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stage.labels(name).inc(s)
        self._handled = time.perf_counter()
        self.metrics.batch_seconds.observe(self._handled - started)

    def save_states(self, out: Outputs) -> None:
        """Checkpoint the assets the pipeline asked for, those idle with changes older than the
        checkpoint interval (a few per batch: new assets' first checkpoints are coalesced, not
        one per first record), then evict the least recently seen beyond the budget."""
        fleet = self.processor.fleet
        for state in out.checkpoints:
            self.save(state)
        self.save_idle()
        for state in fleet.over_budget():
            if state.since_checkpoint:
                self.save(state)
            self.metrics.evictions.inc()
        self.metrics.assets.set(len(fleet))

    def save_idle(self) -> None:
        """Checkpoint up to ``save_max`` assets whose changes are older than the checkpoint
        interval (also run by a timer, so a worker without traffic saves its assets too)."""
        before = time.monotonic() - self.pipeline.config.checkpoint_interval_s
        for state in self.processor.fleet.unsaved_since(before, self.save_max):
            self.save(state)

    def save(self, state: AssetState) -> None:
        raw = self.pipeline.checkpoint(state)
        state.since_checkpoint = 0
        self.processor.fleet.saved(state.asset_id)
        if raw is None:
            self.metrics.checkpoints_too_large.inc()
            return
        self.sinks.checkpoints[state.asset_id] = raw
        self.metrics.checkpoints.inc()

    async def admit(self, batch: list[Inbound]) -> list[Inbound]:
        """The messages that follow on from what was processed; a partition whose messages
        jump ahead is rewound to the first missing offset (see :mod:`streams.offsets`)."""
        kept, skips = self.offsets.admit(batch)
        for skip in skips:
            log.warning(
                "partition %d: the consumer skipped offsets %d to %d; reading them again",
                skip.partition, skip.start, skip.end - 1,
            )  # fmt: skip
            await self.rewind(skip.partition, skip.start)
        return kept

    async def run_models(self, result: BatchResult) -> Outputs:
        out = Outputs()
        for record, state in result.records:
            self.clock.observe(record.asset_id, record.ts_ms / 1000)
            self.pipeline.observe(state, record, out)
            if state.last is not None and state.last.is_anomaly:
                self.metrics.anomalies.inc()
        if out.rul_due and self.sinks.batcher is not None:
            batcher = self.sinks.batcher
            forecasts = await asyncio.gather(
                *(batcher.predict(s.asset_id, w, model) for s, _, w, model in out.rul_due),
                return_exceptions=True,
            )
            for (state, record, _, _), forecast in zip(out.rul_due, forecasts, strict=True):
                if isinstance(forecast, BaseException):
                    log.warning("RUL forecast for %s failed: %s", state.asset_id, forecast)
                else:
                    self.pipeline.forecast(state, record, forecast, out)
            self.metrics.forecasts.inc(len(out.rul_due))
        now = time.monotonic()
        if result.records and now - self._ticked >= self.tick_every_s:
            self._ticked = now
            fleet = self.processor.fleet.assets
            fleet_now = self.clock.advance(len(fleet))
            if fleet_now > -math.inf:
                self.pipeline.tick(fleet_now, fleet, out)
        for event in out.alerts:
            self.metrics.alerts.labels(event.kind, event.severity, event.state).inc()
        return out

    async def publish(self, result: BatchResult, out: Outputs) -> None:
        self._publishing_since = time.monotonic()
        try:
            await self._publish(result, out)
        finally:
            self._publishing_since = None

    async def _publish(self, result: BatchResult, out: Outputs) -> None:
        now = time.time()
        dead = list(result.dead)
        unknown = Inbound(self.sinks.telemetry.get_topic_name(), -1, -1, b"")  # offset unknown
        for record, reason in out.failed:  # valid records a model failed on
            letter = DeadLetter(reason, orjson.dumps(record_to_message(record)), record.asset_id)
            dead.append((letter, unknown))
        forwards = []
        for partition, records in result.forward.items():
            frames, alone = forward_frames(records, self.processor.limits)
            forwards.append(self._forward(partition, frames, now))
            for record, encoded in alone:
                dead.append((DeadLetter("too_large", encoded, record.asset_id), unknown))
                self.metrics.dead_letters.labels("too_large").inc()
        sends = [self._dead_letter(letter, source, now) for letter, source in dead] + forwards
        if out.alerts:
            sends.append(self._publish_alerts(out))
        if out.points and self.sinks.influx is not None:
            sends.append(self._write_points(out))
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

    async def _publish_alerts(self, out: Outputs) -> None:
        delay = 0.1
        while True:
            try:
                await self.sinks.alerts.publish(out.alerts)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # idempotent: a resend repeats the same alert ids
                log.warning("publishing alerts failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _write_points(self, out: Outputs) -> None:
        assert self.sinks.influx is not None
        await self.sinks.influx.write(out.points)
        self.metrics.points.inc(len(out.points))
