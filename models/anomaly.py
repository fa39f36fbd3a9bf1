"""Per-asset online anomaly scoring: regime-aware scaling, scorers, adaptive threshold.

Every asset learns its own normal from its own stream. Sensor values are standardised against
running statistics kept per operating regime (settings vectors are grouped into regimes by a
leader clustering), so a machine that switches between load points is not scored against the
wrong baseline. Two scorers share that scaling:

* :class:`DeviationScorer` aggregates the per-sensor standardised deviations (the default: it
  scored best on NAB machine_temperature and on river's Shuttle, and its state is a few floats
  per sensor and regime);
* :class:`HalfSpaceScorer` feeds the squashed deviations to river's ``HalfSpaceTrees``.

Both follow River's interface (``learn_one``/``score_one`` over ``dict[str, float]``) and explain
a score through :meth:`RegimeScaler.contributions`: the signed deviation of each sensor.
Operating settings travel in the same ``x`` under keys starting with ``regime_prefix``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from river import anomaly, stats

from models.detectors.kernels import (
    regime_nearest,
    regimes_nearest,
    scaler_deviations,
    scaler_learn,
    scaler_score,
)
from models.run_values import keyed_row, real_values
from models.sensor_table import SensorTable
from models.state_codec import HasCaches

Features = Mapping[str, float]
_AGGREGATES = ("mean", "rms", "max", "top2")
# rows from which one compiled call locates a run's regimes faster than a call per row
_COMPILED_ROWS = 5


class OperatingRegimes(HasCaches):
    """Group operating-settings vectors into regimes (leader clustering).

    A settings vector joins the nearest known regime when every setting lies within
    ``tolerance`` (relative to the regime centre, absolute below 1); otherwise it opens a new
    regime, up to ``max_regimes`` (then the nearest regime is used).

    Parameters
    ----------
    tolerance
        Per-setting relative tolerance.
    max_regimes
        Most regimes kept per asset (bounds memory).

    Examples
    --------
    >>> r = OperatingRegimes()
    >>> r.learn_one({"setting1": 0.25, "setting3": 100.0}), r.learn_one({"setting1": 0.7})
    (0, 1)
    >>> r.predict_one({"setting1": 0.2501, "setting3": 100.0}), r.predict_one({"setting1": 3.0})
    (0, None)
    """

    def __init__(self, tolerance: float = 0.05, max_regimes: int = 16) -> None:
        self.tolerance = tolerance
        self.max_regimes = max_regimes
        self._centres: list[dict[str, float]] = []

    # each centre's tolerance per setting, made once; and for settings of one key order that
    # every centre has: that order, the number of centres, their values and tolerances as
    # arrays (caches: never checkpointed)
    _scales: list[list[tuple[str, float, float]]] | None = None
    _grid: tuple[tuple[str, ...], int, NDArray[np.float64], NDArray[np.float64]] | None = None
    CACHES = ("_scales", "_grid")

    def _scaled(self) -> list[list[tuple[str, float, float]]]:
        """Per centre: (setting, centre value, tolerance * max(1, |value|))."""
        scales = self._scales
        if scales is None:
            scales = self._scales = []
        tolerance = self.tolerance
        for centre in self._centres[len(scales) :]:  # centres are only ever added
            scales.append([(k, c, tolerance * max(1.0, abs(c))) for k, c in centre.items()])
        return scales

    def _grid_for(
        self, keys: tuple[str, ...]
    ) -> tuple[tuple[str, ...], int, NDArray[np.float64], NDArray[np.float64]] | None:
        """The centres as arrays in the order ``keys``, when every centre has exactly those
        settings (the usual case); else None."""
        grid, centres = self._grid, self._centres
        if grid is not None and grid[0] == keys and grid[1] == len(centres):
            return grid
        if self.tolerance <= 0 or any(c.keys() != set(keys) for c in centres):
            return None
        values = np.array([[c[k] for k in keys] for c in centres], float).reshape(-1, len(keys))
        scales = self.tolerance * np.maximum(1.0, np.abs(values))
        self._grid = grid = (keys, len(centres), values, scales)
        return grid

    def _nearest(self, settings: Features) -> tuple[int | None, float]:
        grid = self._grid_for(tuple(settings))
        if grid is not None:  # one compiled pass over the centres
            i, d = regime_nearest(real_values(settings.values()), grid[2], grid[3])
            return (i if i >= 0 else None), d
        best, best_d = None, math.inf
        scales = self._scaled()
        for i, centre in enumerate(self._centres):
            if centre.keys() == settings.keys():  # the usual case: the same settings
                d = 0.0
                for k, c, scale in scales[i]:
                    e = abs(settings[k] - c) / scale
                    d = e if e > d else d  # max(d, e), NaN included: cheaper
                if d < best_d:
                    best, best_d = i, d
                continue
            keys = centre.keys() | settings.keys()
            d = max(
                (
                    abs(settings.get(k, 0.0) - centre.get(k, 0.0))
                    / (self.tolerance * max(1.0, abs(centre.get(k, 0.0))))
                    for k in keys
                ),
                default=0.0,
            )
            if d < best_d:
                best, best_d = i, d
        return best, best_d

    def predict_one(self, settings: Features) -> int | None:
        """The regime of ``settings``, ``None`` when it matches no known regime."""
        best, d = self._nearest(settings)
        return best if d <= 1.0 else None

    def predict_many(self, rows: Sequence[Features]) -> list[int | None]:
        """:meth:`predict_one` of each of ``rows``: rows of the settings every centre has, in
        one order (the usual run), in one compiled call from :data:`_COMPILED_ROWS` rows; others
        one by one.

        >>> r = OperatingRegimes()
        >>> r.learn_one({"setting1": 0.25}), r.learn_one({"setting1": 0.7})
        (0, 1)
        >>> rows = [{"setting1": v} for v in (0.7, 0.251, 9.0, 0.25, float("nan"))] * 3
        >>> r.predict_many(rows) == [r.predict_one(x) for x in rows]
        True
        """
        keys = tuple(rows[0]) if rows else ()
        grid = self._grid_for(keys) if len(rows) >= _COMPILED_ROWS and self._centres else None
        if grid is None or any(tuple(x) != keys for x in rows):
            return [self.predict_one(x) for x in rows]
        flat = chain.from_iterable(x.values() for x in rows)
        values = np.fromiter(flat, float, len(rows) * len(keys)).reshape(len(rows), len(keys))
        best, dist = regimes_nearest(values, grid[2], grid[3])
        near = (dist <= 1.0).tolist()
        return [b if ok else None for b, ok in zip(best.tolist(), near, strict=True)]

    def learn_one(self, settings: Features) -> int:
        """The regime of ``settings``, opening a new one when none matches."""
        best, d = self._nearest(settings)
        if best is not None and (d <= 1.0 or len(self._centres) >= self.max_regimes):
            return best
        self._centres.append(dict(settings))
        return len(self._centres) - 1

    @property
    def n_regimes(self) -> int:
        """Number of regimes seen so far."""
        return len(self._centres)


class RegimeScaler(HasCaches):
    """Running per-regime, per-sensor mean and variance; signed standardised deviations.

    Statistics are exponentially weighted with memory ``window`` (a plain running mean until
    ``window`` records were seen), so a slowly changing normal is followed. A sensor is scored
    in a regime only after ``min_count`` records of it in that regime. The scale is the running
    standard deviation plus ``resolution`` times the sensor's level: telemetry carries about four
    significant digits, so a near-constant sensor flipping by one step is not a deviation of
    many sd (on C-MAPSS FD001 this doubled the engines alarmed before failure).

    Parameters
    ----------
    window
        Memory of the running statistics, in records of one regime.
    min_count
        Records needed before a sensor contributes.
    clip
        Deviations are clipped to ``[-clip, clip]``.
    resolution
        Relative resolution added to the scale (see above).
    regime_prefix
        Keys of ``x`` starting with this prefix are operating settings, not sensors.
    regime_tolerance, max_regimes
        Passed to :class:`OperatingRegimes`.

    Examples
    --------
    >>> s = RegimeScaler(min_count=2)
    >>> for v in (1.0, 2.0, 3.0):
    ...     s.learn_one({"s1": v})
    >>> s.contributions({"s1": 5.0})
    {'s1': 3.669...}
    """

    def __init__(
        self,
        *,
        window: int = 5000,
        min_count: int = 30,
        clip: float = 20.0,
        resolution: float = 5e-4,
        regime_prefix: str = "setting",
        regime_tolerance: float = 0.05,
        max_regimes: int = 16,
    ) -> None:
        self.window = window
        self.min_count = min_count
        self.clip = clip
        self.resolution = resolution
        self.regime_prefix = regime_prefix
        self.regime_tolerance = regime_tolerance
        self.max_regimes = max_regimes
        self._regimes = OperatingRegimes(regime_tolerance, max_regimes)
        self._tables = {}  # per regime

    # The last scored ``x``, split and located, for a ``learn_one`` of the same object to reuse
    # (``x`` must not change in between). Not part of the state: never pickled.
    _located: tuple[Features, dict[str, float], dict[str, float], int | None] | None = None
    CACHES = ("_located",)
    _tables: dict[int, SensorTable] | None = None  # (None: a checkpoint of per-sensor lists)

    def _locate(self, x: Features) -> tuple[dict[str, float], dict[str, float], int | None]:
        sensors, settings = self.split(x)
        regime = self._regimes.predict_one(settings) if settings else 0
        self._located = (x, sensors, settings, regime)
        return sensors, settings, regime

    def split(self, x: Features) -> tuple[dict[str, float], dict[str, float]]:
        """Split ``x`` into ``(sensors, settings)``."""
        sensors: dict[str, float] = {}
        settings: dict[str, float] = {}
        for k, v in x.items():
            (settings if k.startswith(self.regime_prefix) else sensors)[k] = v
        return sensors, settings

    def regimes_of(self, settings: Sequence[Features]) -> list[int | None]:
        """The regime of each settings mapping of a run (empty: regime 0), as :meth:`regime_of`
        would give it now (nothing learned)."""
        if len(settings) == 1:  # the usual run of one record
            x = settings[0]
            return [self._regimes.predict_one(x) if x else 0]
        given = [i for i, x in enumerate(settings) if x]
        out: list[int | None] = [0] * len(settings)
        for i, regime in zip(
            given, self._regimes.predict_many([settings[i] for i in given]), strict=True
        ):
            out[i] = regime
        return out

    @property
    def n_regimes(self) -> int:
        """Operating regimes learned so far."""
        return self._regimes.n_regimes

    def regime_of(self, x: Features) -> int | None:
        """The regime ``x`` belongs to, ``None`` if it is new (nothing learned)."""
        _, settings = self.split(x)
        return self._regimes.predict_one(settings) if settings else 0

    def learn_one(self, x: Features) -> None:
        """Update the statistics of ``x``'s regime."""
        located, self._located = self._located, None
        if located is not None and located[0] is x:
            _, sensors, settings, regime = located
        else:
            sensors, settings = self.split(x)
            regime = None if settings else 0
        self.learn_located(sensors, settings, regime)

    def learn_located(
        self,
        sensors: Features,
        settings: Features,
        regime: int | None,
        values: NDArray[np.float64] | None = None,
    ) -> None:
        """:meth:`learn_one` of a record already split and located (``regime``: as
        :meth:`regimes_of` gives it, ``None`` for a new one; ``values``: those of ``sensors``
        in its order, when already read)."""
        if regime is None:
            regime = self._regimes.learn_one(settings)
        tables = self._regime_tables()
        table = tables.get(regime)
        if table is None:
            table = tables[regime] = SensorTable(3)
        rows = table.rows_for(sensors, grow=True)
        if values is None:
            values = real_values(sensors.values())
        scaler_learn(table.stats, values, rows, 1.0 / self.window)

    def contributions(self, x: Features) -> dict[str, float]:
        """Signed standardised deviation of each scored sensor of ``x`` (learns nothing)."""
        sensors, _, regime = self._locate(x)
        return self.deviations(sensors, regime)

    def deviations(self, sensors: Features, regime: int | None) -> dict[str, float]:
        """:meth:`contributions` of a record's sensors already split off and located."""
        deviations = self._deviation_array(sensors, regime)
        return (
            {} if deviations is None else _as_dict(sensors, deviations[0].tolist(), deviations[1])
        )

    def _deviation_array(
        self, sensors: Features, regime: int | None, values: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], int] | None:
        """The deviation of each of ``sensors`` in its order (NaN: not scored) and how many
        are scored; ``None`` when nothing of ``regime`` was learned (``values``: those of
        ``sensors``, when already read)."""
        tables = self._regime_tables()
        table = tables.get(regime) if regime is not None else None
        if table is None or not table.names or not sensors:
            return None
        if values is None:
            values = real_values(sensors.values())
        z = np.empty(len(values))
        scored = scaler_deviations(
            table.stats, values, table.rows_for(sensors), self.clip, self.resolution,
            self.min_count, z,
        )  # fmt: skip
        return z, scored

    def forget(self, sensors: Features | list[str], x: Features | None = None) -> None:
        """Drop the statistics of ``sensors`` (in ``x``'s regime, or in all regimes)."""
        regime = self.regime_of(x) if x is not None else None
        tables = self._regime_tables()
        for r, table in tables.items():
            if regime is None or r == regime:
                table.drop(sensors)

    def _regime_tables(self) -> dict[int, SensorTable]:
        """The statistics per regime; a checkpoint written before they were tables holds
        per-sensor lists (``_stats``), taken over here."""
        tables = self._tables
        if tables is None:
            lists: dict[int, dict[str, list[float]]] = self.__dict__.pop("_stats", {})
            tables = self._tables = {r: SensorTable.of(t, 3) for r, t in lists.items()}
        return tables


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
        return _as_dict(self.keys, self.z.tolist(), self.scored)

    def row(self) -> tuple[tuple[str, ...], NDArray[np.float64]]:
        """The scored sensors and their deviations as an array, in the record's order.

        >>> Explained(1.0, ("a", "b"), np.array([0.5, np.nan]), 1, ()).row()
        (('a',), array([0.5]))
        """
        if self.scored == len(self.keys):
            return self.keys, self.z
        return keyed_row(self.as_dict())


