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
from models.features import INFORMATIVE_SENSORS
from models.metrics import rmse
from models.rul.artifact import METADATA, WEIGHTS, load_artifact, save_artifact
from models.rul.data import Run, final_windows, fit_normalizer, simulated_runs
from models.rul.network import QuantileLSTM
from models.rul.serve import AssetWindow, RulPredictor, evaluate
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
    for key in ("features", "scaling", "regimes", "window", "cap", "quantiles", "version",
                "data_sha256", "metrics", "seed", "architecture"):  # fmt: skip
        assert key in doc
    assert doc["features"] == list(INFORMATIVE_SENSORS)
    assert doc["window"] == 30
    assert doc["version"] == stored.version
    assert stored.version.startswith("rul-")
    loaded = RulPredictor.load(tmp_path, device="cpu")
    direct = RulPredictor(fd001_model.model, fd001_model.metadata)
    x, _ = final_windows(fd001_test, loaded.normalizer)
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
    cfg = TrainConfig(epochs=2, hidden=16, layers=1, device="cpu", seed=3, val_share=0.25)
    a, b = train_rul(runs, cfg), train_rul(runs, cfg)
    c = train_rul(runs, dataclasses.replace(cfg, seed=4))
    assert {k: round(v, 3) for k, v in a.metadata.metrics.items()} == {
        k: round(v, 3) for k, v in b.metadata.metrics.items()
    }
    assert all(torch.equal(a.model.state_dict()[k], v) for k, v in b.model.state_dict().items())
    assert a.metadata.metrics != c.metadata.metrics


def test_predict_rejects_bad_input(fd001_model: TrainResult) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    with pytest.raises(DataError, match=r"\(B, 30, 14\)"):
        predictor.predict(np.zeros((2, 29, 14), dtype=np.float32))
    bad = np.zeros((1, 30, 14), dtype=np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        predictor.predict(bad)
    assert predictor.predict(np.zeros((0, 30, 14), dtype=np.float32)).p50.shape == (0,)


def test_asset_window_reproduces_the_offline_last_window(
    fd001_model: TrainResult, fd001_test: list[Run]
) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata)
    run = fd001_test[3]
    keeper = predictor.new_window()
    for i in range(len(run)):
        assert keeper.ready == (i >= 30)
        keeper.push(
            {f"s{j + 1}": float(v) for j, v in enumerate(run.sensors[i])},
            {f"setting{j + 1}": float(v) for j, v in enumerate(run.settings[i])},
        )
    offline, _ = final_windows([run], predictor.normalizer)
    np.testing.assert_allclose(keeper.array(), offline[0], rtol=0, atol=1e-6)


def test_asset_window_padding_and_errors() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=1)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    keeper = AssetWindow(norm, 30)
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


def test_asset_window_memory_for_ten_thousand_assets() -> None:
    norm = fit_normalizer(simulated_runs(assets=2, lives=1), INFORMATIVE_SENSORS)
    one = AssetWindow(norm, 30)
    assert one.nbytes < 2 * 30 * 14 * 4
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keepers = {f"asset-{i}": AssetWindow(norm, 30) for i in range(10_000)}
    per_asset = (tracemalloc.get_traced_memory()[0] - before) / len(keepers)
    tracemalloc.stop()
    sys.stdout.write(f"\nAssetWindow: {one.nbytes} bytes, {per_asset:.0f} bytes/asset in a dict\n")
    assert per_asset < 2_200


def test_asset_window_pickles_and_restores() -> None:
    import pickle

    norm = fit_normalizer(simulated_runs(assets=2, lives=1, regimes=1), INFORMATIVE_SENSORS)
    keeper = AssetWindow(norm, 3)
    for v in range(4):
        keeper.push({s: float(v) for s in INFORMATIVE_SENSORS})
    restored = pickle.loads(pickle.dumps(keeper))
    assert restored.ready
    assert np.array_equal(restored.array(), keeper.array())
