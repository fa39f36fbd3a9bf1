"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.rul.artifact import save_artifact
from models.rul.data import simulated_runs
from models.rul.train import TrainConfig, train_rul


@pytest.fixture(scope="session")
def rul_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small RUL model trained on the simulator (seconds)."""
    config = TrainConfig(epochs=3, hidden=16, layers=1, folds=1, device="cpu", seed=0)
    result = train_rul(simulated_runs(assets=8, lives=1, seed=11), config, data_source="sim")
    out = tmp_path_factory.mktemp("rul-model")
    save_artifact(out, result.model, result.metadata)
    return out
