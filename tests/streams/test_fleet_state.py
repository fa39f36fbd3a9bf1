"""Per-asset state bounds without a broker: sensor cap, budget, coalesced and safe checkpoints."""

from __future__ import annotations

import logging
import pickle
import tracemalloc

import orjson
import pytest

from models import state_codec
from models.errors import ArtifactError
from models.monitor_config import MonitorConfig
from models.policy import DetectorPolicy
from streams.core.fleet import SENSOR_SETS, AssetState, Fleet, stored_alerts
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.processor import TOO_MANY_SENSORS, Inbound, TelemetryProcessor
from streams.core.routing import partition_for
from streams.core.schema import Limits, Telemetry

NOW_MS = 1_767_225_600_000


def rec(asset: str, i: int, sensors: dict[str, float] | None = None) -> Telemetry:
    return Telemetry(asset, NOW_MS + i * 1000, sensors or {"s1": 1.0 + i % 3, "s2": 2.0})


def test_a_record_past_the_sensor_cap_is_refused_and_changes_nothing() -> None:
    fleet = Fleet(max_sensors=3)
    assert fleet.observe(rec("a", 0, {"x": 1.0, "y": 1.0}), 0) is not None
    assert fleet.observe(rec("a", 1, {"x": 1.0, "z": 1.0, "w": 1.0}), 0) is None
    state = fleet.assets["a"]
    assert state.records == 1 and state.sensors == {"x", "y"}
    assert fleet.observe(rec("a", 2, {"x": 2.0, "z": 1.0}), 0) is not None  # 3 names: at cap
    assert fleet.observe(rec("a", 3, {"y": 2.0, "z": 1.0}), 0) is not None  # known names pass


def test_processor_dead_letters_the_whole_record_with_its_reason() -> None:
    asset = "churn-1"
    home = partition_for(asset, 4)
    processor = TelemetryProcessor(Limits(), 4, Fleet(max_sensors=1000), Metrics())
    batch = [
        Inbound("t", home, i, orjson.dumps({
            "asset_id": asset, "ts": NOW_MS + i,
            "sensors": {f"s{i}_{j}": 1.0 for j in range(400)},
        }))
        for i in range(5)
    ]  # fmt: skip
    result = processor.process(batch)
    assert len(result.records) == 2 and len(result.dead) == 3
    for dead, source in result.dead:
        assert dead.reason == TOO_MANY_SENSORS and dead.asset_id == asset
        assert len(orjson.loads(dead.payload)["sensors"]) == 400  # nothing lost
        assert source.offset >= 2


