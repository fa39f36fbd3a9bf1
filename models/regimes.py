"""Operating regimes: an asset's settings vectors grouped by leader clustering.

A machine that switches between load points shows other sensor values at each; its running
statistics are kept per regime (:class:`models.regime_scaler.RegimeScaler`), so no load point
is scored against another's baseline. Settings near a known regime's centre (within a relative
tolerance per setting) belong to it; others open a new regime, up to a bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from models.detectors.scaler_kernels import regime_nearest, regimes_nearest
from models.run_values import real_values
from models.state_codec import HasCaches

Features = Mapping[str, float]
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
