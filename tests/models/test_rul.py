from __future__ import annotations

import dataclasses
import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.errors import ArtifactError, DataError
from models.features import (
    AGE_SCALE,
    INFORMATIVE_SENSORS,
    TREND_ALPHA,
    InputSpec,
    last_window,
    sliding_windows,
)
from models.metrics import rmse
from models.rul.artifact import METADATA, WEIGHTS, load_artifact, save_artifact
from models.rul.data import Run, final_windows, fit_normalizer, inputs, simulated_runs
from models.rul.network import QuantileLSTM
from models.rul.serve import AssetWindow, Forecaster, RulPredictor, evaluate
from models.rul.train import TrainConfig, TrainResult, pinball_loss, train_rul


def test_network_shapes_and_monotone_quantiles() -> None:
    torch.manual_seed(0)
    net = QuantileLSTM(14, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95), hidden=16).eval()
    q = net(torch.randn(64, 30, 14) * 5)  # far outside the training range too
    assert q.shape == (64, 5)
    assert bool((q.diff(dim=1) >= 0).all())


def test_network_rejects_quantiles_without_median() -> None:
    with pytest.raises(ValueError, match=r"contain 0\.5"):
        QuantileLSTM(3, quantiles=(0.1, 0.9))


def test_pinball_loss_is_minimised_by_the_quantile() -> None:
    y = torch.arange(101, dtype=torch.float32)
    qs = torch.tensor([0.1])
    losses = [float(pinball_loss(torch.full((101, 1), c), y, qs)) for c in range(0, 101, 5)]
    assert int(np.argmin(losses)) * 5 == 10


def test_short_training_beats_constant_baseline(
    fd001_model: TrainResult, fd001_train: list[Run], fd001_test: list[Run]
) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    result = evaluate(predictor, fd001_test)
    train_mean = float(np.mean(np.concatenate([np.minimum(r.rul, 125) for r in fd001_train])))
    baseline = rmse(np.full(len(result.true), train_mean), result.true)
    best_constant = float(np.std(result.true))  # the constant with the test mean itself
    m = result.metrics()
    assert m["rmse"] < 0.6 * best_constant < baseline
    assert m["n_engines"] == 100
    assert 0.3 < m["coverage"] <= 1.0
    p = result.prediction
    assert np.all(p.p10 <= p.p50)
    assert np.all(p.p50 <= p.p90)
    assert np.all(p.p10 >= 0)


def test_artifact_round_trip_gives_identical_predictions(
    fd001_model: TrainResult, fd001_test: list[Run], tmp_path: Path
) -> None:
    stored = save_artifact(tmp_path, fd001_model.model, fd001_model.metadata)
    doc = json.loads((tmp_path / METADATA).read_text())
    for key in ("features", "scaling", "regimes", "window", "cap", "trend", "age_scale",
                "quantiles", "band_scale", "version", "data_sha256", "metrics", "seed",
                "architecture"):  # fmt: skip
        assert key in doc
    trends = [f"{s}_trend" for s in INFORMATIVE_SENSORS]
    assert doc["features"] == [*INFORMATIVE_SENSORS, *trends, "age"]
    assert doc["architecture"]["n_features"] == 29
    assert doc["architecture"]["members"] == 2
    assert doc["format_version"] == 3
    assert doc["window"] == 30
    assert doc["version"] == stored.version
    assert stored.version.startswith("rul-")
    loaded = RulPredictor.load(tmp_path, device="cpu")
    direct = RulPredictor(fd001_model.model, fd001_model.metadata)
    x, _ = final_windows(fd001_test, loaded.metadata.inputs)
    a, b = loaded.predict(x), direct.predict(x)
    assert np.array_equal(a.p10, b.p10)
    assert np.array_equal(a.p50, b.p50)
    assert np.array_equal(a.p90, b.p90)
    assert loaded.version == stored.version


