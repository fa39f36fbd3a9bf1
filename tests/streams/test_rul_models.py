"""Serving RUL models from a registry: reload, refusal of a broken version, per asset type,
and the swap between batches (windows carry over to a model with the same inputs)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from models.errors import ArtifactError
from models.monitor_config import MonitorConfig
from models.policy import DetectorPolicy
from models.rul.artifact import WEIGHTS
from models.rul.registry import current_file, promote, version_dir
from models.rul.serve import RulPrediction, RulPredictor
from streams.agents import TelemetryAgent
from streams.core.fleet import AssetState, Fleet
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.processor import BatchResult, TelemetryProcessor
from streams.core.schema import Limits, Telemetry
from streams.core.served_models import ServedModel, ServingModels
from streams.publishing import Sinks
from streams.rul_models import ModelSource
from streams.rul_service import RulService
from tests.models.test_rul_registry import tiny_artifact

T0 = 1_767_225_600_000


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Path, str, str]:
    """A registry serving A to assets without a type; B is an artifact at ``tmp/b``."""
    a, b = tmp_path / "a", tmp_path / "b"
    va, vb = tiny_artifact(a, 1), tiny_artifact(b, 2)
    promote(tmp_path / "reg", a)
    return tmp_path / "reg", va, vb


def test_registry_reload_serves_the_promoted_version(
    registry: tuple[Path, str, str], tmp_path: Path
) -> None:
    reg, va, vb = registry
    source = ModelSource(reg, "cpu")
    assert source.registry and source.load().versions() == {None: va}
    assert source.check() is None  # nothing changed
    promote(reg, tmp_path / "b")
    models = source.check()
    assert models is not None and models.versions() == {None: vb}
    promote(reg, tmp_path / "b", asset_type="pump")
    models = source.check()
    assert models is not None and models.versions() == {None: vb, "pump": vb}
    assert models.for_type("fan") is None  # no model for its type: anomaly detection only
    current_file(reg, "pump").unlink()
    models = source.check()
    assert models is not None and models.versions() == {None: vb}


def test_broken_version_is_refused_once_and_the_old_keeps_serving(
    registry: tuple[Path, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, va, _ = registry
    source = ModelSource(reg, "cpu")
    source.load()
    bad = version_dir(reg, "rul-broken")  # as if copied in by hand, bypassing promote
    shutil.copytree(version_dir(reg, va), bad)
    (bad / WEIGHTS).write_bytes(b"not safetensors")
    current_file(reg).write_text("rul-broken\n")
    with caplog.at_level(logging.WARNING, logger="pmaint.models"):
        assert source.check() is None
        assert source.check() is None  # refused once, not logged at every check
    (line,) = [r.getMessage() for r in caplog.records]
    assert "refused RUL model rul-broken for assets without a type" in line
    assert f"still serving {va}" in line and "\n" not in line
    assert source.serving.versions() == {None: va}
    current_file(reg).write_text(f"{va}\n")  # a good version again: nothing to swap
    assert source.check() is None


def test_a_registry_that_appears_later_is_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = ModelSource(tmp_path / "reg", "cpu")
    with caplog.at_level(logging.WARNING, logger="pmaint.models"):
        with pytest.raises(ArtifactError, match="no RUL model artifact or registry"):
            source.load()
        assert source.check() is None and source.check() is None
    assert len(caplog.records) == 1  # "unreadable", once
    version = tiny_artifact(tmp_path / "a", 1)
    promote(tmp_path / "reg", tmp_path / "a")
    models = source.check()
    assert models is not None and models.versions() == {None: version}


def test_an_artifact_serves_every_asset(tmp_path: Path) -> None:
    tiny_artifact(tmp_path / "a", 1)
    source = ModelSource(tmp_path / "a", "cpu")
    models = source.load()
    assert not source.registry and source.check() is None
    assert models.for_type(None) is models.for_type("pump") is not None


def record(asset: str, i: int, kind: str | None = None) -> Telemetry:
    sensors = {"s2": float(i % 3), "s3": float(i % 5)}
    return Telemetry(asset, T0 + i * 1000, sensors, cycle=i + 1, type=kind)


def feed(pipeline: ModelPipeline, state: AssetState, start: int, n: int) -> Outputs:
    out = Outputs()
    pipeline.swap()  # what the agent does before each batch
    for i in range(start, start + n):
        rec = record(state.asset_id, i, state.asset_type)
        state.observe(rec)
        pipeline.observe(state, rec, out)
    assert not out.failed
    return out


def test_pipeline_swaps_between_batches_and_keeps_windows(tmp_path: Path) -> None:
    va, vb = tiny_artifact(tmp_path / "a", 1), tiny_artifact(tmp_path / "b", 2)
    a, b = RulPredictor.load(tmp_path / "a", "cpu"), RulPredictor.load(tmp_path / "b", "cpu")
    pipeline = ModelPipeline(PipelineConfig(), ServingModels.single(a))
    state = AssetState("p1", 0, T0)
    out = feed(pipeline, state, 0, 6)  # window 5: forecasts from the 5th record on
    assert [m.version for *_, m in out.rul_due] == [va, va]
    pipeline.stage(ServingModels.single(b))
    assert pipeline.models.for_type(None).predictor is a  # type: ignore[union-attr]
    out = feed(pipeline, state, 6, 2)
    assert [m.version for *_, m in out.rul_due] == [vb, vb]  # same inputs: window kept


def test_a_forecast_carries_its_own_records_top_sensors_in_a_run(tmp_path: Path) -> None:
    """Forecasts are made after the run that asked for them: each still names the sensors that
    explained its own record, as one record at a time would."""
    tiny_artifact(tmp_path / "a", 1)
    model = ServingModels.single(RulPredictor.load(tmp_path / "a", "cpu"))
    config = PipelineConfig(monitor=MonitorConfig(warm_up=3, min_count=3), rul_every=2)
    one, run = (ModelPipeline(config, model) for _ in range(2))
    records = [record("p1", i) for i in range(40)]
    state, tops, alone = AssetState("p1", 0, T0), {}, Outputs()
    for rec in records:
        state.observe(rec)
        one.observe(state, rec, alone)
        assert state.last is not None
        tops[rec.ts_ms] = state.last.top_sensors
    state, together = AssetState("p1", 0, T0), Outputs()
    for rec in records:
        state.observe(rec)
    run.observe_run(state, records, together)
    due = [(d.record.ts_ms, d.top_sensors) for d in together.rul_due]
    assert due == [(d.record.ts_ms, d.top_sensors) for d in alone.rul_due]
    assert due == [(ts, tops[ts]) for ts, _ in due] and len({t for _, t in due}) > 3


def test_typed_assets_get_their_model_or_none(tmp_path: Path) -> None:
    tiny_artifact(tmp_path / "a", 1)
    a = RulPredictor.load(tmp_path / "a", "cpu")
    models = ServingModels({"pump": ServingModels.single(a).by_type[None]})
    pipeline = ModelPipeline(PipelineConfig(), models)
    pump, fan, plain = (AssetState(n, 0, T0) for n in ("pump-1", "fan-1", "x-1"))
    pump.asset_type, fan.asset_type = "pump", "fan"
    assert len(feed(pipeline, pump, 0, 6).rul_due) == 2
    assert feed(pipeline, fan, 0, 6).rul_due == [] and fan.window is None
    assert feed(pipeline, plain, 0, 6).rul_due == []


def test_policy_types_pick_the_model_and_the_detector_rule(tmp_path: Path) -> None:
    """``[types]`` globs give untyped assets their type; a record's own ``type`` wins."""
    tiny_artifact(tmp_path / "a", 1)
    a = RulPredictor.load(tmp_path / "a", "cpu")
    policy = DetectorPolicy.from_toml(
        '[types]\n"press-*" = "press"\n\n[[rule]]\ntype = "press"\nhold = 3\n'
    )
    models = ServingModels({"press": ServingModels.single(a).by_type[None]})
    pipeline = ModelPipeline(PipelineConfig(detectors=policy), models)
    due: dict[str, int] = {}
    for asset, kind in (("press-1", None), ("press-2", "pump"), ("fan-1", None)):
        state, out = AssetState(asset, 0, T0), Outputs()
        for i in range(6):
            rec = record(asset, i, kind)
            state.observe(rec)
            pipeline.observe(state, rec, out)
        assert not out.failed
        due[asset] = len(out.rul_due)
        assert state.monitor is not None
        assert (state.asset_type, state.monitor.config.hold) == {
            "press-1": ("press", 3), "press-2": ("pump", 12), "fan-1": (None, 12)
        }[asset]  # fmt: skip
    assert due == {"press-1": 2, "press-2": 0, "fan-1": 0}


