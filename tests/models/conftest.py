"""Shared fixtures for the RUL tests: the C-MAPSS reference files and one small trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.datafiles import REFERENCE_DATA, resolve
from models.rul.data import Run, read_cmapss, read_cmapss_test
from models.rul.train import TrainConfig, TrainResult, train_rul

CMAPSS = REFERENCE_DATA / "cmapss"

torch.set_num_threads(1)  # 2 threads on 2 shared cores spin and stall


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    if not resolve(CMAPSS / "train_FD001.txt").exists():
        pytest.fail(f"C-MAPSS reference data missing at {CMAPSS}")
    return CMAPSS


@pytest.fixture(scope="session")
def fd001_train(cmapss_dir: Path) -> list[Run]:
    return read_cmapss(cmapss_dir / "train_FD001.txt")


@pytest.fixture(scope="session")
def fd001_test(cmapss_dir: Path) -> list[Run]:
    return read_cmapss_test(cmapss_dir / "test_FD001.txt", cmapss_dir / "RUL_FD001.txt")


SMALL = TrainConfig(epochs=3, hidden=32, layers=1, batch_size=256, folds=2, device="cpu", seed=0)


@pytest.fixture(scope="session")
def fd001_model(fd001_train: list[Run]) -> TrainResult:
    """A short training run on FD001 (a few seconds)."""
    return train_rul(fd001_train, SMALL, data_source="FD001")