_NOTHING_EXPLAINED = Explained(0.0, (), np.zeros(0), 0, ())  # nothing of the regime learned


def _as_dict(sensors: Iterable[str], z: list[float], scored: int) -> dict[str, float]:
    """The scored ones of a record's deviations ``z`` by sensor (NaN: not scored)."""
    if scored == len(z):
        return dict(zip(sensors, z, strict=True))
    return {k: q for k, q in zip(sensors, z, strict=True) if not math.isnan(q)}


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


class AdaptiveThreshold:
    """A running quantile of an asset's own scores, never below a fixed floor.

    Parameters
    ----------
    q
        Quantile of past scores above which a score is anomalous.
    floor
        Lowest threshold (in score units): scores below it never alarm, however quiet the
        asset has been.

    Examples
    --------
    >>> t = AdaptiveThreshold(q=0.9, floor=1.0)
    >>> for s in range(100):
    ...     t.update(s / 10)
    >>> round(t.get(), 1), t.classify(9.5), t.classify(0.5)
    (8.9, True, False)
    """

    def __init__(self, q: float = 0.995, floor: float = 3.0) -> None:
        self.q = q
        self.floor = floor
        self._quantile = stats.Quantile(q)

    def get(self) -> float:
        """Current threshold."""
        value = self._quantile.get()
        return max(self.floor, float(value)) if value is not None else self.floor

    def classify(self, score: float) -> bool:
        """Whether ``score`` is above the threshold."""
        return score > self.get()

    def update(self, score: float) -> None:
        """Learn one score."""
        self._quantile.update(score)
