"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
from pluggy import Result

from models.rul.artifact import save_artifact
from models.rul.data import simulated_runs
from models.rul.train import TrainConfig, train_rul

LOG_TAIL_LINES = 80
NOISE = ("producer buffer full", "woke up too late", "producer flush took")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """A failed test's report ends with the tail of each worker log it left in ``tmp_path``
    (routine lines left out): what the worker did is kept where the failure is read."""
    report = (yield).get_result()
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or not isinstance(tmp, Path):
        return
    for log in sorted(tmp.glob("worker-*.log")):
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if not any(n in line for n in NOISE)]  # fmt: skip
        report.sections.append((f"{log.name}, last lines", "\n".join(lines[-LOG_TAIL_LINES:])))


@pytest.fixture(scope="session")
def rul_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small RUL model trained on the simulator (seconds)."""
    config = TrainConfig(epochs=3, hidden=16, layers=1, folds=1, device="cpu", seed=0)
    result = train_rul(simulated_runs(assets=8, lives=1, seed=11), config, data_source="sim")
    out = tmp_path_factory.mktemp("rul-model")
    save_artifact(out, result.model, result.metadata)
    return out
