"""Batched RUL inference and the per-asset window keeper used by the worker.

The worker keeps one :class:`AssetWindow` per asset (a small float32 ring buffer of already
normalised rows) and, once it is ``ready``, sends its window to a batcher that stacks windows of
many assets into one :meth:`RulPredictor.predict` call.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from models.errors import DataError
from models.features import Normalizer
from models.metrics import interval_coverage, nasa_score, rmse
from models.rul.artifact import ArtifactMetadata, load_artifact
from models.rul.data import Run, final_windows
from models.rul.device import resolve_device
from models.rul.network import QuantileLSTM


@dataclass(frozen=True)
class RulPrediction:
    """Quantile forecasts of a batch, each ``(B,)`` float32 in cycles (``p10 <= p50 <= p90``)."""

    p10: NDArray[np.float32]
    p50: NDArray[np.float32]
    p90: NDArray[np.float32]


class RulPredictor:
    """Synchronous batched inference with a trained artifact.

    Examples
    --------
    >>> import tempfile
    >>> from models.rul.artifact import Architecture, ArtifactMetadata, save_artifact
    >>> from models.features import Normalizer
    >>> norm = Normalizer.fit(np.eye(2), np.zeros((2, 3)), ("s2", "s3"))
    >>> arch = Architecture(2, hidden=4, layers=1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_artifact(d, arch.build(), ArtifactMetadata(norm, 5, 125.0, arch, 0, "0"))
    ...     predictor = RulPredictor.load(d, device="cpu")
    >>> pred = predictor.predict(np.zeros((3, 5, 2), dtype=np.float32))
    >>> pred.p50.shape, bool(np.all(pred.p10 <= pred.p90))
    ((3,), True)
    """

    def __init__(
        self, model: QuantileLSTM, metadata: ArtifactMetadata, device: torch.device | str = "cpu",
        max_batch: int = 4096,
    ) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.metadata = metadata
        self.max_batch = max_batch
        qs = list(model.quantiles)
        self._cols = (0, qs.index(0.5), len(qs) - 1)

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> RulPredictor:
        """Load an artifact directory onto ``auto`` (CUDA if present), ``cpu`` or ``cuda``."""
        dev = resolve_device(device)
        model, meta = load_artifact(directory, dev)
        return cls(model, meta, dev)

    @property
    def version(self) -> str:
        """The model version (from the artifact)."""
        return self.metadata.version

    @property
    def window(self) -> int:
        """Rows per window (``W``)."""
        return self.metadata.window

    @property
    def n_features(self) -> int:
        """Features per row (``F``)."""
        return len(self.metadata.features)

    @property
    def normalizer(self) -> Normalizer:
        """The artifact's scaling (for :class:`AssetWindow`)."""
        return self.metadata.normalizer

    def new_window(self) -> AssetWindow:
        """An empty window keeper matching this model."""
        return AssetWindow(self.normalizer, self.window)

    def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
        """Forecast RUL for normalised ``windows (B, W, F)`` -> ``RulPrediction`` of ``(B,)``.

        Predictions are clipped at 0 cycles. Raises ``DataError`` on a wrong shape or
        non-finite values.
        """
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, self.n_features):
            raise DataError(
                f"expected windows of shape (B, {self.window}, {self.n_features}), got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise DataError("windows contain non-finite values")
        parts = []
        with torch.inference_mode():
            for i in range(0, len(x), self.max_batch):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + self.max_batch]))
                q = self.model(xb.to(self.device, non_blocking=True))
                parts.append(q[:, list(self._cols)].clamp_min(0.0).float().cpu().numpy())
        q3 = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)
        return RulPrediction(q3[:, 0].copy(), q3[:, 1].copy(), q3[:, 2].copy())