def test_a_new_life_without_cycle_restarts_the_window(tmp_path: Path) -> None:
    """Without ``cycle``, a change of the records' ``life`` (a replacement) starts a new life:
    the window refills and the age restarts, as when a cycle counter goes back."""
    tiny_artifact(tmp_path / "a", 1)
    pipeline = ModelPipeline(
        PipelineConfig(), ServingModels.single(RulPredictor.load(tmp_path / "a", "cpu"))
    )
    state, due = AssetState("p1", 0, T0), []
    for i, life in enumerate(["u1"] * 7 + [None] + ["u2"] * 6):
        rec = Telemetry("p1", T0 + i * 1000, {"s2": 1.0, "s3": 2.0}, life=life)
        state.observe(rec)
        out = Outputs()
        pipeline.observe(state, rec, out)
        due.append(len(out.rul_due))
        assert state.window is not None and state.life == (life or "u1")
    # window 5: forecasts from the 5th record of each life; a record without life keeps it
    assert due == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]


def test_service_runs_one_forward_pass_per_model(tmp_path: Path) -> None:
    va, vb = tiny_artifact(tmp_path / "a", 1), tiny_artifact(tmp_path / "b", 2)
    a, b = RulPredictor.load(tmp_path / "a", "cpu"), RulPredictor.load(tmp_path / "b", "cpu")
    windows = np.random.default_rng(0).random((6, 5, 2), dtype=np.float32)

    async def main() -> list[str]:
        async with RulService() as service:
            forecasts = await asyncio.gather(
                service.predict_many(a, list(windows[:2])),
                service.predict_many(b, list(windows[2:])),
            )
            assert service.stats.batches == 2 and service.stats.requests == 6
        return [f.model_version for group in forecasts for f in group]

    assert asyncio.run(main()) == [va, va, vb, vb, vb, vb]


