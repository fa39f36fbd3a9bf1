"""Sensor selection, per-regime normalisation, trend channels and sliding windows for RUL.

The C-MAPSS protocol keeps 14 informative sensors and min-max scales them with statistics fitted
on the training data. When the operating settings vary (several flight conditions, or several
regimes in the fleet simulator), the sensors' levels depend on the regime far more than on the
wear, so the settings are first clustered into regimes and each regime gets its own scaling.
Everything fitted here is plain numbers and round-trips through :meth:`Normalizer.to_dict`, so an
artifact stores it as JSON. A window of 30 rows sees little of an asset's history; the trend
channels (an exponentially weighted mean of each scaled sensor since the asset's first record) add
a slow baseline that the recent rows can be compared with, and the age channel says how many
cycles the asset has run since its life (or last repair) began. :class:`InputSpec` bundles these
choices for one model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.errors import DataError

INFORMATIVE_SENSORS: tuple[str, ...] = (
    "s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21",
)  # fmt: skip
SETTINGS: tuple[str, ...] = ("setting1", "setting2", "setting3")
WINDOW = 30
TREND_ALPHA = 0.02  # smoothing factor of the trend channels (time constant of ~50 records)
AGE_SCALE = 200.0  # the age channel is cycles since the start of life / AGE_SCALE
CLIP = (-1.0, 2.0)  # scaled values far outside the training range are clipped, not trusted

FloatArray = NDArray[np.float64]


def _kmeans(x: FloatArray, k: int, iterations: int = 50) -> tuple[FloatArray, NDArray[np.intp]]:
    """Deterministic k-means with farthest-point initialisation (no random state)."""
    centroids = [x[int(np.argmin(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))]]
    for _ in range(1, k):
        d = np.min([np.sum((x - c) ** 2, axis=1) for c in centroids], axis=0)
        centroids.append(x[int(np.argmax(d))])
    c = np.array(centroids, dtype=float)
    labels = np.zeros(len(x), dtype=np.intp)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), axis=1)
        new = np.array(
            [x[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)]
        )
        if np.allclose(new, c):
            break
        c = new
    return c, labels


def find_regimes(settings: ArrayLike, max_regimes: int = 8, separation: float = 10.0) -> FloatArray:
    """Cluster operating settings into regimes; return the centroids ``(R, n_settings)``.

    The largest ``k <= max_regimes`` is kept whose clusters are real operating points: the closest
    two centroids are more than ``separation`` times the widest cluster's RMS radius apart. Noise
    around a single operating point (C-MAPSS FD001) therefore stays one regime.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> points = np.array([[0.0, 0.0, 100.0], [20.0, 0.7, 100.0], [35.0, 0.84, 60.0]])
    >>> s = points[rng.integers(3, size=600)] + rng.normal(0, 0.002, (600, 3))
    >>> find_regimes(s).shape
    (3, 3)
    >>> find_regimes(rng.normal(0, 0.002, (600, 3))).shape
    (1, 3)
    """
    s = np.asarray(settings, dtype=float)
    if s.ndim != 2 or len(s) == 0:
        raise DataError(f"settings must be a non-empty 2-d array, got shape {s.shape}")
    scale = _settings_scale(s)
    z = s / scale
    best = z.mean(axis=0, keepdims=True)
    sample = z[:: max(1, len(z) // 20_000)]
    for k in range(2, max_regimes + 1):
        if len(np.unique(sample.round(9), axis=0)) < k:
            break
        c, labels = _kmeans(sample, k)
        radius = max(
            float(np.sqrt(np.mean(np.sum((sample[labels == j] - c[j]) ** 2, axis=1))))
            for j in range(k)
            if np.any(labels == j)
        )
        gaps = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(axis=2))
        if gaps[np.triu_indices(k, 1)].min() > separation * max(radius, 1e-12):
            best = c
    return np.asarray(best * scale, dtype=float)


def _settings_scale(s: FloatArray) -> FloatArray:
    std = s.std(axis=0)
    return np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class Normalizer:
    """Per-regime min-max scaling of the selected sensors, fitted on training data.

    Attributes
    ----------
    sensors
        Names of the scaled sensors, in feature order.
    centroids
        Regime centroids in settings space, shape ``(R, n_settings)``; ``R == 1`` is one regime.
    settings_scale
        Per-setting scale used for the nearest-centroid regime lookup, shape ``(n_settings,)``.
    lo, hi
        Per-regime minimum and maximum of each sensor, shape ``(R, n_sensors)``.
    setting_names
        Names of the settings columns (empty: the first ``n_settings`` of ``SETTINGS``).

    Examples
    --------
    >>> norm = Normalizer.fit(np.array([[1.0, 10.0], [3.0, 30.0]]), np.zeros((2, 3)), ("a", "b"))
    >>> norm.transform(np.array([[2.0, 20.0]]), np.zeros((1, 3))).tolist()
    [[0.5, 0.5]]
    >>> Normalizer.from_dict(norm.to_dict()) == norm
    True
    """

    sensors: tuple[str, ...]
    centroids: FloatArray
    settings_scale: FloatArray
    lo: FloatArray
    hi: FloatArray
    setting_names: tuple[str, ...] = ()

    @property
    def n_regimes(self) -> int:
        """Number of operating regimes."""
        return int(self.centroids.shape[0])

    @classmethod
    def fit(
        cls,
        sensors: ArrayLike,
        settings: ArrayLike,
        names: Sequence[str] = INFORMATIVE_SENSORS,
        max_regimes: int = 8,
        setting_names: Sequence[str] = (),
    ) -> Normalizer:
        """Fit regimes on ``settings (N, S)`` and per-regime ranges on ``sensors (N, F)``.

        >>> Normalizer.fit(np.ones((3, 2)), np.zeros((3, 3)), ("a", "b")).n_regimes
        1
        """
        x, s = np.asarray(sensors, dtype=float), np.asarray(settings, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(names) or len(s) != len(x) or len(x) == 0:
            raise DataError(f"cannot fit scaling on sensors {x.shape} and settings {s.shape}")
        centroids = find_regimes(s, max_regimes=max_regimes)
        scale = _settings_scale(s)
        regime = _nearest(s, centroids, scale)
        used = np.unique(regime)
        if len(used) < len(centroids):  # a centroid that no row is nearest to is dropped
            centroids = centroids[used]
            regime = _nearest(s, centroids, scale)
        lo = np.array([x[regime == r].min(axis=0) for r in range(len(centroids))])
        hi = np.array([x[regime == r].max(axis=0) for r in range(len(centroids))])
        return cls(tuple(names), centroids, scale, lo, hi, tuple(setting_names))

    def regime(self, settings: ArrayLike) -> NDArray[np.intp]:
        """Regime index of each settings row ``(N, S)`` -> ``(N,)``.

        >>> norm = Normalizer.fit(np.ones((2, 1)), [[0.0, 0, 0], [9.0, 0, 0]], ("a",))
        >>> norm.regime([[8.0, 0, 0], [1.0, 0, 0]]).tolist()
        [1, 0]
        """
        return _nearest(np.asarray(settings, dtype=float), self.centroids, self.settings_scale)

    def transform(
        self, sensors: ArrayLike, settings: ArrayLike | None = None
    ) -> NDArray[np.float32]:
        """Scale ``sensors (N, F)`` with their regimes' ranges -> ``float32 (N, F)``.

        ``settings (N, S)`` may be left out only when there is a single regime.

        >>> norm = Normalizer.fit([[0.0], [4.0]], np.zeros((2, 3)), ("a",))
        >>> norm.transform([[1.0], [100.0]]).ravel().tolist()
        [0.25, 2.0]
        """
        x = np.asarray(sensors, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.sensors):
            raise DataError(f"expected sensors of shape (N, {len(self.sensors)}), got {x.shape}")
        if self.n_regimes == 1:
            regime = np.zeros(len(x), dtype=np.intp)
        elif settings is None:
            raise DataError(f"operating settings are required ({self.n_regimes} regimes)")
        else:
            regime = self.regime(settings)
        return self._scaled(x, regime)

    def transform_one(
        self, sensors: Mapping[str, float], settings: Mapping[str, float] | None = None
    ) -> NDArray[np.float32]:
        """Scale one record's sensor dict -> ``float32 (F,)``; extra keys are ignored.

        >>> norm = Normalizer.fit([[0.0], [4.0]], np.zeros((2, 3)), ("a",))
        >>> norm.transform_one({"a": 2.0, "z": 7.0}).tolist()
        [0.5]
        """
        try:
            values = [float(sensors[name]) for name in self.sensors]
        except KeyError as exc:
            raise DataError(f"missing sensor {exc.args[0]!r}") from None
        if not math.isfinite(sum(values)):  # one sum: finite values rarely overflow it
            bad = [n for n, v in zip(self.sensors, values, strict=True) if not math.isfinite(v)]
            if bad:
                raise DataError(f"non-finite sensor {bad[0]!r}")
        regime = 0
        if self.n_regimes > 1:
            if settings is None:
                raise DataError(f"operating settings are required ({self.n_regimes} regimes)")
            names = self.setting_names or SETTINGS[: self.centroids.shape[1]]
            try:
                srow = [[float(settings[name]) for name in names]]
            except KeyError as exc:
                raise DataError(f"missing operating setting {exc.args[0]!r}") from None
            regime = int(self.regime(srow)[0])
        return self._scaled(np.array(values), regime)

    def _scaled(self, x: FloatArray, regime: int | NDArray[np.intp]) -> NDArray[np.float32]:
        """``x`` (one row, or rows with a regime each) scaled by its regime's ranges, clipped."""
        lo, span = self._ranges
        out: NDArray[np.float32] = ((x - lo[regime]) / span[regime]).clip(*CLIP).astype(np.float32)
        return out

    @cached_property
    def _ranges(self) -> tuple[FloatArray, FloatArray]:
        """Per regime, each sensor's low end and span (1 where the range is empty): what
        :meth:`transform` and :meth:`transform_one` scale by, made once."""
        return self.lo, np.where(self.hi > self.lo, self.hi - self.lo, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (lists of floats)."""
        doc: dict[str, Any] = {
            "sensors": list(self.sensors),
            "centroids": self.centroids.tolist(),
            "settings_scale": self.settings_scale.tolist(),
            "lo": self.lo.tolist(),
            "hi": self.hi.tolist(),
        }
        if self.setting_names:
            doc["setting_names"] = list(self.setting_names)
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        """Rebuild from :meth:`to_dict` output; raises ``DataError`` on inconsistent shapes."""
        try:
            names = tuple(str(n) for n in data["sensors"])
            c = np.asarray(data["centroids"], dtype=float)
            scale = np.asarray(data["settings_scale"], dtype=float)
            lo, hi = (np.asarray(data[k], dtype=float) for k in ("lo", "hi"))
            setting_names = tuple(str(n) for n in data.get("setting_names", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"invalid scaling description: {exc}") from None
        r, f = c.shape[0] if c.ndim == 2 else -1, len(names)
        if c.ndim != 2 or scale.shape != (c.shape[1],) or lo.shape != (r, f) or hi.shape != (r, f):
            raise DataError("invalid scaling description: inconsistent shapes")
        if not all(np.isfinite(a).all() for a in (c, scale, lo, hi)):
            raise DataError("invalid scaling description: non-finite values")
        if setting_names and len(setting_names) != c.shape[1]:
            raise DataError("invalid scaling description: settings names and centroids disagree")
        return cls(names, c, scale, lo, hi, setting_names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _nearest(s: FloatArray, centroids: FloatArray, scale: FloatArray) -> NDArray[np.intp]:
    if s.ndim != 2 or s.shape[1] != centroids.shape[1]:
        raise DataError(f"expected settings of shape (N, {centroids.shape[1]}), got {s.shape}")
    d = (((s[:, None, :] - centroids[None, :, :]) / scale) ** 2).sum(axis=2)
    return np.asarray(np.argmin(d, axis=1), dtype=np.intp)


def pad_front(x: NDArray[np.float32], window: int) -> NDArray[np.float32]:
    """Repeat the first row of ``x (T, F)`` until it has ``window`` rows (short histories).

    >>> pad_front(np.array([[1.0], [2.0]], dtype=np.float32), 4).ravel().tolist()
    [1.0, 1.0, 1.0, 2.0]
    """
    if len(x) == 0:
        raise DataError("cannot pad an empty history")
    if len(x) >= window:
        return x
    return np.concatenate([np.repeat(x[:1], window - len(x), axis=0), x])


def sliding_windows(x: NDArray[np.float32], window: int = WINDOW) -> NDArray[np.float32]:
    """All windows of one run ``x (T, F)`` -> ``(max(T - window + 1, 1), window, F)``.

    Runs shorter than ``window`` are front-padded into one window. The result is a read-only
    view when no padding is needed.

    >>> x = np.arange(5, dtype=np.float32)[:, None]
    >>> sliding_windows(x, 3)[:, :, 0].tolist()
    [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]
    >>> sliding_windows(x[:2], 3).shape
    (1, 3, 1)
    """
    x = pad_front(x, window)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (N, F, window)
    return np.asarray(view.transpose(0, 2, 1))


def last_window(x: NDArray[np.float32], window: int = WINDOW) -> NDArray[np.float32]:
    """The final window of one run ``x (T, F)`` -> ``(window, F)``, front-padded if short.

    >>> last_window(np.arange(4, dtype=np.float32)[:, None], 2).ravel().tolist()
    [2.0, 3.0]
    """
    return pad_front(x, window)[-window:]


def with_trend(x: NDArray[np.float32], alpha: float) -> NDArray[np.float32]:
    """Append the trend channels to one run ``x (T, F)`` -> ``(T, 2F)`` (``x`` when ``alpha == 0``).

    The trend is the exponentially weighted mean from the first row on: ``e[0] = x[0]``,
    ``e[t] = alpha * x[t] + (1 - alpha) * e[t - 1]`` (computed in float64).

    >>> with_trend(np.array([[0.0], [1.0], [1.0]], dtype=np.float32), 0.5).tolist()
    [[0.0, 0.0], [1.0, 0.5], [1.0, 0.75]]
    """
    if alpha == 0:
        return x
    if not 0 < alpha <= 1:
        raise DataError(f"trend smoothing factor must be in (0, 1], got {alpha}")
    e = np.empty(x.shape, dtype=np.float64)
    if len(x):
        e[0] = x[0]
    for t in range(1, len(x)):
        e[t] = alpha * x[t] + (1.0 - alpha) * e[t - 1]
    return np.concatenate([x, e.astype(np.float32)], axis=1)


@lru_cache(maxsize=16)
def trend_weights(window: int, alpha: float) -> tuple[FloatArray, FloatArray]:
    """``(M (window, window), c (window,))`` with ``trend = M @ rows + c * before`` for a window.

    ``before`` is the trend at the row preceding the window's first (that row itself when the
    window starts at the asset's first record); shared by all windows of one model.

    >>> m, c = trend_weights(3, 0.5)
    >>> (m @ np.array([1.0, 1.0, 1.0]) + c * 0.0).tolist()
    [0.5, 0.75, 0.875]
    """
    k = np.arange(window)
    lag = k[:, None] - k[None, :]
    m = np.where(lag >= 0, alpha * (1.0 - alpha) ** np.maximum(lag, 0), 0.0).astype(np.float64)
    c = ((1.0 - alpha) ** (k + 1.0)).astype(np.float64)
    m.setflags(write=False)
    c.setflags(write=False)
    return m, c


def with_age(x: NDArray[np.float32], scale: float, first: int = 0) -> NDArray[np.float32]:
    """Append the age channel to rows ``x (T, F)`` whose first row is ``first`` cycles into life.

    >>> with_age(np.zeros((3, 1), dtype=np.float32), 2.0, first=1)[:, 1].tolist()
    [0.5, 1.0, 1.5]
    """
    if scale == 0:
        return x
    age = (first + np.arange(len(x), dtype=np.float64)) / scale
    return np.concatenate([x, age.astype(np.float32)[:, None]], axis=1)


@dataclass(frozen=True)
class InputSpec:
    """How one asset's raw rows become the model's input rows.

    Per-regime scaling of the sensors, then their trend channels when ``trend > 0``, then the age
    channel when ``age_scale > 0``. Rows are an asset's life from its first cycle on.

    >>> norm = Normalizer.fit([[0.0], [10.0]], np.zeros((2, 3)), ("s2",))
    >>> spec = InputSpec(norm, window=2, trend=0.5, age_scale=10.0)
    >>> spec.names
    ('s2', 's2_trend', 'age')
    >>> spec.rows(np.array([[0.0], [10.0]]), np.zeros((2, 3))).tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.5, 0.10000000149011612]]
    """

    normalizer: Normalizer
    window: int = WINDOW
    trend: float = 0.0
    age_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 1 or not 0 <= self.trend <= 1 or self.age_scale < 0:
            raise DataError(
                f"bad inputs: window {self.window}, trend {self.trend}, age scale {self.age_scale}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Input feature names in order: sensors, ``<sensor>_trend`` and ``age`` when used."""
        sensors = self.normalizer.sensors
        trends = tuple(f"{s}_trend" for s in sensors) if self.trend else ()
        return sensors + trends + (("age",) if self.age_scale else ())

    def rows(self, sensors: ArrayLike, settings: ArrayLike) -> NDArray[np.float32]:
        """Model input rows ``(T, len(names))`` of one life's raw ``sensors`` and ``settings``."""
        scaled = self.normalizer.transform(sensors, settings)
        return with_age(with_trend(scaled, self.trend), self.age_scale)