def test_sensor_churn_memory_is_linear_and_small() -> None:
    """D4: 300 records of 1,000 new names each held 20 M cached names before the cap."""
    pipeline = ModelPipeline(PipelineConfig())
    fleet = Fleet(max_sensors=1000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(300):
        record = rec("churn", i, {f"sensor_{i}_{j:03d}": float(j) for j in range(1000)})
        state = fleet.observe(record, 0)
        if state is not None:
            pipeline.observe(state, record, Outputs())
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert fleet.assets["churn"].records == 1
    assert len(SENSOR_SETS) <= SENSOR_SETS.max_entries
    assert held < 5_000_000, held  # one asset's 1,000 sensors, not 300 cached sets


def test_least_recently_seen_assets_are_evicted_first() -> None:
    forgotten: list[str] = []
    fleet = Fleet(forget=forgotten.append, budget=2)
    for asset in ("a", "b", "a", "c"):
        fleet.observe(rec(asset, 0), 0)
    evicted = [s.asset_id for s in fleet.over_budget()]
    assert evicted == ["b"] == forgotten and list(fleet.assets) == ["a", "c"]


def test_unsaved_assets_come_due_oldest_first_and_once() -> None:
    now = [0.0]
    fleet = Fleet(clock=lambda: now[0])
    for i, asset in enumerate(("a", "b", "c")):
        now[0] = float(i)
        fleet.observe(rec(asset, i), 0)
    fleet.observe(rec("a", 9), 0)  # still unsaved since t=0
    assert [s.asset_id for s in fleet.unsaved_since(1.0, limit=10)] == ["a", "b"]
    assert fleet.unsaved_since(1.0, limit=10) == []
    assert [s.asset_id for s in fleet.unsaved_since(5.0, limit=1)] == ["c"]


def test_new_assets_are_not_checkpointed_on_their_first_record() -> None:
    pipeline = ModelPipeline(PipelineConfig(checkpoint_every=3))
    out = Outputs()
    state = AssetState("a", 0, NOW_MS)
    for i in range(7):
        state.observe(rec("a", i))
        pipeline.observe(state, rec("a", i), out)
    assert [s.asset_id for s in out.checkpoints] == ["a", "a"]  # records 3 and 6


def test_a_fleet_reporting_in_step_falls_due_apart() -> None:
    pipeline = ModelPipeline(PipelineConfig(checkpoint_every=20))
    states = [AssetState(f"asset-{i:03d}", 0, NOW_MS) for i in range(40)]
    due: dict[str, list[int]] = {s.asset_id: [] for s in states}
    for i in range(1, 41):
        out = Outputs()
        for state in states:
            state.observe(rec(state.asset_id, i))
            pipeline.observe(state, rec(state.asset_id, i), out)
        for state in out.checkpoints:
            due[state.asset_id].append(i)
    firsts = [records[0] for records in due.values()]
    assert all(11 <= first <= 20 for first in firsts)  # after half the interval, at the latest
    assert len(set(firsts)) >= 8  # spread, not all at once
    assert all(records[1] - records[0] == 20 for records in due.values())  # then every 20


def trained_state(asset: str = "a") -> tuple[ModelPipeline, AssetState]:
    pipeline = ModelPipeline(PipelineConfig())
    state = AssetState(asset, 0, NOW_MS)
    for i in range(60):
        state.observe(rec(asset, i))
        pipeline.observe(state, rec(asset, i), Outputs())
    return pipeline, state


def test_checkpoint_restores_the_asset_exactly() -> None:
    pipeline, state = trained_state()
    raw = pipeline.checkpoint(state)
    assert raw is not None
    other = ModelPipeline(PipelineConfig())
    back = AssetState("a", 0, NOW_MS)
    assert other.restore(back, raw)
    assert (back.records, back.sensors, back.restored) == (60, state.sensors, True)
    assert back.monitor is not None and state.monitor is not None
    a, b = Outputs(), Outputs()
    pipeline.observe(state, rec("a", 61), a)
    other.observe(back, rec("a", 61), b)
    assert state.last == back.last


def test_a_restored_asset_runs_under_the_restoring_workers_policy() -> None:
    """A checkpoint written before a policy change (or new default detectors) must not keep
    the asset on its old settings: the changed parts start afresh, the rest keeps learning."""
    old = ModelPipeline(PipelineConfig(monitor=MonitorConfig(detectors=("spike", "shift"))))
    state = AssetState("pump-1", 0, NOW_MS)
    for i in range(60):
        state.observe(rec("pump-1", i))
        old.observe(state, rec("pump-1", i), Outputs())
    raw = old.checkpoint(state)
    assert raw is not None and state.monitor is not None
    policy = DetectorPolicy.from_toml('[[rule]]\nassets = "pump-*"\nhold = 3\n')
    new = ModelPipeline(PipelineConfig(detectors=policy))
    back = AssetState("pump-1", 0, NOW_MS)
    assert new.restore(back, raw) and back.monitor is not None
    assert back.monitor.config.detectors == ("spike", "shift")  # as written, until a record
    new.observe(back, rec("pump-1", 60), Outputs())
    assert back.monitor.config is policy.config_for("pump-1", None)  # shared, not a copy
    assert back.monitor._level is not None and back.monitor._alarm.hold == 3
    assert back.monitor.records_seen == 61  # learned state kept: no second warm-up
    learned = back.monitor._scorer
    new.observe(back, rec("pump-1", 61), Outputs())
    assert back.monitor._scorer is learned and not back.settings_due  # adopted once


@pytest.mark.parametrize(
    "raw", [pickle.dumps({"v": 1}), b"", b"pmst\x01junk", b"pmst\x02" + b"x" * 10]
)
def test_a_bad_checkpoint_is_refused_with_a_warning(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = ModelPipeline(PipelineConfig())
    state = AssetState("a", 0, NOW_MS)
    with caplog.at_level(logging.WARNING, logger="pmaint.pipeline"):
        assert not pipeline.restore(state, raw)
    assert "checkpoint of 'a' refused" in caplog.text
    assert state.records == 0 and state.monitor is None and not state.restored


def test_a_checkpoint_over_the_request_limit_is_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline, state = trained_state()
    size = len(pipeline.checkpoint(state) or b"")
    small = ModelPipeline(PipelineConfig(checkpoint_max_bytes=size - 1))
    with caplog.at_level(logging.WARNING, logger="pmaint.pipeline"):
        assert small.checkpoint(state) is None
    assert f"is {size} bytes, over the limit of {size - 1}" in caplog.text


def test_a_version_2_checkpoint_is_converted() -> None:
    """Version 2 also held the open alerts, a copy of what the alert state says."""
    pipeline, state = trained_state()
    data = state_codec.decode(state.encode())
    old = data | {"v": 2, "open_alerts": {"anomaly": "warning"}}
    back = AssetState("a", 0, NOW_MS)
    assert pipeline.restore(back, state_codec.encode(old))
    assert back.records == state.records and back.alerts == state.alerts
    assert back.alert.to_data() == state.alert.to_data()


def test_a_silent_asset_is_revived_from_its_checkpoint_as_the_next_to_evict() -> None:
    pipeline, state = trained_state("quiet")
    raw = pipeline.checkpoint(state)
    assert raw is not None

    def restore(s: AssetState) -> None:
        pipeline.restore(s, raw)

    fleet = Fleet(restore, budget=2)
    for asset in ("a", "b"):
        fleet.observe(rec(asset, 1), partition=0)
    revived = fleet.revive("quiet", partition=3)
    assert revived is not None and revived.restored and revived.records == 60
    assert revived.partition == 3 and revived.alert.seen == state.alert.seen
    assert fleet.revive("quiet", partition=3) is None  # in memory already
    assert [s.asset_id for s in fleet.over_budget()] == ["quiet"]


def test_an_asset_with_no_checkpoint_is_not_revived() -> None:
    fleet = Fleet(lambda s: None)
    assert fleet.revive("never-saved", partition=0) is None and len(fleet) == 0


def test_an_alert_change_makes_an_asset_due_a_checkpoint() -> None:
    fleet = Fleet(clock=lambda: 5.0)
    state = fleet.observe(rec("a", 1), partition=0)
    assert state is not None
    fleet.saved("a")
    state.since_checkpoint = 0
    fleet.changed("a")
    assert state.since_checkpoint == 1
    assert [s.asset_id for s in fleet.unsaved_since(5.0, limit=10)] == ["a"]


def test_the_alert_state_is_read_from_a_checkpoint_without_its_models() -> None:
    pipeline, state = trained_state()
    state.alert.seen = 1234.5
    raw = pipeline.checkpoint(state)
    assert raw is not None
    assert stored_alerts(raw).seen == 1234.5
    with pytest.raises(ArtifactError):
        stored_alerts(state_codec.encode([1.0, 2.0]))  # not a checkpoint's mapping
    with pytest.raises(ArtifactError):
        stored_alerts(state_codec.encode({"alerts": {"tracks": {}}}))  # no "seen"
