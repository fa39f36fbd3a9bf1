"""The agent's delivery order: a batch's events are acked only after its outputs are
acknowledged and after every batch before it, while the next batch is already processed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.agents import TelemetryAgent
from streams.core.batch_parts import split
from streams.core.fleet import Fleet
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.processor import BatchResult, TelemetryProcessor
from streams.core.schema import Limits, Telemetry
from streams.publishing import Sinks
from streams.sinks.kafka import AlertPublisher

NOW_MS = 1_767_225_600_000


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    refs: int = 1  # the stream's own reference, as faust's conductor takes it
    acked: bool = False

    def incref(self) -> None:
        self.refs += 1

    def ack(self) -> None:
        self.refs -= 1
        self.acked = self.refs == 0


@dataclass
class Event:
    message: Message
    value: bytes

    def ack(self) -> None:
        self.message.ack()


class GatedTopic:
    """A topic whose sends are acknowledged only once ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[bytes] = []

    def get_topic_name(self) -> str:
        return "t.dlq"

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs["value"])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().create_task(self._ack(done))
        return done

    async def _ack(self, done: asyncio.Future[None]) -> None:
        await self.gate.wait()
        done.set_result(None)


def agent(dlq: GatedTopic, table: dict[str, bytes]) -> TelemetryAgent:
    processor = TelemetryProcessor(Limits(), 1, Fleet(), Metrics())
    sinks = Sinks(dlq, dlq, AlertPublisher(dlq), table)  # type: ignore[arg-type]
    return TelemetryAgent(processor, ModelPipeline(PipelineConfig(checkpoint_every=1)), sinks, None)  # type: ignore[arg-type]


async def take(worker: TelemetryAgent, events: list[Event]) -> None:
    """As faust's ``take_events`` hands a batch to the agent: its own ack follows the body."""
    await worker.take(events)  # type: ignore[arg-type]
    for event in events:
        event.ack()


def kept_outputs(worker: TelemetryAgent) -> dict[str, list[object]]:
    """Each asset's published points (``"<asset> <measurement>"``) and alert events
    (``"<asset> alerts"``), in order, as ``worker`` publishes them from now on."""
    kept: dict[str, list[object]] = {}
    publish = worker.publisher.publish

    async def keeping(parts: Sequence[tuple[BatchResult, Outputs]]) -> None:
        for _, out in parts:
            for p in out.points:
                kept.setdefault(f"{p.tags['asset_id']} {p.measurement}", []).append(p)
            for e in out.alerts:
                kept.setdefault(f"{e.asset_id} alerts", []).append(e)
        await publish(parts)

    worker.publisher.publish = keeping  # type: ignore[method-assign]
    return kept


def good(offset: int) -> Event:
    value = orjson.dumps({"asset_id": "a1", "ts": NOW_MS + offset, "sensors": {"s1": 1.0}})
    return Event(Message("t", 0, offset), value)


def test_a_batch_is_acked_after_its_outputs_and_the_batches_before_it() -> None:
    async def run() -> None:
        dlq, table = GatedTopic(), dict[str, bytes]()
        worker = agent(dlq, table)
        first = [Event(Message("t", 0, 0), b"not json")]  # a dead letter, held at the gate
        second = [good(1), good(2)]
        await take(worker, first)
        await take(worker, second)  # processed while the first batch's output is in flight
        await asyncio.sleep(0.05)
        assert worker.processor.fleet.assets["a1"].records == 2
        assert not any(e.message.acked for e in first + second)
        assert table == {}  # a1's checkpoint waits for the outputs before it
        dlq.gate.set()
        await worker.drain()
        assert all(e.message.acked for e in first + second)
        assert set(table) == {"a1"} and len(dlq.sent) == 1

    asyncio.run(run())


def test_split_keeps_every_record_once_an_assets_together_and_the_dead_letters_first() -> None:
    assets = "abcab" + "ca"  # interleaved, as frames of several assets arrive
    records = [(Telemetry(a, i, {}), None) for i, a in enumerate(assets)]
    result = BatchResult(records=records, dead=[("d", 0)])  # type: ignore[arg-type,list-item]
    parts = split(result, 3)
    assert [len(p.records) for p in parts] == [3, 3, 1]
    kept = [r for p in parts for r in p.records]
    assert sorted(kept, key=lambda r: r[0].ts_ms) == records  # each record once
    # each asset's records together and in their order, assets as they first appeared
    assert [(r.asset_id, r.ts_ms) for r, _ in kept] == [
        ("a", 0), ("a", 3), ("a", 6), ("b", 1), ("b", 4), ("c", 2), ("c", 5)
    ]  # fmt: skip
    assert [len(p.dead) for p in parts] == [1, 0, 0]
