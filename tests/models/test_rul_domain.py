"""The in-domain measure: calibrated on the training folds, stored in the artifact, used to flag
forecasts and widen their band."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from models.errors import ArtifactError, DataError
from models.rul.artifact import load_artifact, save_artifact
from models.rul.data import Run, final_windows
from models.rul.domain import DomainModel
from models.rul.serve import RulPredictor, evaluate
from models.rul.train import TrainConfig, TrainResult, train_rul
from models.simulator import SENSORS

TINY = TrainConfig(epochs=1, hidden=8, layers=1, folds=2, device="cpu")


@pytest.fixture(scope="module")
def fd001_model(fd001_train: list[Run]) -> TrainResult:
    """The in-domain measure does not depend on the network's quality: a tiny one will do."""
    return train_rul(fd001_train[:50], TINY, data_source="FD001 (50 engines)")


def offset(runs: list[Run], sensor: str, share: float) -> list[Run]:
    """The runs with ``sensor`` shifted by ``share`` of its level (a recalibrated sensor)."""
    i = SENSORS.index(sensor)
    out = []
    for r in runs:
        s = r.sensors.copy()
        s[:, i] += share * abs(s[:, i].mean())
        out.append(dataclasses.replace(r, sensors=s))
    return out


def test_threshold_flags_the_calibration_share() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(0.5, 0.1, (2000, 5, 3)).astype(np.float32)
    held = rng.normal(0.5, 0.1, (2000, 5, 3)).astype(np.float32)
    d = DomainModel.fit(train, 3).calibrated(held, quantile=0.9)
    fresh = rng.normal(0.5, 0.1, (4000, 5, 3)).astype(np.float32)
    assert 0.07 < float(np.mean(d.score(fresh) > 1)) < 0.13
    assert float(np.mean(d.score(fresh + np.float32(0.2)) > 1)) > 0.99


def test_bad_description_is_refused() -> None:
    with pytest.raises(DataError, match="in-domain"):
        DomainModel.from_dict({"n_sensors": 2, "mean": [0.0], "precision": [[1.0]], "threshold": 1})


def test_fd001_model_flags_shifted_engines_not_its_own(
    fd001_model: TrainResult, fd001_test: list[Run]
) -> None:
    meta = fd001_model.metadata
    assert meta.domain is not None and 0 <= meta.metrics["val_cut_out_of_domain_share"] <= 0.05
    predictor = RulPredictor(fd001_model.model, meta, "cpu")
    own = evaluate(predictor, fd001_test).metrics()["out_of_domain_share"]
    shifted = evaluate(predictor, offset(fd001_test, "s11", 0.005))
    assert own <= 0.10
    assert shifted.metrics()["out_of_domain_share"] >= 0.8


def test_out_of_domain_band_is_wider(fd001_model: TrainResult, fd001_test: list[Run]) -> None:
    predictor = RulPredictor(fd001_model.model, fd001_model.metadata, "cpu")
    spec = fd001_model.metadata.inputs
    x, _ = final_windows(fd001_test, spec)
    xs, _ = final_windows(offset(fd001_test, "s11", 0.005), spec)
    plain = dataclasses.replace(fd001_model.metadata, domain=None)
    p, q = predictor.predict(xs), RulPredictor(fd001_model.model, plain, "cpu").predict(xs)
    flagged = ~p.in_domain
    assert flagged.any() and q.in_domain.all()
    assert np.allclose(p.p50, q.p50)
    assert np.all((p.p90 - p.p10)[flagged] > (q.p90 - q.p10)[flagged])
    assert predictor.predict(x).domain_score is not None


def test_artifact_keeps_domain_and_unit(fd001_model: TrainResult, tmp_path: Path) -> None:
    meta = dataclasses.replace(fd001_model.metadata, rul_unit="hours", asset_type="pump")
    stored = save_artifact(tmp_path, fd001_model.model, meta)
    _, loaded = load_artifact(tmp_path)
    assert loaded == stored and loaded.domain == meta.domain
    assert (loaded.rul_unit, loaded.asset_type) == ("hours", "pump")
    text = (tmp_path / "metadata.json").read_text().replace('"hours"', '"weeks"')
    (tmp_path / "metadata.json").write_text(text)
    with pytest.raises(ArtifactError, match="unknown RUL unit"):
        load_artifact(tmp_path)