@pytest.fixture
def artifact(fd001_model: TrainResult, tmp_path: Path) -> Path:
    save_artifact(tmp_path, fd001_model.model, fd001_model.metadata)
    return tmp_path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: json.dumps(d | {"format_version": 99}), "incompatible artifact format version"),
        (lambda d: json.dumps(d | {"format": "other"}), "not a pmaint RUL model artifact"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "window"}), "KeyError"),
        (lambda d: json.dumps(d | {"features": ["s2"]}), "disagree"),
        (lambda d: json.dumps(d | {"scaling": d["scaling"] | {"lo": [[1.0]]}}), "inconsistent"),
        (lambda d: json.dumps(d | {"weights_sha256": "0" * 64}), "does not match"),
    ],
)
def test_corrupt_metadata_raises_artifact_error(artifact: Path, mutate: object, match: str) -> None:
    doc = json.loads((artifact / METADATA).read_text())
    (artifact / METADATA).write_text(mutate(doc))  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=match):
        RulPredictor.load(artifact, device="cpu")


def test_corrupt_or_missing_weights_raise_artifact_error(artifact: Path) -> None:
    data = bytearray((artifact / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (artifact / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its metadata"):
        load_artifact(artifact)
    (artifact / WEIGHTS).unlink()
    with pytest.raises(ArtifactError, match="no readable"):
        load_artifact(artifact)


def test_weights_of_another_shape_raise_artifact_error(artifact: Path) -> None:
    import hashlib

    save_file({"lstm.weight_ih_l0": torch.zeros(3, 3)}, str(artifact / WEIGHTS))
    doc = json.loads((artifact / METADATA).read_text())
    doc["weights_sha256"] = hashlib.sha256((artifact / WEIGHTS).read_bytes()).hexdigest()
    (artifact / METADATA).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="does not fit the stored architecture"):
        load_artifact(artifact)


def test_garbage_weights_raise_artifact_error(artifact: Path) -> None:
    import hashlib

    (artifact / WEIGHTS).write_bytes(b"\x80\x04not a safetensors file")
    doc = json.loads((artifact / METADATA).read_text())
    doc["weights_sha256"] = hashlib.sha256((artifact / WEIGHTS).read_bytes()).hexdigest()
    (artifact / METADATA).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError):
        load_artifact(artifact)


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"metadata\.json missing"):
        RulPredictor.load(tmp_path / "nothing")


def test_same_seed_same_model_other_seed_differs(fd001_train: list[Run]) -> None:
    runs = fd001_train[:24]
    cfg = TrainConfig(epochs=2, hidden=16, layers=1, device="cpu", seed=3, folds=2)
    a, b = train_rul(runs, cfg), train_rul(runs, cfg)
    c = train_rul(runs, dataclasses.replace(cfg, seed=4))
    assert {k: round(v, 3) for k, v in a.metadata.metrics.items()} == {
        k: round(v, 3) for k, v in b.metadata.metrics.items()
    }
    assert all(torch.equal(a.model.state_dict()[k], v) for k, v in b.model.state_dict().items())
    assert a.metadata.metrics != c.metadata.metrics


def test_predict_rejects_bad_input(fd001_model: TrainResult) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    with pytest.raises(DataError, match=r"\(B, 30, 29\)"):
        predictor.predict(np.zeros((2, 29, 29), dtype=np.float32))
    bad = np.zeros((1, 30, 29), dtype=np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        predictor.predict(bad)
    assert predictor.predict(np.zeros((0, 30, 29), dtype=np.float32)).p50.shape == (0,)


def test_asset_window_reproduces_the_offline_last_window(
    fd001_model: TrainResult, fd001_test: list[Run]
) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    run = fd001_test[3]
    keeper = predictor.new_window()
    for i in range(len(run)):
        assert keeper.ready == (i >= 30)
        keeper.push(*record(run, i), cycle=i + 1)
    offline, _ = final_windows([run], predictor.metadata.inputs)
    assert offline.shape == (1, 30, 29)
    np.testing.assert_allclose(keeper.array(), offline[0], rtol=0, atol=1e-6)


def test_asset_window_padding_and_errors() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=1)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    keeper = AssetWindow(InputSpec(norm, 30))
    with pytest.raises(DataError, match="no rows"):
        keeper.array(pad=True)
    sensors = {f"s{j + 1}": float(v) for j, v in enumerate(runs[0].sensors[0])}
    settings = {f"setting{j + 1}": float(v) for j, v in enumerate(runs[0].settings[0])}
    keeper.push(sensors, settings)
    with pytest.raises(DataError, match=r"not full \(1/30"):
        keeper.array()
    assert keeper.array(pad=True).shape == (30, 14)
    with pytest.raises(DataError, match="non-finite"):
        keeper.push(sensors | {"s2": float("inf")}, settings)
    assert keeper.count == 1
    keeper.clear()
    assert keeper.count == 0


