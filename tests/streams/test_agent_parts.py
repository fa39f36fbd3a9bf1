"""How the agent hands parts on: parts scored while a publication awaits its acknowledgements go
out together in the next one, still acked in order; checkpoints that fall due together are taken
over several parts, not in one long hold of the event loop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import orjson

from models import state_codec
from models.monitor_config import MonitorConfig
from models.simulator import FleetSimulator
from streams.agents import MIN_PART_RECORDS, TelemetryAgent
from streams.core.alert_event import AlertEvent
from streams.core.fleet import Fleet
from streams.core.line_protocol import Point
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.processor import BatchResult, TelemetryProcessor
from streams.core.schema import Limits
from tests.streams.test_agent_order import NOW_MS, Event, GatedTopic, Message, kept_outputs, take


def agent(dlq: GatedTopic, table: dict[str, bytes], budget_s: float = 0.02) -> TelemetryAgent:
    from streams.publishing import Sinks
    from streams.sinks.kafka import AlertPublisher

    processor = TelemetryProcessor(Limits(), 1, Fleet(), Metrics())
    sinks = Sinks(dlq, dlq, AlertPublisher(dlq), table)  # type: ignore[arg-type]
    pipeline = ModelPipeline(PipelineConfig(checkpoint_every=1))
    return TelemetryAgent(processor, pipeline, sinks, None, budget_s=budget_s)  # type: ignore[arg-type]


def record(asset: str, offset: int) -> Event:
    value = orjson.dumps({"asset_id": asset, "ts": NOW_MS + offset, "sensors": {"s1": 1.0}})
    return Event(Message("t", 0, offset), value)


def test_parts_scored_while_outputs_are_in_flight_are_published_together_in_order() -> None:
    async def run() -> None:
        dlq, table = GatedTopic(), dict[str, bytes]()
        worker = agent(dlq, table)
        published: list[int] = []
        publish = worker.publisher.publish

        async def counted(parts: Sequence[tuple[BatchResult, Outputs]]) -> None:
            published.append(len(parts))
            await publish(parts)

        worker.publisher.publish = counted  # type: ignore[method-assign]
        batches = [[Event(Message("t", 0, 2 * i), f"bad {i}".encode()), record("a1", 2 * i + 1)]
                   for i in range(4)]  # fmt: skip
        for batch in batches:  # the first one's dead letter is held at the gate
            await take(worker, batch)
        await asyncio.sleep(0.05)
        assert published == [1] and not any(e.message.acked for b in batches for e in b)
        dlq.gate.set()
        await worker.drain()
        assert published == [1, 3]  # the three parts scored meanwhile: one publication
        assert dlq.sent == [f"bad {i}".encode() for i in range(4)]  # in order
        assert all(e.message.acked for b in batches for e in b)
        assert set(table) == {"a1"}

    asyncio.run(run())


def test_checkpoints_due_together_are_taken_over_several_parts() -> None:
    async def run() -> None:
        dlq, table = GatedTopic(), dict[str, bytes]()
        dlq.gate.set()
        worker = agent(dlq, table, budget_s=1e-9)  # the least a part takes: 16 checkpoints
        await worker.handle([record(f"a{i}", i) for i in range(40)])  # type: ignore[arg-type]
        assert len(table) == 16  # every asset asked for one (checkpoint_every=1)
        for taken in (32, 40, 40):  # later parts, or the idle timer, take the rest
            worker.save_idle()
            worker.hand_on_checkpoints()
            await worker.drain()
            assert len(table) == taken
        assert worker.keeper.unwritten == {}

    asyncio.run(run())


def test_a_part_does_not_grow_with_a_backlog() -> None:
    worker = agent(GatedTopic(), {}, budget_s=0.02)
    worker._learn_cost(100, 0.1)  # 1 ms a record
    assert worker.part_records() == 20
    worker._learn_cost(100, 10.0)  # slow: parts shrink to the floor, never grow
    assert worker.part_records() == MIN_PART_RECORDS


def test_silence_is_judged_only_after_every_asset_of_a_chunk_had_its_records() -> None:
    """A chunk's parts take assets in turn; judged between them, an asset whose records come in
    a later part would look silent for as long as the chunk spans."""

    async def run() -> None:
        dlq, table = GatedTopic(), dict[str, bytes]()
        dlq.gate.set()
        worker = agent(dlq, table)
        worker.max_records, worker.tick_every_s = MIN_PART_RECORDS, 0.0  # every part may tick
        assets = ("a", "b", "c", "d")

        def batch(start: int, rounds: int) -> list[Event]:  # a reading a minute, interleaved
            return [
                Event(Message("t", 0, start + n), orjson.dumps(
                    {"asset_id": a, "ts": NOW_MS + (start + n) * 15_000, "sensors": {"s1": n % 7}}
                ))
                for n, a in enumerate(a for _ in range(rounds) for a in assets)
            ]  # fmt: skip

        await worker.handle(batch(0, 1))  # type: ignore[arg-type]
        await worker.handle(batch(4, 20))  # type: ignore[arg-type]  # 20 min in 5 parts
        events = [orjson.loads(m) for m in dlq.sent]
        assert [e for e in events if isinstance(e, dict) and "kind" in e] == []
        assert len(worker.processor.fleet) == 4

    asyncio.run(run())


def test_grouping_a_chunk_by_asset_changes_no_assets_outputs() -> None:
    """Each asset's points and alert events, in order, are the same whether the monitor takes its
    records one message at a time (in arrival order) or a chunk's records as one run each."""
    sim = FleetSimulator(assets=20, seed=3, fault_share=0.5, fault_rate=0.05, start_ms=NOW_MS)
    frames, frame = [], []
    for rec in sim.records(20 * 300):
        frame.append(rec.to_message())
        if len(frame) == 20:  # a record of every asset a frame, as the simulator's gateway sends
            value = orjson.dumps({"records": frame})
            frames.append(Event(Message("t", 0, len(frames)), value))
            frame = []

    def outputs(batches: list[list[Event]]) -> dict[str, list[object]]:
        dlq = GatedTopic()
        dlq.gate.set()
        worker = agent(dlq, {})
        worker.pipeline = ModelPipeline(  # scored from the 30th record, a point every 5th
            PipelineConfig(MonitorConfig(warm_up=30, novelty_warm_up=30), anomaly_every=5)
        )
        worker.tick_every_s = math.inf  # the clock's ticks come by wall time: none here
        by_asset = kept_outputs(worker)

        async def run() -> None:
            for batch in batches:
                await worker.handle(batch)  # type: ignore[arg-type]

        asyncio.run(run())
        return by_asset

    one_by_one = outputs([[f] for f in frames])
    grouped = outputs([frames])  # chunks of 256 KiB: ~30 records an asset a run
    scores = [p.fields["score"] for v in grouped.values() for p in v
              if isinstance(p, Point) and p.measurement == "anomaly"]  # fmt: skip
    assert len(scores) > 1000 and sum(s > 0 for s in scores) > 500  # type: ignore[operator]
    assert any(isinstance(e, AlertEvent) for v in grouped.values() for e in v)
    assert grouped == one_by_one


def test_a_chunk_of_more_assets_than_the_budget_loses_no_assets_learning() -> None:
    """A chunk holding more assets than the memory budget: every asset's record is learned, and
    each asset is either in memory or checkpointed (none is evicted between its decoding and its
    scoring, which would leave its learning on a state nobody saves)."""

    async def run() -> None:
        dlq, table = GatedTopic(), dict[str, bytes]()
        dlq.gate.set()
        worker = agent(dlq, table)
        worker.processor.fleet.budget, worker.max_records = 10, MIN_PART_RECORDS
        ids = [f"a{i:03d}" for i in range(60)]
        records = [{"asset_id": a, "ts": NOW_MS, "sensors": {"s1": 1.0}} for a in ids]
        await worker.handle([Event(Message("t", 0, 0), orjson.dumps({"records": records}))])  # type: ignore[list-item]
        fleet = worker.processor.fleet
        assert len(fleet) <= 10
        learned = {
            a: fleet.assets[a].monitor.records_seen
            if a in fleet.assets
            else state_codec.decode(table[a])["monitor"].records_seen
            for a in ids
            if a in fleet.assets or a in table
        }
        assert learned == dict.fromkeys(ids, 1)

    asyncio.run(run())
