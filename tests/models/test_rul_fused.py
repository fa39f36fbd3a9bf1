"""The fused ensemble forward gives the members' mean quantiles to 1e-4 cycles: on a trained
artifact (real and random windows; through ``RulPredictor`` also P10/P50/P90, whose band an
out-of-domain window widens, so float32 rounding grows with it, and the in-domain flags) and
on freshly initialised networks of other shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from models.rul.artifact import Architecture, save_artifact
from models.rul.data import Run, final_windows
from models.rul.fused import FusedEnsemble
from models.rul.serve import RulPrediction, RulPredictor
from models.rul.train import TrainResult


def assert_same(a: RulPrediction, b: RulPrediction) -> None:
    for q in ("p10", "p50", "p90"):
        np.testing.assert_allclose(getattr(a, q), getattr(b, q), rtol=1e-6, atol=1e-4, err_msg=q)
    np.testing.assert_array_equal(a.in_domain, b.in_domain)


def real_and_random(predictor: RulPredictor, runs: list[Run]) -> list[NDArray[np.float32]]:
    x, _ = final_windows(runs, predictor.metadata.inputs)
    rng = np.random.default_rng(0)
    shape = (300, predictor.window, predictor.n_features)
    noisy = x[rng.integers(0, len(x), 300)] + rng.normal(0, 0.5, shape)
    uniform = rng.random(shape) * 3 - 1  # far out of domain too
    return [x, x[:1], noisy.astype(np.float32), uniform.astype(np.float32)]


def test_fused_matches_members_on_a_trained_artifact(
    fd001_model: TrainResult, fd001_test: list[Run], tmp_path: Path
) -> None:
    save_artifact(tmp_path, fd001_model.model, fd001_model.metadata)
    members = RulPredictor.load(tmp_path, "cpu")
    fused = RulPredictor(FusedEnsemble(members.model), members.metadata, "cpu")
    assert len(members.model.members) == 2 and members.metadata.domain is not None
    flags = []
    for x in real_and_random(members, fd001_test):
        want = members.predict(x)
        assert_same(fused.predict(x), want)
        flags += want.in_domain.tolist()
        with torch.inference_mode():
            raw = torch.from_numpy(x)
            torch.testing.assert_close(fused.model(raw), members.model(raw), rtol=0, atol=1e-4)
    assert True in flags and False in flags  # both kinds of window were compared


@pytest.mark.parametrize(("layers", "members", "hidden"), [(2, 5, 48), (1, 1, 8), (3, 2, 16)])
def test_fused_matches_members_for_other_shapes(layers: int, members: int, hidden: int) -> None:
    torch.manual_seed(layers)
    ensemble = Architecture(29, hidden=hidden, layers=layers, members=members).build().eval()
    fused = FusedEnsemble(ensemble, tile=64)
    with torch.inference_mode():
        for batch in (1, 64, 65, 200):  # within one tile and across tiles
            x = torch.rand(batch, 30, 29) * 2 - 0.5
            torch.testing.assert_close(fused(x), ensemble(x), rtol=0, atol=1e-4)