def test_asset_window_memory_per_asset() -> None:
    runs = simulated_runs(assets=2, lives=1)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    rows = [record(runs[0], i) for i in range(31)]  # full, and one row folded into the trend
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keepers = {}
    for i in range(1_000):
        keepers[f"asset-{i}"] = keeper = AssetWindow(InputSpec(norm, 30, TREND_ALPHA, AGE_SCALE))
        for sensors, settings in rows:
            keeper.push(sensors, settings)
    per_asset = (tracemalloc.get_traced_memory()[0] - before) / len(keepers)
    tracemalloc.stop()
    one = keepers["asset-0"]
    assert one.nbytes < 2 * 30 * 14 * 4
    sys.stdout.write(f"\nAssetWindow: {one.nbytes} bytes, {per_asset:.0f} bytes/asset in a dict\n")
    assert per_asset < 2_400


def test_asset_window_pickles_and_restores() -> None:
    import pickle

    norm = fit_normalizer(simulated_runs(assets=2, lives=1, regimes=1), INFORMATIVE_SENSORS)
    keeper = AssetWindow(InputSpec(norm, 3, trend=0.1, age_scale=AGE_SCALE))
    for v in range(5):
        keeper.push({s: float(v) for s in INFORMATIVE_SENSORS})
    restored = pickle.loads(pickle.dumps(keeper))
    assert restored.ready
    assert np.array_equal(restored.array(), keeper.array())
    restored.push({s: 9.0 for s in INFORMATIVE_SENSORS})
    keeper.push({s: 9.0 for s in INFORMATIVE_SENSORS})
    assert np.array_equal(restored.array(), keeper.array())


def record(run: Run, i: int) -> tuple[dict[str, float], dict[str, float]]:
    """Row ``i`` of a run as the sensor and settings dicts of a telemetry record."""
    sensors = {f"s{j + 1}": float(v) for j, v in enumerate(run.sensors[i])}
    return sensors, {f"setting{j + 1}": float(v) for j, v in enumerate(run.settings[i])}


def head(run: Run, n: int) -> Run:
    """The first ``n`` rows of a run."""
    return Run(run.run_id, run.settings[:n], run.sensors[:n], run.rul[:n])


@pytest.mark.parametrize(
    ("trend", "age_scale", "cycles"),
    [
        (0.0, 0.0, False),
        (TREND_ALPHA, 0.0, False),
        (0.3, AGE_SCALE, True),
        (TREND_ALPHA, 50.0, False),
    ],
)
def test_asset_window_matches_every_training_window(
    trend: float, age_scale: float, cycles: bool
) -> None:
    runs = simulated_runs(assets=2, lives=1, seed=2)
    spec = InputSpec(fit_normalizer(runs, INFORMATIVE_SENSORS), 30, trend, age_scale)
    run = runs[0]
    offline = sliding_windows(inputs(run, spec), 30)
    keeper = AssetWindow(spec)
    for i in range(len(run)):
        keeper.push(*record(run, i), cycle=i + 1 if cycles else None)
        if i < 29:  # short history: padded as for a short test engine
            padded = last_window(inputs(head(run, i + 1), spec), 30)
            np.testing.assert_allclose(keeper.array(pad=True), padded, rtol=0, atol=1e-6)
        else:
            np.testing.assert_allclose(keeper.array(), offline[i - 29], rtol=0, atol=1e-6)
    assert keeper.array().shape == (30, len(spec.names))
    keeper.clear()
    keeper.push(*record(run, 0))
    np.testing.assert_allclose(keeper.array(pad=True)[-1], offline[0][0], rtol=0, atol=1e-6)


