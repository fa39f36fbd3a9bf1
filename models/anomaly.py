"""Per-asset online anomaly scorers over regime-aware scaling, and their explanations.

Both scorers standardise sensor values per operating regime
(:class:`models.regime_scaler.RegimeScaler`) and score the record from those deviations:

* :class:`DeviationScorer` aggregates the per-sensor standardised deviations (the default: it
  scored best on NAB machine_temperature and on river's Shuttle, and its state is a few floats
  per sensor and regime);
* :class:`HalfSpaceScorer` feeds the squashed deviations to river's ``HalfSpaceTrees``.

Both follow River's interface (``learn_one``/``score_one`` over ``dict[str, float]``) and explain
a score through :meth:`~models.regime_scaler.RegimeScaler.contributions`: the signed deviation
of each sensor (:class:`Explained`). The threshold a score is judged by is the asset's own
(:class:`models.threshold.AdaptiveThreshold`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from river import anomaly

from models.detectors.scaler_kernels import scaler_score
from models.regime_scaler import RegimeScaler, deviations_by_sensor
from models.regimes import Features
from models.run_values import keyed_row

_AGGREGATES = ("mean", "rms", "max", "top2")


class Explained(NamedTuple):
    """A record's score and its deviations: ``z`` in the order of its sensors ``keys`` (NaN:
    not scored; ``scored`` of them are), ``top`` the largest (:func:`top_contributors`)."""

    score: float
    keys: tuple[str, ...]
    z: NDArray[np.float64]
    scored: int
    top: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, float]:
        """The scored deviations by sensor (as :meth:`RegimeScaler.deviations` gives them)."""
        return deviations_by_sensor(self.keys, self.z.tolist(), self.scored)

    def row(self) -> tuple[tuple[str, ...], NDArray[np.float64]]:
        """The scored sensors and their deviations as an array, in the record's order.

        >>> Explained(1.0, ("a", "b"), np.array([0.5, np.nan]), 1, ()).row()
        (('a',), array([0.5]))
        """
        if self.scored == len(self.keys):
            return self.keys, self.z
        return keyed_row(self.as_dict())


_NOTHING_EXPLAINED = Explained(0.0, (), np.zeros(0), 0, ())  # nothing of the regime learned


def aggregate(z: Mapping[str, float], how: str = "mean") -> float:
    """Combine signed deviations into one non-negative score.

    ``mean`` of absolute deviations, ``rms``, ``max``, or ``top2`` (mean of the two largest).

    >>> aggregate({"a": 3.0, "b": -1.0}), aggregate({"a": 3.0, "b": -1.0}, "max")
    (2.0, 3.0)
    """
    if not z:
        return 0.0
    if how == "top2":  # the two largest magnitudes (the deviation scorer's default)
        top = sorted(map(abs, z.values()))
        return (top[-1] + top[-2]) / 2 if len(top) > 1 else top[0]
    mags = [abs(v) for v in z.values()]
    if how == "mean":
        return sum(mags) / len(mags)
    if how == "rms":
        return math.sqrt(sum(m * m for m in mags) / len(mags))
    if how == "max":
        return max(mags)
    raise ValueError(f"aggregate must be one of {_AGGREGATES}, not {how!r}")


def top_contributors(z: Mapping[str, float], k: int = 3) -> tuple[tuple[str, float], ...]:
    """The ``k`` sensors with the largest absolute deviation, with sign (``z`` as
    :meth:`RegimeScaler.deviations` gives it: clipped, never NaN).

    >>> top_contributors({"s7": 2.5, "s11": -4.0, "s2": 0.1}, k=2)
    (('s11', -4.0), ('s7', 2.5))
    """
    if len(z) > k > 0:  # only magnitudes up to the k-th largest can rank (``z`` has no NaN)
        least = sorted(map(abs, z.values()))[-k]
        ranked = sorted([(-m, s) for s, v in z.items() if (m := abs(v)) >= least])[:k]
    else:
        ranked = sorted([(-abs(v), s) for s, v in z.items()])[:k]
    return tuple([(s, round(z[s], 3)) for _, s in ranked])


class Scorer(RegimeScaler):
    """A :class:`RegimeScaler` that scores records from their deviations (River anomaly
    interface); subclasses say how, in :meth:`score_located`."""

    def score_located(
        self, sensors: Features, regime: int | None
    ) -> tuple[float, dict[str, float]]:
        """The score of a record already split and located, and its deviations."""
        raise NotImplementedError

    def explain(
        self,
        sensors: Features,
        regime: int | None,
        k: int,
        values: NDArray[np.float64] | None = None,
    ) -> Explained:
        """:meth:`score_located` and the ``k`` largest deviations (:func:`top_contributors`),
        the deviations as an array (:class:`Explained`; ``values``: those of ``sensors`` in its
        order, when already read)."""
        score, z = self.score_located(sensors, regime)
        return Explained(score, *keyed_row(z), len(z), top_contributors(z, k))

    def score_and_explain(self, x: Features) -> tuple[float, dict[str, float]]:
        """``(score_one(x), contributions(x))`` computed once."""
        sensors, _, regime = self._locate(x)
        return self.score_located(sensors, regime)

    def score_one(self, x: Features) -> float:
        """Score ``x`` (higher is more anomalous); 0 before anything was learned."""
        return self.score_and_explain(x)[0]


class DeviationScorer(Scorer):
    """Anomaly score from per-sensor standardised deviations (River anomaly interface).

    Parameters
    ----------
    how
        How deviations are combined, see :func:`aggregate`.
    **scaler
        Settings of :class:`RegimeScaler`.

    Examples
    --------
    >>> m = DeviationScorer(min_count=5)
    >>> for i in range(50):
    ...     m.learn_one({"s1": 10.0 + (i % 5) * 0.1, "s2": 1.0 + (i % 3) * 0.01})
    >>> m.score_one({"s1": 10.2, "s2": 1.01}) < 1.0 < m.score_one({"s1": 15.0, "s2": 1.01})
    True
    """

    def __init__(self, how: str = "max", **scaler: Any) -> None:
        super().__init__(**scaler)
        if how not in _AGGREGATES:
            raise ValueError(f"how must be one of {_AGGREGATES}, not {how!r}")
        self.how = how

    def score_located(
        self, sensors: Features, regime: int | None
    ) -> tuple[float, dict[str, float]]:
        """:meth:`score_and_explain` of a record already split and located."""
        z = self.deviations(sensors, regime)
        return aggregate(z, self.how), z

    def explain(
        self,
        sensors: Features,
        regime: int | None,
        k: int,
        values: NDArray[np.float64] | None = None,
    ) -> Explained:
        """:meth:`Scorer.explain` from one compiled pass over the deviations (the same numbers
        as :func:`aggregate` and :func:`top_contributors`).

        >>> m = DeviationScorer(min_count=5)
        >>> for i in range(50):
        ...     m.learn_one({"s1": 10.0 + (i % 5) * 0.1, "s2": 1.0 + (i % 3) * 0.01})
        >>> x = {"s1": 15.0, "s2": 1.01}
        >>> score, z = m.score_located(x, 0)
        >>> e = m.explain(x, 0, 1)
        >>> (e.score, e.as_dict(), e.top) == (score, z, top_contributors(z, 1))
        True
        """
        deviations = self._deviation_array(sensors, regime, values)
        if deviations is None:
            return _NOTHING_EXPLAINED
        z, scored = deviations
        candidates = np.empty(len(z), dtype=np.int64)
        score, n = scaler_score(z, _AGGREGATES.index(self.how), k, candidates)
        keys, zs = tuple(sensors), z.tolist()
        ranked = sorted([(-abs(zs[i]), keys[i], zs[i]) for i in candidates[:n].tolist()])
        top = tuple([(s, round(q, 3)) for _, s, q in ranked[:k]])
        return Explained(score, keys, z, scored, top)


class HalfSpaceScorer(Scorer):
    """River's ``HalfSpaceTrees`` over regime-standardised, squashed sensor values.

    Deviations are mapped into ``[0, 1]`` by ``0.5 + z / (2 * span)`` (clipped), the input
    range ``HalfSpaceTrees`` expects.

    Parameters
    ----------
    n_trees, height, window_size, seed
        Passed to ``river.anomaly.HalfSpaceTrees``.
    span
        Deviation mapped to the edges of the unit interval.
    **scaler
        Settings of :class:`RegimeScaler`.

    Examples
    --------
    >>> m = HalfSpaceScorer(seed=1, min_count=5, window_size=20)
    >>> for i in range(100):
    ...     m.learn_one({"s1": 10.0 + (i % 5) * 0.1})
    >>> m.score_one({"s1": 10.2}) < m.score_one({"s1": 15.0})
    True
    """

    def __init__(
        self,
        *,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        seed: int = 0,
        span: float = 4.0,
        **scaler: Any,
    ) -> None:
        super().__init__(**scaler)
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.span = span
        self._hst: Any = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )

    def _squash(self, z: Mapping[str, float]) -> dict[str, float]:
        return {k: min(1.0, max(0.0, 0.5 + v / (2.0 * self.span))) for k, v in z.items()}

    def learn_one(self, x: Features) -> None:
        """Learn ``x`` into the scaler, then its squashed deviations into the trees."""
        sensors, settings, regime = self._locate(x)
        self._located = None
        self.learn_located(sensors, settings, regime)

    def learn_located(
        self,
        sensors: Features,
        settings: Features,
        regime: int | None,
        values: NDArray[np.float64] | None = None,
    ) -> None:
        """:meth:`learn_one` of a record already split and located."""
        z = self.deviations(sensors, regime)
        super().learn_located(sensors, settings, regime, values)
        if z:
            self._hst.learn_one(self._squash(z))

    def score_located(
        self, sensors: Features, regime: int | None
    ) -> tuple[float, dict[str, float]]:
        """:meth:`score_and_explain` of a record already split and located."""
        z = self.deviations(sensors, regime)
        return (float(self._hst.score_one(self._squash(z))) if z else 0.0), z