class AssetWindow:
    """The last ``window`` normalised rows of one asset, in a float32 ring buffer.

    Memory is one ``(window, F)`` float32 array plus a few slots (see :attr:`nbytes`).

    Examples
    --------
    >>> from models.features import Normalizer
    >>> norm = Normalizer.fit([[0.0], [10.0]], np.zeros((2, 3)), ("s2",))
    >>> w = AssetWindow(norm, window=3)
    >>> for v in (1.0, 2.0, 3.0, 4.0):
    ...     w.push({"s2": v})
    >>> w.ready, [round(float(v), 2) for v in w.array().ravel()]
    (True, [0.2, 0.3, 0.4])
    """

    __slots__ = ("_buf", "_count", "_norm", "_pos")

    def __init__(self, normalizer: Normalizer, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._norm = normalizer
        self._buf = np.zeros((window, len(normalizer.sensors)), dtype=np.float32)
        self._pos = 0
        self._count = 0

    @property
    def ready(self) -> bool:
        """Whether ``window`` rows have been seen."""
        return self._count >= len(self._buf)

    @property
    def count(self) -> int:
        """Rows held (at most ``window``)."""
        return min(self._count, len(self._buf))

    @property
    def nbytes(self) -> int:
        """Bytes held by this keeper: its slots object plus the ring buffer (header and data).

        The normaliser is shared by all keepers of one model and not counted.
        """
        return sys.getsizeof(self) + sys.getsizeof(self._buf)

    def push(
        self, sensors: Mapping[str, float], settings: Mapping[str, float] | None = None
    ) -> None:
        """Normalise one record (sensor and optional settings dicts) and append it.

        Raises ``DataError`` for a missing or non-finite sensor; the window is then unchanged.
        """
        row = self._norm.transform_one(sensors, settings)
        if not np.isfinite(row).all():
            raise DataError("non-finite sensor value")
        self._buf[self._pos] = row
        self._pos = (self._pos + 1) % len(self._buf)
        self._count = min(self._count + 1, len(self._buf))

    def array(self, pad: bool = False) -> NDArray[np.float32]:
        """The window, oldest row first, as a new ``(window, F)`` array.

        With ``pad`` a window that is not yet full is front-padded with its first row (as in
        training); otherwise it raises ``DataError``.
        """
        if self._count == 0:
            raise DataError("no rows yet")
        if not self.ready:
            if not pad:
                raise DataError(f"window not full ({self._count}/{len(self._buf)} rows)")
            rows = self._buf[: self._count]
            return np.concatenate([np.repeat(rows[:1], len(self._buf) - self._count, 0), rows])
        return np.roll(self._buf, -self._pos, axis=0)

    def clear(self) -> None:
        """Forget all rows (e.g. after a repair)."""
        self._pos = self._count = 0


@dataclass(frozen=True)
class Evaluation:
    """Forecasts on each run's last window against the true RUL, with the summary metrics.

    ``true`` is capped at the model's RUL cap (the protocol's piecewise-linear target);
    ``true_uncapped`` keeps the raw values.
    """

    run_ids: tuple[str, ...]
    prediction: RulPrediction
    true: NDArray[np.float64]
    true_uncapped: NDArray[np.float64]

    def metrics(self) -> dict[str, float]:
        """``rmse``, ``score`` (NASA), ``coverage`` (P10-P90), ``n_engines``, uncapped variants."""
        p = self.prediction
        return {
            "rmse": rmse(p.p50, self.true),
            "score": nasa_score(p.p50, self.true),
            "coverage": interval_coverage(p.p10, p.p90, self.true),
            "n_engines": float(len(self.true)),
            "rmse_uncapped": rmse(p.p50, self.true_uncapped),
            "score_uncapped": nasa_score(p.p50, self.true_uncapped),
        }


def evaluate(predictor: RulPredictor, runs: Sequence[Run]) -> Evaluation:
    """Score ``predictor`` on the last window of each run (C-MAPSS test protocol).

    >>> from models.rul.artifact import Architecture, ArtifactMetadata
    >>> from models.rul.data import fit_normalizer, simulated_runs
    >>> runs = simulated_runs(assets=2, lives=1)
    >>> norm = fit_normalizer(runs, ("s2", "s3"))
    >>> arch = Architecture(2, hidden=4, layers=1)
    >>> predictor = RulPredictor(arch.build(), ArtifactMetadata(norm, 30, 125.0, arch, 0, "0"))
    >>> sorted(evaluate(predictor, runs).metrics())[:3]
    ['coverage', 'n_engines', 'rmse']
    """
    x, y = final_windows(runs, predictor.normalizer, predictor.window)
    pred = predictor.predict(x)
    capped = np.minimum(y, predictor.metadata.cap)
    return Evaluation(tuple(r.run_id for r in runs), pred, capped, y)