def test_asset_window_starts_a_new_life_when_the_cycle_counter_goes_back() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=2)
    spec = InputSpec(fit_normalizer(runs, INFORMATIVE_SENSORS), 30, TREND_ALPHA, AGE_SCALE)
    old, new = runs
    keeper, fresh = AssetWindow(spec), AssetWindow(spec)
    for i in range(60):
        keeper.push(*record(old, i), cycle=i + 1)
    for i in range(40):  # the repaired asset starts again at cycle 1
        keeper.push(*record(new, i), cycle=i + 1)
        fresh.push(*record(new, i), cycle=i + 1)
    np.testing.assert_array_equal(keeper.array(), fresh.array())
    late = AssetWindow(spec)  # first seen mid-life: the age follows the cycle counter
    for i in range(100, 130):
        late.push(*record(old, i), cycle=i + 1)
    assert late.array()[-1, -1] == pytest.approx(129 / AGE_SCALE)


def test_band_scale_widens_the_band_around_the_same_median(fd001_model: TrainResult) -> None:
    meta = fd001_model.metadata
    assert 0.3 < meta.band_scale < 3.0  # calibrated on the validation cuts
    x = np.random.default_rng(0).random((8, 30, 29), dtype=np.float32)
    one = RulPredictor(fd001_model.model, dataclasses.replace(meta, band_scale=1.0)).predict(x)
    two = RulPredictor(fd001_model.model, dataclasses.replace(meta, band_scale=2.0)).predict(x)
    assert np.array_equal(one.p50, two.p50)
    np.testing.assert_allclose(two.p90 - two.p50, 2 * (one.p90 - one.p50), rtol=1e-5)
    assert np.all(two.p10 == np.maximum(0.0, two.p50 - 2 * (one.p50 - one.p10)))


def test_older_artifact_format_asks_for_retraining(artifact: Path) -> None:
    doc = json.loads((artifact / METADATA).read_text())
    (artifact / METADATA).write_text(json.dumps(doc | {"format_version": 2}))
    with pytest.raises(ArtifactError, match=r"version 2 .*train the model again"):
        RulPredictor.load(artifact, device="cpu")


def test_ensemble_is_the_mean_of_its_members(fd001_model: TrainResult) -> None:
    ensemble = fd001_model.model
    assert len(ensemble.members) == 2
    x = torch.rand(5, 30, 29)
    with torch.inference_mode():
        mean = (ensemble.members[0](x) + ensemble.members[1](x)) / 2
        assert torch.allclose(ensemble(x), mean)
        assert not torch.allclose(ensemble.members[0](x), ensemble.members[1](x))
    assert fd001_model.metadata.training["best_epochs"] == [
        int(
            min((r for r in fd001_model.history if r["member"] == k), key=lambda r: r["val_loss"])[
                "epoch"
            ]
        )
        for k in (0, 1)
    ]


def test_the_gil_free_forward_forecasts_as_the_eager_model(fd001_model: TrainResult) -> None:
    """The traced and frozen ensemble the CPU predictor runs: the eager model's forecasts, for
    any batch size (it was traced on a batch of two)."""
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    assert isinstance(predictor._forward, torch.jit.ScriptModule)
    eager = Forecaster(fd001_model.model)
    rng = np.random.default_rng(4)
    for batch in (1, 2, 7, 300):
        x = torch.from_numpy(rng.random((batch, 30, 29), dtype=np.float32))
        factor = torch.from_numpy(rng.uniform(0.5, 3.0, batch).astype(np.float32))
        with torch.inference_mode():
            expected, got = eager(x, factor), predictor._forward(x, factor)
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-5), batch
    median = list(fd001_model.model.quantiles).index(0.5)
    with torch.inference_mode():
        members = fd001_model.model(x)[:, median].clamp_min(0.0).numpy()
    np.testing.assert_allclose(predictor.predict(x.numpy()).p50, members, rtol=1e-6, atol=1e-5)


def test_evaluation_scores_the_uncapped_truth(
    fd001_model: TrainResult, fd001_test: list[Run]
) -> None:
    result = evaluate(RulPredictor(fd001_model.model, fd001_model.metadata), fd001_test)
    assert result.true.max() == 145  # RUL_FD001.txt as given
    m = result.metrics()
    p50 = result.prediction.p50
    assert m["rmse"] == pytest.approx(rmse(p50, result.true))
    assert m["rmse_capped"] == pytest.approx(rmse(p50, np.minimum(result.true, 125.0)))
