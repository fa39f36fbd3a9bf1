"""Serving on the default device: ``auto`` (CUDA where present, CPU elsewhere) gives the CPU
forecasts to 1e-4 cycles, through the artifact loader, the fused ensemble forward and the
worker's RUL service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from models.rul.artifact import save_artifact
from models.rul.data import Run, final_windows
from models.rul.device import resolve_device
from models.rul.fused import FusedEnsemble
from models.rul.serve import RulPrediction, RulPredictor
from models.rul.train import TrainResult
from streams.rul_service import RulService


@pytest.fixture(scope="module")
def artifact(fd001_model: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rul-device")
    save_artifact(out, fd001_model.model, fd001_model.metadata)
    return out


def _close(a: RulPrediction, b: RulPrediction) -> None:
    for q in ("p10", "p50", "p90"):
        np.testing.assert_allclose(getattr(a, q), getattr(b, q), rtol=1e-6, atol=1e-4, err_msg=q)


def test_auto_device_matches_cpu(artifact: Path, fd001_test: list[Run]) -> None:
    device = resolve_device("auto")
    on_device = RulPredictor.load(artifact, "auto")
    on_cpu = RulPredictor.load(artifact, "cpu")
    assert on_device.device.type == device.type
    assert next(on_device.model.parameters()).device.type == device.type
    x, _ = final_windows(fd001_test, on_cpu.metadata.inputs)
    rng = np.random.default_rng(0)
    noisy = (x[rng.integers(0, len(x), 700)] + rng.normal(0, 0.3, (700, *x.shape[1:]))).astype(
        np.float32
    )  # more than one forward chunk of the small predictor below
    _close(on_device.predict(x), on_cpu.predict(x))
    _close(on_device.predict(x[:1]), on_cpu.predict(x[:1]))
    small = RulPredictor(on_device.model, on_device.metadata, device, max_batch=256)
    _close(small.predict(noisy), on_cpu.predict(noisy))


def test_fused_on_auto_device_matches_members_on_cpu(artifact: Path, fd001_test: list[Run]) -> None:
    device = resolve_device("auto")
    on_cpu = RulPredictor.load(artifact, "cpu")
    fused = RulPredictor(FusedEnsemble(on_cpu.model), on_cpu.metadata, device)
    assert next(fused.model.buffers()).device.type == device.type
    x, _ = final_windows(fd001_test, on_cpu.metadata.inputs)
    noisy = x + np.random.default_rng(1).normal(0, 0.3, x.shape).astype(np.float32)
    for windows in (x, x[:1], noisy):
        _close(fused.predict(windows), on_cpu.predict(windows))


def test_service_on_auto_device_matches_cpu(artifact: Path, fd001_test: list[Run]) -> None:
    on_device = RulPredictor.load(artifact, "auto")
    on_cpu = RulPredictor.load(artifact, "cpu")
    x, _ = final_windows(fd001_test, on_cpu.metadata.inputs)

    async def serve() -> list[float]:
        async with RulService() as service:
            got = await service.predict_many(on_device, list(x))
        return [f.rul for f in got]

    np.testing.assert_allclose(asyncio.run(serve()), on_cpu.predict(x).p50, rtol=0, atol=1e-4)
