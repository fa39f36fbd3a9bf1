"""Does a forecast's input look like the data the model was trained on?

The measure is the Mahalanobis distance of a window's mean scaled sensors from the mean of the
training windows, under their covariance (shrunk towards the diagonal so that it is invertible).
Wear moves an asset's sensors together along directions the training lives span; an asset of
another kind, a sensor with an offset or a different fault mode moves them elsewhere. The
threshold is calibrated on the training folds: each fold's held-out windows are measured against
the statistics of the other folds, and the threshold is the ``quantile`` of those out-of-fold
distances, so about ``1 - quantile`` of new assets like the training ones are flagged. A
forecast's *domain score* is its distance over the threshold: at most 1 is in domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError

QUANTILE = 0.98  # share of out-of-fold training windows that count as in domain
SHRINKAGE = 0.01  # covariance shrinkage towards its mean diagonal


def window_means(x: NDArray[np.float32], n_sensors: int) -> NDArray[np.float64]:
    """Mean over time of the first ``n_sensors`` channels of windows ``(B, W, F)`` -> ``(B, S)``.

    >>> window_means(np.ones((2, 3, 4), dtype=np.float32), 2).shape
    (2, 2)
    """
    return np.asarray(x[:, :, :n_sensors].mean(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class DomainModel:
    """Training statistics of window means and the calibrated distance threshold.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(0.5, 0.1, (500, 4, 2)).astype(np.float32)
    >>> d = DomainModel.fit(train, 2).calibrated(train)
    >>> near, far = train[:1], train[:1] + np.float32(1.0)
    >>> bool(d.score(near)[0] <= 1.0), bool(d.score(far)[0] > 1.0)
    (True, True)
    >>> DomainModel.from_dict(d.to_dict()) == d
    True
    """

    n_sensors: int
    mean: NDArray[np.float64]
    precision: NDArray[np.float64]
    threshold: float = float("inf")

    @classmethod
    def fit(cls, windows: NDArray[np.float32], n_sensors: int) -> DomainModel:
        """Statistics of the training ``windows (N, W, F)`` (threshold not yet calibrated)."""
        m = window_means(windows, n_sensors)
        if len(m) < 2:
            raise DataError("need at least two windows to fit the in-domain measure")
        cov = np.atleast_2d(np.cov(m, rowvar=False))
        ridge = SHRINKAGE * float(np.trace(cov)) / n_sensors + 1e-9
        precision = np.asarray(np.linalg.inv(cov + ridge * np.eye(n_sensors)), dtype=np.float64)
        return cls(n_sensors, np.asarray(m.mean(axis=0), dtype=np.float64), precision)

    def distance(self, windows: NDArray[np.float32]) -> NDArray[np.float64]:
        """Mahalanobis distance of each window's sensor means ``(B,)``."""
        d = window_means(windows, self.n_sensors) - self.mean
        squared = np.einsum("bi,ij,bj->b", d, self.precision, d)
        return np.asarray(np.sqrt(np.maximum(squared, 0.0)), dtype=np.float64)

    def calibrated(
        self, held_out: NDArray[np.float32] | NDArray[np.float64], quantile: float = QUANTILE
    ) -> DomainModel:
        """This model with its threshold at ``quantile`` of ``held_out``.

        ``held_out`` is either windows ``(N, W, F)`` or their distances ``(N,)`` (pooled over
        folds, each measured against its own fold's statistics).
        """
        dist = held_out if held_out.ndim == 1 else self.distance(held_out.astype(np.float32))
        if not len(dist):
            raise DataError("no held-out windows to calibrate the in-domain measure on")
        threshold = float(np.quantile(dist, quantile))
        return DomainModel(self.n_sensors, self.mean, self.precision, max(threshold, 1e-9))

    def score(self, windows: NDArray[np.float32]) -> NDArray[np.float64]:
        """Distance over the threshold ``(B,)``: at most 1 is in domain."""
        return self.distance(windows) / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "n_sensors": self.n_sensors,
            "mean": self.mean.tolist(),
            "precision": self.precision.tolist(),
            "threshold": self.threshold,
            "quantile": QUANTILE,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DomainModel:
        """Rebuild from :meth:`to_dict` output; raises ``DataError`` on inconsistent shapes."""
        try:
            n = int(data["n_sensors"])
            mean = np.asarray(data["mean"], dtype=float)
            precision = np.asarray(data["precision"], dtype=float)
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"invalid in-domain description: {exc}") from None
        if mean.shape != (n,) or precision.shape != (n, n) or not 0 < threshold < float("inf"):
            raise DataError("invalid in-domain description: inconsistent shapes or threshold")
        if not (np.isfinite(mean).all() and np.isfinite(precision).all()):
            raise DataError("invalid in-domain description: non-finite values")
        return cls(n, mean, precision, threshold)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DomainModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]
