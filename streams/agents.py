"""The telemetry agent: what flows through a worker.

Kafka ``pm.telemetry`` → batches of events → offset check (:mod:`streams.core.offsets`: records
faust skipped around a rebalance are read again) → :class:`TelemetryProcessor` (decode, validate,
route per asset, per-asset bookkeeping) → :class:`ModelPipeline` (anomaly monitor, drift, RUL
window, alert lifecycle) → RUL forecasts batched across assets → outputs: dead letters to
``pm.telemetry.dlq``, misrouted records forwarded to their asset's partition, alert events to
``pm.alerts``, points to InfluxDB, model checkpoints to the changelog table (assets beyond the
memory budget are checkpointed and dropped, and restored from it on their next record).

A batch (what arrived within ``PMAINT_BATCH_FILL_MS``) is decoded in chunks of about 256 KiB, and a
chunk scored in parts (at most ``PMAINT_BATCH_MAX_RECORDS`` records, sized so a part's model work,
which holds the event loop, takes about ``PMAINT_BATCH_BUDGET_MS``; an asset's records of the chunk
kept together, so the monitor takes them as one run; a part's RUL forecasts run off the event loop
while the next part is scored, unless it holds the same assets); each part's outputs are handed on
to be published while the next part is scored, parts scored while a publication awaits its
acknowledgements going out together in the next one (at most two publications in flight). Every
output of a batch is acknowledged (by the broker, by InfluxDB) before the batch's offsets are
acked, batches in the order they came, and an asset's checkpoint reaches the table only after the
outputs of the records it has seen; so a crash replays instead of losing (at-least-once; outputs
are idempotent). A bad message never raises out of the loop; a failing send is retried with backoff
until it goes through, which slows the stream (backpressure) instead of dropping data. While a
batch's outputs wait for their acknowledgements, :meth:`TelemetryAgent.unacknowledged_s` says how
long (``/ready`` turns 503 past ``PMAINT_READY_SEND_FAILURE_S``).

The agent orders this work; the parts are its own modules: the batch's chunks and parts
(:mod:`streams.core.batch_parts`), publishing a part's outputs (:mod:`streams.publishing`), taking
and writing checkpoints (:mod:`streams.checkpoint_keeper`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import faust
from faust.types import EventT, StreamT

from streams import inflate
from streams.checkpoint_keeper import CheckpointKeeper
from streams.core.batch_parts import chunks, split
from streams.core.fleet_clock import FleetClock
from streams.core.forecasts import RulForecast
from streams.core.offsets import OffsetTracker
from streams.core.pipeline import ModelPipeline, Outputs, RulDue, asset_runs
from streams.core.processor import BatchResult, Inbound, TelemetryProcessor
from streams.core.time_budget import TimeBudget
from streams.publishing import Publication, Publisher, Sinks
from streams.rul_service import RulService
from streams.settings import default

log = logging.getLogger("pmaint.agents")
Forecasts = asyncio.Task[list[tuple[RulDue, RulForecast]]]  # a part's RUL forecasts, running

# a part's publishing has a fixed cost (a Kafka request, an InfluxDB request): parts are not made
# smaller than this, whatever the budget
MIN_PART_RECORDS = 16
# of a part's budget, what checkpointing may add to it: a fleet whose checkpoints fall due
# together (every checkpoint_every records, every checkpoint_interval_s) is saved over many parts
CHECKPOINT_SHARE = 0.25
STAGES = ("decode", "models", "publish", "save")  # of a batch part, timed in pmaint_stage_seconds
Rewind = Callable[[int, int], Awaitable[None]]


def _average(mean: float, value: float) -> float:
    """An exponential moving average (the first value as it is)."""
    return value if not mean else 0.8 * mean + 0.2 * value


@dataclass
class Scored:
    """A part whose records are scored and whose checkpoints are taken; its RUL forecasts may
    still be running (``forecasts``), for the assets ``awaiting`` them."""

    part: BatchResult
    out: Outputs
    checkpoints: dict[str, bytes]
    forecasts: Forecasts | None = None
    awaiting: frozenset[str] = frozenset()

    def holds_any(self, part: BatchResult) -> bool:
        """Whether ``part`` has records of an asset awaiting this part's forecasts."""
        return not self.awaiting.isdisjoint(record.asset_id for record, _ in part.records)