class BrokenPredictor(RulPredictor):
    def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
        raise RuntimeError("forward pass failed")


def test_agent_forecasts_a_batch_in_one_pass_per_model_and_survives_a_failing_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    va, vb = tiny_artifact(tmp_path / "a", 1), tiny_artifact(tmp_path / "b", 2)
    a, b = RulPredictor.load(tmp_path / "a", "cpu"), RulPredictor.load(tmp_path / "b", "cpu")
    broken = BrokenPredictor(b.model, b.metadata)
    models = ServingModels({"pump": ServedModel.of(a), "fan": ServedModel.of(broken)})
    pipeline = ModelPipeline(PipelineConfig(), models)
    processor = TelemetryProcessor(Limits(), 4, Fleet(), Metrics())
    service = RulService()
    sinks = Sinks(None, None, None, {}, rul=service)  # type: ignore[arg-type]  # no publishing
    agent = TelemetryAgent(processor, pipeline, sinks, rewind=None)  # type: ignore[arg-type]
    states = [AssetState(f"{kind}-{n}", 0, T0) for kind in ("pump", "fan") for n in (1, 2)]
    result = BatchResult()
    for state in states:
        state.asset_type = state.asset_id.split("-")[0]
        for i in range(7):  # window 5: three forecasts due per asset
            rec = record(state.asset_id, i, state.asset_type)
            state.observe(rec)
            result.records.append((rec, state))

    async def main() -> Outputs:
        async with service:
            return await agent.run_models(result)

    with caplog.at_level(logging.WARNING, logger="pmaint.agents"):
        out = asyncio.run(main())
    assert len(out.rul_due) == 12
    assert (service.stats.batches, service.stats.failed_batches) == (1, 1)  # one pass per model
    assert service.stats.requests == 6  # the pumps' forecasts
    assert [s.rul.model_version if s.rul else None for s in states] == [va, va, None, None]
    assert len([p for p in out.points if p.measurement == "rul"]) == 6
    assert f"6 RUL forecasts (model {vb}) failed: forward pass failed" in caplog.text
