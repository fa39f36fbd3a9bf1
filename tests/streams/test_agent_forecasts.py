"""RUL forecasts run off the event loop while the agent scores the next part: an asset's outputs
and checkpoints are those of a worker that waits for each part's forecasts."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import orjson

from models import state_codec
from models.monitor_config import MonitorConfig
from models.rul.serve import RulPredictor
from streams.agents import MIN_PART_RECORDS, Scored, TelemetryAgent
from streams.core.fleet import Fleet
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, PipelineConfig
from streams.core.processor import BatchResult, TelemetryProcessor
from streams.core.schema import Limits
from streams.core.served_models import ServedModel, ServingModels
from streams.publishing import Publication, Sinks
from streams.rul_service import RulService
from streams.sinks.kafka import AlertPublisher
from tests.models.test_rul_registry import tiny_artifact
from tests.streams.test_agent_order import NOW_MS, Event, GatedTopic, Message, kept_outputs

ASSETS, ROUNDS = 24, 48
FORWARD_FLOOR_S = 0.02  # a forward pass outlasts scoring the next part, however busy the machine


class Table(dict[str, bytes]):
    """The checkpoint table, keeping every checkpoint written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, bytes]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        self.written.append((key, value))
        super().__setitem__(key, value)


def frames() -> list[Event]:
    """A record of every asset a frame; half the assets drift towards failure."""
    rng = np.random.default_rng(5)
    out = []
    for n in range(ROUNDS):
        records = [
            {"asset_id": f"a{a:02d}", "ts": NOW_MS + n * 60_000, "sensors": {
                "s2": float(rng.normal(1.0 + (a % 2) * n / 10, 0.1)),
                "s3": float(rng.normal(2.0, 0.2)),
            }}
            for a in range(ASSETS)
        ]  # fmt: skip
        out.append(Event(Message("t", 0, n), orjson.dumps({"records": records})))
    return out


def slowed(predictor: RulPredictor) -> RulPredictor:
    """``predictor`` with forward passes of at least ``FORWARD_FLOOR_S``: parts overlap the
    forecasts before them because the test says so, not because the machine is quiet."""
    predict = predictor.predict

    def predict_slowly(windows: np.ndarray) -> object:
        time.sleep(FORWARD_FLOOR_S)
        return predict(windows)

    predictor.predict = predict_slowly  # type: ignore[method-assign,assignment]
    return predictor


def forecasting_agent(model: Path, max_records: int) -> tuple[TelemetryAgent, Table, RulService]:
    """An agent with a RUL model forecasting every other record of an asset, its checkpoint
    table and its RUL service (to be started)."""
    config = PipelineConfig(
        MonitorConfig(warm_up=10, novelty_warm_up=10), anomaly_every=3, rul_every=2,
        checkpoint_every=4,
    )  # fmt: skip
    served = ServingModels({None: ServedModel.of(slowed(RulPredictor.load(model, "cpu")))})
    dlq, table, service = GatedTopic(), Table(), RulService()
    dlq.gate.set()
    sinks = Sinks(dlq, dlq, AlertPublisher(dlq), table, rul=service)  # type: ignore[arg-type]
    processor = TelemetryProcessor(Limits(), 1, Fleet(), Metrics())
    worker = TelemetryAgent(processor, ModelPipeline(config, served), sinks, None)  # type: ignore[arg-type]
    worker.max_records, worker.tick_every_s = max_records, float("inf")
    return worker, table, service


def run(model: Path, batches: list[list[Event]], max_records: int) -> tuple[Table, dict, int]:
    """Every batch through an agent with a RUL model; the checkpoint table, each asset's
    outputs in order, and how many parts were scored while forecasts of another were running."""
    worker, table, service = forecasting_agent(model, max_records)
    overlapped = 0
    score = worker._score

    async def scored(part: BatchResult, tick: bool, overlap: bool, evict: bool) -> Scored:
        nonlocal overlapped
        overlapped += bool(worker.keeper.forecasting)
        return await score(part, tick, overlap, evict)

    # no checkpoint goes out with a part before the records its model has learned
    published: dict[str, int] = {}
    send = worker._send

    async def sent(pub: Publication) -> None:
        for part, _ in pub.parts:
            for record, _ in part.records:
                published[record.asset_id] = published.get(record.asset_id, 0) + 1
        for asset_id, raw in pub.checkpoints.items():
            learned = state_codec.decode(raw)["monitor"].records_seen
            assert learned <= published.get(asset_id, 0), (asset_id, learned)
        await send(pub)

    worker._score, worker._send = scored, sent  # type: ignore[method-assign]
    outputs = kept_outputs(worker)

    async def main() -> None:
        async with service:
            for batch in batches:
                await worker.handle(batch)  # type: ignore[arg-type]

    asyncio.run(main())
    return table, outputs, overlapped


