"""The checkpoint keeper: a checkpoint reaches the table only when written (after the outputs of
what it saw), a newer one taken meanwhile is not lost, and an asset whose RUL forecasts are
running is checkpointed once they are in (or with a later part, when they never come)."""

from __future__ import annotations

import asyncio

from streams.checkpoint_keeper import CheckpointKeeper
from streams.core.fleet import AssetState, Fleet
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, PipelineConfig
from streams.core.schema import Telemetry

NOW_MS = 1_700_000_000_000


def keeper(table: dict[str, bytes]) -> tuple[CheckpointKeeper, Fleet]:
    fleet = Fleet()
    pipeline = ModelPipeline(PipelineConfig())
    return CheckpointKeeper(fleet, pipeline, table, Metrics(), partitions=1), fleet


def seen(fleet: Fleet, asset_id: str, records: int = 1) -> AssetState:
    """The asset in memory after ``records`` records."""
    state = None
    for i in range(records):
        state = fleet.observe(Telemetry(asset_id, NOW_MS + i, {"s1": float(i)}), 0)
    assert state is not None
    return state


def test_a_checkpoint_reaches_the_table_only_when_written() -> None:
    table: dict[str, bytes] = {}
    keep, fleet = keeper(table)
    keep.ask([seen(fleet, "a1")])
    assert keep.save_idle(seconds=1.0) == 1
    assert table == {} and set(keep.unwritten) == {"a1"}
    taken = keep.take()
    assert set(taken) == {"a1"} and keep.take() == {}
    assert keep.checkpoint_of("a1") is taken["a1"]  # restorable before it is written
    asyncio.run(keep.write(taken))
    assert table == taken and keep.unwritten == {}
    assert keep.checkpoint_of("a1") is taken["a1"]


def test_a_newer_checkpoint_taken_meanwhile_stays_the_latest() -> None:
    table: dict[str, bytes] = {}
    keep, fleet = keeper(table)
    state = seen(fleet, "a1")
    keep.save(state)
    older = keep.take()
    seen(fleet, "a1", records=2)
    keep.save(state)
    newer = keep.take()
    asyncio.run(keep.write(older))
    assert table["a1"] is older["a1"]
    assert keep.unwritten["a1"] is newer["a1"]  # not yet in the table
    assert keep.checkpoint_of("a1") is newer["a1"]


def test_a_checkpoint_waits_for_the_assets_forecasts() -> None:
    keep, fleet = keeper({})
    state = seen(fleet, "a1")
    keep.forecasts_started({"a1"})
    keep.save(state)
    assert keep.take() == {} and keep.unwritten == {}  # deferred
    part: dict[str, bytes] = {}
    keep.forecasts_in({"a1"}, into=part)
    assert set(part) == {"a1"} and keep.forecasting == set()
    assert keep.take() == {}  # it goes out with the part that forecast


def test_forecasts_that_never_come_leave_the_checkpoint_due() -> None:
    keep, fleet = keeper({})
    state = seen(fleet, "a1")
    keep.forecasts_started({"a1"})
    keep.save(state)
    keep.forecasts_dropped()
    assert keep.forecasting == set()
    assert keep.save_idle(seconds=1.0) == 1
    assert set(keep.take()) == {"a1"}


def test_an_evicted_asset_is_checkpointed_only_when_it_changed() -> None:
    keep, fleet = keeper({})
    state = seen(fleet, "a1")
    keep.save(state)
    keep.take()
    keep.evicted(state)  # nothing since its checkpoint
    assert keep.take() == {}
    state.since_checkpoint += 1  # a record scored since (the pipeline counts them)
    keep.evicted(state)
    assert set(keep.take()) == {"a1"}
