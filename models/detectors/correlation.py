"""Broken correlations between an asset's sensors: online PCA, its SPE (Q) and T² statistics.

The standardised deviations of an asset's sensors (see :class:`models.regime_scaler.RegimeScaler`)
are tracked by an exponentially weighted covariance; every ``refresh`` records its principal
components explaining ``explained`` of the variance are recomputed. A record's squared
prediction error (SPE, Q statistic) is what those components cannot reproduce: sensors that
usually move together and now do not. Hotelling's T² is the other half: the record's distance
inside the components, each scaled by its variance (sensors that still move together, but
further than ever). Like the novelty detectors, each statistic alarms when it rises above its
slowly forgetting maximum by ``margin`` times that maximum; the larger excess is reported.
A record is projected, judged and learned in one compiled call (the decomposition stays in
numpy), with the products and sums numpy's would give, to the last bit.

State: a tuple of sensor names and numpy arrays (plain data for any checkpoint codec).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from models.detectors.correlation_kernels import correlation_step, covariance_learn
from models.run_values import keyed_row

# a record's residual off the components and its per-sensor T² contributions, with their SPE
# (squared residual) and T² (sum)
_Parts = tuple[NDArray[np.float64], NDArray[np.float64], float, float]
Findings = dict[str, tuple[float, tuple[str, ...]]]
_NO_BASIS, _NO_VARIANCE = np.zeros((0, 0)), np.zeros(0)  # the compiled step before components


class CorrelationDetector:
    """SPE and T² of an online PCA over standardised deviations (River-style interface).

    Parameters
    ----------
    margin
        How far above its past maximum (as a fraction of it) the SPE must rise to count.
    decay
        Per-record shrinking of the remembered maximum (1: never forget).
    explained
        Share of variance the principal components keep.
    alpha
        Weight of the newest record in the covariance.
    refresh
        Records between two decompositions.
    min_sensors
        Fewer sensors than this: the detector stays silent.
    min_count
        Records learned (of one sensor set) before anything is scored.

    Examples
    --------
    >>> import math
    >>> d = CorrelationDetector()
    >>> for i in range(400):
    ...     a = math.sin(i / 5)
    ...     d.learn_one({"s1": a, "s2": a, "s3": -a, "s4": 0.5 * math.cos(i / 7)})
    >>> d.score_one({"s1": 1.0, "s2": 1.0, "s3": -1.0, "s4": 0.0})
    {}
    >>> d.score_one({"s1": 1.0, "s2": -1.0, "s3": -1.0, "s4": 0.0})["correlation"][1][0]
    's2'
    >>> sorted(d.score_one({"s1": 9.0, "s2": 9.0, "s3": -9.0, "s4": 0.0})["correlation"][1])
    ['s1', 's2', 's3']
    """

    # T² state, as class defaults so that checkpoints written before T² existed restore
    _inverse_variance: NDArray[np.float64] | None = None
    _t2_max = 0.0
    _keys: tuple[str, ...] = ()  # the last record's sensors, in its order ...
    _order: NDArray[np.intp] = np.zeros(0, dtype=np.intp)  # ... and their sorted positions

    def __init__(
        self,
        *,
        margin: float = 0.1,
        decay: float = 0.9999,
        explained: float = 0.9,
        alpha: float = 0.01,
        refresh: int = 50,
        min_sensors: int = 3,
        min_count: int = 300,
    ) -> None:
        self.margin = margin
        self.decay = decay
        self.explained = explained
        self.alpha = alpha
        self.refresh = refresh
        self.min_sensors = min_sensors
        self.min_count = min_count
        self._names: tuple[str, ...] = ()
        self._n = 0
        self._mean: NDArray[np.float64] = np.zeros(0)
        self._cov: NDArray[np.float64] = np.zeros((0, 0))
        self._basis: NDArray[np.float64] | None = None
        self._max = 0.0

    def _known(self, keys: tuple[str, ...]) -> bool:
        """Whether the sensors ``keys`` are enough to judge (their values in their order,
        ``[self._order]``: in the state's). Another sensor set starts the detector again."""
        if len(keys) < self.min_sensors:
            return False
        if keys != self._keys:  # sensors in another order than the last record's
            names = tuple(sorted(keys))
            if names != self._names:  # another sensor set: start again
                self._names, self._n, self._basis, self._max = names, 0, None, 0.0
                self._t2_max, self._inverse_variance = 0.0, None
                self._mean, self._cov = np.zeros(len(names)), np.zeros((len(names), len(names)))
            self._keys, self._order = keys, np.argsort(keys, kind="stable")
        return True

    def _split(self, v: NDArray[np.float64]) -> _Parts | None:
        """The record's residual off the components and per-sensor T² contributions, with their
        SPE and T² (computed once for judging and learning)."""
        if self._basis is None or self._inverse_variance is None:
            return None
        c = v - self._mean
        p = self._basis.T @ c
        res, t2_parts = c - self._basis @ p, c * (self._basis @ (p * self._inverse_variance))
        # (add.reduce is what ndarray.sum runs, without its Python-level wrapper)
        return res, t2_parts, float(res @ res), float(np.add.reduce(t2_parts, axis=None))

    def score_one(self, z: Mapping[str, float]) -> Findings:
        """``{"correlation": (excess, sensors)}`` when the SPE or T² is novel, else ``{}``."""
        return self._step(z, judge=True, learn=False)

    def learn_one(self, z: Mapping[str, float]) -> None:
        """Take ``z`` into the covariance (and the remembered SPE and T² maxima)."""
        self._step(z, judge=False, learn=True)

    def score_learn_one(self, z: Mapping[str, float], score: bool = True) -> Findings:
        """:meth:`score_one` (when ``score``) then :meth:`learn_one`, the projection made once."""
        return self._step(z, judge=score, learn=True)

    def score_learn_row(
        self, keys: tuple[str, ...], values: NDArray[np.float64], score: bool = True
    ) -> Findings:
        """:meth:`score_learn_one` of the deviations ``values`` of the sensors ``keys``, in
        their order."""
        return self._step_row(keys, values, judge=score, learn=True)

    def _step(self, z: Mapping[str, float], judge: bool, learn: bool) -> Findings:
        return self._step_row(*keyed_row(z), judge, learn)

    def _step_row(
        self, keys: tuple[str, ...], values: NDArray[np.float64], judge: bool, learn: bool
    ) -> Findings:
        """One record in one compiled call
        (:func:`~models.detectors.correlation_kernels.correlation_step`): judged when ``judge``
        (and past ``min_count``), learned when ``learn``; every ``refresh`` records learned, the
        components are recomputed."""
        if not self._known(keys):
            return {}
        judge = judge and self._n >= self.min_count
        if correlation_step is None:
            return self._numpy_step(values[self._order], judge, learn)
        basis, inverse_variance = self._basis, self._inverse_variance
        if basis is None or inverse_variance is None:
            basis, inverse_variance = _NO_BASIS, _NO_VARIANCE
        excess, *top, spe_max, t2_max = correlation_step(
            values, self._order, self._mean, self._cov, basis, inverse_variance, self._n,
            self._max, self._t2_max, self.margin, self.decay, self.alpha, judge, learn,
        )  # fmt: skip
        if learn:
            self._max, self._t2_max = spe_max, t2_max
            self._n += 1
            if self._n % self.refresh == 0:
                self._decompose()
        if not excess:
            return {}
        return {"correlation": (excess, tuple(self._names[i] for i in top if i >= 0))}

    def _numpy_step(self, v: NDArray[np.float64], judge: bool, learn: bool) -> Findings:
        """:meth:`_step` in numpy (where the compiled step is not available)."""
        parts = self._split(v)
        found = self._judge(parts) if judge else {}
        if learn:
            self._learn(v, parts)
        return found

    def _judge(self, parts: _Parts | None) -> Findings:
        if parts is None or self._n < self.min_count:
            return {}
        res, t2_parts, spe, t2 = parts
        best = (1.0, res)
        for stat, top, by in ((spe, self._max, res), (t2, self._t2_max, t2_parts)):
            if top > 0.0 and (excess := (stat - top) / (self.margin * top)) > best[0]:
                best = (excess, by)
        if best[0] <= 1.0:
            return {}
        order = np.argsort(-np.abs(best[1]), kind="stable")[:3]
        return {"correlation": (best[0], tuple(self._names[i] for i in order))}

    def _learn(self, v: NDArray[np.float64], parts: _Parts | None) -> None:
        if parts is not None:
            _, _, spe, t2 = parts
            self._max = max(spe, self._max * self.decay)
            self._t2_max = max(t2, self._t2_max * self.decay)
        self._n += 1
        covariance_learn(self._mean, self._cov, v, max(1.0 / self._n, self.alpha))
        if self._n % self.refresh == 0:
            self._decompose()

    def _decompose(self) -> None:
        values, vectors = np.linalg.eigh(self._cov)
        values, vectors = values[::-1], vectors[:, ::-1]
        total = float(values.sum())
        if total <= 0.0:
            return
        keep = int(np.searchsorted(np.cumsum(values) / total, self.explained)) + 1
        keep = min(keep, len(values) - 1)
        self._basis = np.ascontiguousarray(vectors[:, :keep])
        self._inverse_variance = 1.0 / np.maximum(values[:keep], 1e-12 * total)