def same(a: object, b: object) -> bool:
    """Equal, floats to float32 rounding: a forecast's last bits depend on which windows share
    its forward pass."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    if is_dataclass(a) and is_dataclass(b):
        names = [f.name for f in fields(a)]
        return type(a) is type(b) and same(
            [getattr(a, n) for n in names], [getattr(b, n) for n in names]
        )
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.allclose(a, b, 1e-5, 1e-5, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def by_records(table: Table) -> dict[tuple[str, int], object]:
    """Each written checkpoint, decoded, by asset and how many records it had seen; its
    anomaly monitor (no RUL in it) as encoded."""
    decoded = [(k, state_codec.decode(v)) for k, v in table.written]
    return {
        (k, v["records"]): v | {"monitor": state_codec.encode(v["monitor"])} for k, v in decoded
    }


def test_forecasts_overlapping_the_next_part_change_no_output_or_checkpoint(
    tmp_path: Path,
) -> None:
    tiny_artifact(tmp_path / "m", 1)
    events = frames()
    # a frame a batch, one part: each part's forecasts are awaited before anything else is done
    table_alone, alone, overlapped_alone = run(tmp_path / "m", [[f] for f in events], 1000)
    # four frames a batch, parts of 16 records: four assets' four records each
    batches = [events[i : i + 4] for i in range(0, ROUNDS, 4)]
    table, together, overlapped = run(tmp_path / "m", batches, MIN_PART_RECORDS)
    assert overlapped_alone == 0 and overlapped > 50
    forecasts = [p for k, v in together.items() if k.endswith(" rul") for p in v]
    assert len(forecasts) > ASSETS * ROUNDS // 4
    assert same(together, alone)
    # a checkpoint taken while its asset's forecast ran would lack it
    ckpt_alone, ckpt = by_records(table_alone), by_records(table)
    both = ckpt.keys() & ckpt_alone.keys()
    assert len(both) > ASSETS * 2
    assert all(same(ckpt[k], ckpt_alone[k]) for k in both)
    # three frames a batch: an asset's records in two parts, the second scored only once the
    # first part's forecasts are in (else the first part's checkpoint of the asset, deferred
    # until then, would hold the second part's records: `run` checks every publication)
    batches = [events[i : i + 3] for i in range(0, ROUNDS, 3)]
    _, together, overlapped = run(tmp_path / "m", batches, MIN_PART_RECORDS)
    assert overlapped > 20
    assert same(together, alone)


def test_parts_whose_forecasts_overlap_the_next_one_teach_the_part_budget(tmp_path: Path) -> None:
    """Once every part has RUL windows due, their forecasts, running while the next part is
    scored, are not part of its model work: the parts still learn the cost of a record, and
    the part size follows the budget (it would stay at ``max_records`` otherwise)."""
    tiny_artifact(tmp_path / "m", 1)
    worker, _, service = forecasting_agent(tmp_path / "m", 1000)
    events = frames()
    sizes: list[int] = []
    score = worker._score

    async def scored(part: BatchResult, tick: bool, overlap: bool, evict: bool) -> Scored:
        done = await score(part, tick, overlap, evict)
        sizes.append(len(part.records) if done.out.rul_due else 0)
        return done

    async def main() -> None:
        async with service:
            for i in range(0, ROUNDS // 2, 4):  # the RUL windows fill
                await worker.handle(events[i : i + 4])  # type: ignore[arg-type]
            worker._score = scored  # type: ignore[method-assign]
            worker._cost_s, worker.budget_s = 0.0, 1e-6  # a budget only the smallest parts meet
            for i in range(ROUNDS // 2, ROUNDS, 4):
                await worker.handle(events[i : i + 4])  # type: ignore[arg-type]

    asyncio.run(main())
    assert 0 not in sizes  # every part forecasts
    assert sizes[0] == ASSETS * 4 and set(sizes[1:]) == {MIN_PART_RECORDS}