class TelemetryAgent:
    """Consumes telemetry in bounded parts and publishes every output of a batch before acking
    it; the next part's models run while the previous part's outputs await their acks."""

    def __init__(
        self,
        processor: TelemetryProcessor,
        pipeline: ModelPipeline,
        sinks: Sinks,
        rewind: Rewind,
        batch_max: int = 500,
        budget_s: float = default("batch_budget_ms") / 1000,
        fill_s: float = default("batch_fill_ms") / 1000,
        max_records: int = default("batch_max_records"),
        tick_every_s: float = 1.0,
        chunk_bytes: int = 262_144,
        in_flight: int = 2,
    ) -> None:
        self.processor = processor
        self.pipeline = pipeline
        self.sinks = sinks
        self.metrics = processor.metrics
        self.batch_max = batch_max  # messages a batch takes at most
        self.budget_s = budget_s  # about how long a part's model work takes
        self.fill_s = fill_s  # longest a batch waits for more messages
        self.max_records = max_records  # records a part holds at most
        self.tick_every_s = tick_every_s
        self.chunk_bytes = chunk_bytes  # a batch is decoded in parts of about this many bytes
        self.in_flight = in_flight  # parts whose outputs may await their acks at once
        self.offsets = OffsetTracker()
        self.rewind = rewind  # seeks a telemetry partition back to an offset
        self._ticked = 0.0
        self._handled = 0.0  # when the last batch was handed on
        self._cost_s = 0.0  # model seconds per record, a moving average
        self._sends: deque[asyncio.Task[None]] = deque()  # in order; each awaits the one before
        self._parts: set[asyncio.Task[None]] = set()  # those of them that publish parts
        self._open: Publication | None = None  # the publication parts join until it starts
        self.publisher = Publisher(sinks, processor)
        self.keeper = CheckpointKeeper(
            processor.fleet, pipeline, sinks.checkpoints, self.metrics, processor.partitions
        )
        self.busy = False  # within feed()
        self.clock = FleetClock()  # event-time "now" for silent-asset checks

    def unacknowledged_s(self) -> float:
        """How long the current batch's outputs have waited for their acknowledgements."""
        return self.publisher.unacknowledged_s()

    async def __call__(self, stream: StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(self.batch_max, within=self.fill_s)
        try:
            async for events in batches:
                await self.take(events)
        except BaseException:
            for task in self._sends:  # unacked: read again after a restart or rebalance
                task.cancel()
            self._open = None  # cancelled with them: no later part may join it
            raise
        await self.drain()

    async def take(self, events: Sequence[EventT[bytes]]) -> None:
        """Process a batch; its events are acked once its outputs are acknowledged, after the
        batches before it (faust acks them when this returns: a reference held until then)."""
        for event in events:
            event.message.incref()
        await self.feed(events)
        self._then(partial(self._ack, events))

    async def handle(self, events: Sequence[EventT[bytes]]) -> None:
        """Process ``events`` and wait until all their outputs are acknowledged."""
        await self.feed(events)
        await self.drain()

    async def drain(self) -> None:
        """Wait until every output handed on so far is acknowledged."""
        while self._sends:
            await self._sends.popleft()

    async def feed(self, events: Sequence[EventT[bytes]]) -> None:
        """Process ``events`` in parts, handing each part's outputs on to be published (in
        order) while the next part is processed."""
        started = time.perf_counter()
        if self._handled:
            self.metrics.stage_seconds.labels("wait").inc(started - self._handled)
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
        self.busy = True
        try:
            await self._feed(batch)
        finally:
            self.busy = False
        self._handled = time.perf_counter()
        self.metrics.batch_seconds.observe(self._handled - started)

    async def _feed(self, batch: list[Inbound]) -> None:
        stage = self.metrics.stage_seconds
        ahead: Scored | None = None  # a part whose RUL forecasts run while the next is scored
        try:
            for chunk in chunks(await self.admit(batch), self.chunk_bytes):
                if ahead is not None:  # decoding restores assets from their checkpoints
                    await self._finish(ahead)
                    ahead = None
                t0 = time.perf_counter()
                result = self.processor.process(chunk)
                stage.labels("decode").inc(time.perf_counter() - t0)
                chunk_parts = split(result, self.part_records())
                for part in chunk_parts:
                    # silence is judged after a chunk's last part: before it, the assets of
                    # later parts have not had their records of the chunk yet
                    last = part is chunk_parts[-1]
                    tick = last and self._tick_due(part)
                    if ahead is not None and (tick or ahead.holds_any(part)):
                        await self._finish(ahead)  # an asset's work stays in order
                        ahead = None
                    scored = await self._score(part, tick, overlap=not tick, evict=last)
                    if ahead is not None:
                        await self._finish(ahead)
                    ahead = scored
                    if scored.forecasts is None:  # nothing to wait for: handed on now
                        await self._finish(scored)
                        ahead = None
            if ahead is not None:
                await self._finish(ahead)
        finally:  # cancelled: what awaited forecasts is saved with the next part, as if it had none
            self.keeper.forecasts_dropped()

    async def _score(self, part: BatchResult, tick: bool, overlap: bool, evict: bool) -> Scored:
        """Score ``part``, start its RUL forecasts (awaited here unless ``overlap``), with
        ``tick`` judge silent assets, and take the checkpoints due (those of assets awaiting a
        forecast only once it is in) and, with ``evict``, those of the assets evicted."""
        stage = self.metrics.stage_seconds
        t1 = time.perf_counter()
        out, forecasts = await self._models(part, tick, overlap)
        t2 = time.perf_counter()
        if forecasts is not None or not out.rul_due or self.sinks.rul is None:
            # (forecasts awaited here would count: a batch costs the same for 1 record or 1000)
            self._learn_cost(len(part.records), t2 - t1)
        awaiting = frozenset(d.state.asset_id for d in out.rul_due) if forecasts else frozenset()
        self.keeper.forecasts_started(awaiting)
        self.save_states(out, evict)
        taken = self.keeper.take()
        stage.labels("models").inc(t2 - t1)
        stage.labels("save").inc(time.perf_counter() - t2)
        return Scored(part, out, taken, forecasts, awaiting)

    async def _finish(self, scored: Scored) -> None:
        """Take ``scored``'s forecasts in (and the checkpoints that waited for them), then hand
        its outputs on to be published."""
        if scored.forecasts is not None:
            t = time.perf_counter()
            await self._apply(scored.forecasts, scored.out)
            self.keeper.forecasts_in(scored.awaiting, into=scored.checkpoints)
            self.metrics.stage_seconds.labels("models").inc(time.perf_counter() - t)
        self._hand_on(scored.part, scored.out, scored.checkpoints)
        # let the part's sends go out (and earlier acks come in) before the next part's model
        # work holds the event loop
        await asyncio.sleep(0)
        parts = self._parts
        parts.difference_update([t for t in parts if t.done()])
        while len(parts) > self.in_flight:  # backpressure: publications are bounded
            parts.discard(oldest := self._sends.popleft())
            await oldest

    def _hand_on(self, part: BatchResult, out: Outputs, checkpoints: dict[str, bytes]) -> None:
        """Publish ``part``'s outputs after everything handed on before: with the publication
        that has not started yet (``_open``: a publication leaves it when it starts sending), or
        in a new one (when none waits, or it holds ``max_records`` already)."""
        for event in out.alerts:
            self.metrics.alerts.labels(event.kind, event.severity, event.state).inc()
        pub = self._open
        if pub is None or pub.records >= self.max_records:
            pub = self._open = Publication()
            self._parts.add(self._then(partial(self._send, pub)))
        pub.add(part, out, checkpoints)

    def part_records(self) -> int:
        """Records in the next part: as many as the budget's model work allows (per-record
        cost learned from parts without RUL forecasts), at least :data:`MIN_PART_RECORDS`, at
        most ``max_records``. The event loop is held for a part's model work: the outputs of
        the part before (and the fetch of the next batch) wait that long, so a part never
        grows with a backlog (a backlog is worked off in more parts, not larger ones)."""
        if self._cost_s <= 0:
            return self.max_records
        return min(self.max_records, max(MIN_PART_RECORDS, int(self.budget_s / self._cost_s)))

    def _learn_cost(self, records: int, seconds: float) -> None:
        if records:
            self._cost_s = _average(self._cost_s, seconds / records)

    def _then(self, send: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``send`` once every send handed on before it is done (outputs and acks keep
        their order)."""
        previous = self._sends[-1] if self._sends else None

        async def after() -> None:
            if previous is not None:
                await previous
            await send()

        task = asyncio.create_task(after(), name="pmaint.send")
        self._sends.append(task)
        return task

    async def _send(self, pub: Publication) -> None:
        if self._open is pub:  # sending: closed to new parts
            self._open = None
        started = time.perf_counter()
        await self.publisher.publish(pub.parts)
        self.metrics.stage_seconds.labels("publish").inc(time.perf_counter() - started)
        await self.keeper.write(pub.checkpoints)  # now that what they saw is published
        for part, _ in pub.parts:
            self.processor.count(part)

    async def _ack(self, events: Sequence[EventT[bytes]]) -> None:
        for event in events:
            event.ack()

    def save_states(self, out: Outputs, evict: bool = True) -> None:
        """Checkpoint the assets the pipeline asked for, those idle with changes older than the
        checkpoint interval (a few per batch: new assets' first checkpoints are coalesced, not
        one per first record), then, with ``evict``, evict the least recently seen beyond the
        budget. The agent evicts after a chunk's last part only: before it, the least recently
        seen could be assets of the chunk not scored yet, whose learning would then go to a state
        no longer in the fleet (so the fleet holds up to a chunk's assets over the budget)."""
        fleet = self.processor.fleet
        self.keeper.ask(out.checkpoints)
        self.save_idle()
        for state in fleet.over_budget() if evict else ():
            self.keeper.evicted(state)
            self.metrics.evictions.inc()
        self.metrics.assets.set(len(fleet))

    def save_idle(self, share: float = CHECKPOINT_SHARE) -> int:
        """Checkpoint the assets the pipeline asked for, then those with changes older than the
        checkpoint interval, for at most ``share`` of a part's budget
        (:meth:`CheckpointKeeper.save_idle`). Also run by a timer, budget after budget while no
        batch is in, so a worker without traffic saves its assets too. Returns how many were
        saved."""
        return self.keeper.save_idle(self.budget_s * share)

    def watch_stored(self, share: float = 1.0) -> int:
        """Watch stored assets for silence, reading their checkpoints for at most ``share`` of a
        part's budget (:meth:`CheckpointKeeper.watch_stored`); returns how many were taken."""
        return self.keeper.watch_stored(self.budget_s * share)

    def hand_on_checkpoints(self) -> None:
        """Write the checkpoints taken since the last part once everything handed on before
        them is acknowledged (the timer's idle saves)."""
        if taken := self.keeper.take():
            self._then(partial(self.keeper.write, taken))

    def revive_silent(self, now: float) -> None:
        """Bring the watched assets whose silence matters at event time ``now`` back into
        memory (the alert engine's tick then judges them), for at most a share of a part's
        budget (16 at least); the rest wait for the next tick."""
        budget = TimeBudget(self.budget_s * CHECKPOINT_SHARE)
        fleet = self.processor.fleet
        for chunk in budget.chunks_of(lambda limit: fleet.silent.pop_due(now, limit)):
            for asset_id, partition in chunk:
                fleet.revive(asset_id, partition)

    async def admit(self, batch: list[Inbound]) -> list[Inbound]:
        """The messages that follow on from what was processed; a partition whose messages
        jump ahead is rewound to the first missing offset (see :mod:`streams.core.offsets`)."""
        kept, skips = self.offsets.admit(batch)
        for skip in skips:
            log.warning(
                "partition %d: the consumer skipped offsets %d to %d; reading them again",
                skip.partition, skip.start, skip.end - 1,
            )  # fmt: skip
            await self.rewind(skip.partition, skip.start)
        return kept

    async def run_models(self, result: BatchResult, tick: bool = True) -> Outputs:
        """Score ``result``'s records (each asset's as one run), forecast the RUL windows due
        and, with ``tick``, at most every ``tick_every_s``, move the fleet's clock and judge
        silent assets."""
        out, _ = await self._models(result, tick and self._tick_due(result), overlap=False)
        return out

    async def _models(
        self, result: BatchResult, tick: bool, overlap: bool
    ) -> tuple[Outputs, Forecasts | None]:
        """Score ``result``, start its RUL forecasts (the running task returned with
        ``overlap``, else awaited and applied) and, with ``tick``, judge silent assets."""
        out = self.score(result)
        forecasts = self._start_forecasts(out.rul_due)
        if forecasts is not None and not overlap:
            await self._apply(forecasts, out)
            forecasts = None
        if tick:
            self.tick(out)
        return out, forecasts

    def score(self, result: BatchResult) -> Outputs:
        """Score ``result``'s records, each asset's as one run; RUL windows due in ``rul_due``."""
        out = Outputs()
        for record, _ in result.records:
            self.clock.observe(record.asset_id, record.ts_ms / 1000)
        for state, records in asset_runs(result.records):
            self.metrics.anomalies.inc(self.pipeline.observe_run(state, records, out))
        return out

    def _start_forecasts(self, due: list[RulDue]) -> Forecasts | None:
        """The forecasts of ``due``, one forward pass per model, running off the event loop."""
        if not due or self.sinks.rul is None:
            return None
        return asyncio.create_task(self._forecasts(self.sinks.rul, due), name="pmaint.rul")

    async def _forecasts(
        self, rul: RulService, due: list[RulDue]
    ) -> list[tuple[RulDue, RulForecast]]:
        by_model: dict[int, list[RulDue]] = {}  # one forward pass per model
        for d in due:
            by_model.setdefault(id(d.predictor), []).append(d)
        made: list[tuple[RulDue, RulForecast]] = []
        for group in by_model.values():
            model = group[0].predictor
            try:
                forecasts = await rul.predict_many(model, [d.window for d in group])
            except Exception as exc:  # those forecasts are lost, the stream goes on
                log.warning(
                    "%d RUL forecasts (model %s) failed: %s", len(group), model.version, exc
                )  # fmt: skip
                continue
            made += zip(group, forecasts, strict=True)
        return made

    async def _apply(self, forecasts: Forecasts, out: Outputs) -> None:
        """Take the forecasts into ``out`` and their assets' alert lifecycles, in order."""
        made = await forecasts
        for due, forecast in made:
            self.pipeline.forecast(due, forecast, out)
        self.metrics.forecasts.inc(len(made))

    def _tick_due(self, result: BatchResult) -> bool:
        """Whether a part of ``result``'s records is the time to tick (every ``tick_every_s``)."""
        return bool(result.records) and time.monotonic() - self._ticked >= self.tick_every_s

    def tick(self, out: Outputs) -> None:
        """Move the fleet's clock and judge silent assets (their alerts into ``out``)."""
        self._ticked = time.monotonic()
        fleet = self.processor.fleet
        fleet_now = self.clock.advance(len(fleet))
        if fleet_now > -math.inf:
            self.revive_silent(fleet_now)
            for asset_id in self.pipeline.tick(fleet_now, fleet.assets, out):
                fleet.changed(asset_id)  # its alert state is due a checkpoint
