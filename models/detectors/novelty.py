"""Novelty of a sensor's level, forecast residual and short-term spread: spikes, shifts, variance.

Each sensor keeps a one-step forecast (an exponentially weighted level), the spread of its
recent forecast residuals, and a slowly forgetting range ``[lo, hi]`` of three features:

* ``spike``: the forecast residual ``x - forecast`` (a sudden jump away from the short-horizon
  forecast);
* ``shift``: the value itself (a level moving outside everything the asset has shown lately);
* ``variance``: the recent residual standard deviation (only its upper side: noise growing).

A feature is novel when it leaves its range by more than ``margin`` times the range's width.
The range then takes the new value in at once, so a change alarms once, not for as long as it
lasts; ranges contract towards their centre by ``decay`` per record so that, after a long quiet
time, the normal band tightens again. Margins are relative to each sensor's own range: the
detector needs no scale and no per-series setting.

State is one numpy array (a row of nine numbers per sensor) and a dict of sensor -> row (plain
data: it checkpoints with any codec); every update is elementwise over the sensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from models.detectors.kernels import NOVELTY_PARAMS, novelty_run
from models.state_codec import HasCaches

KINDS = ("spike", "shift", "variance")
# per-sensor state columns: count, level forecast, residual variance, then the lower ends of the
# value, residual and spread ranges, then their upper ends
_N, _LEVEL, _VAR = 0, 1, 2
_LO, _HI = slice(3, 6), slice(6, 9)


class NoveltyDetector(HasCaches):
    """Spike, shift and variance novelty per sensor (River-style ``learn_one``/``score_one``).

    Parameters
    ----------
    spike_margin, shift_margin, variance_margin
        How far (in widths of the feature's range) a feature must leave its range to count.
    decay
        Per-record contraction of every range towards its centre (1: never forget).
    forecast_alpha
        Weight of the newest value in the one-step level forecast.
    spread_alpha
        Weight of the newest squared residual in the short-term spread.
    min_count
        Records of a sensor before it is scored.

    Examples
    --------
    >>> d = NoveltyDetector(min_count=5)
    >>> for i in range(100):
    ...     d.learn_one({"s1": 10.0 + (i % 5) * 0.1})
    >>> d.score_one({"s1": 10.2})
    {}
    >>> found = d.score_one({"s1": 25.0})
    >>> sorted(found), found["shift"][1]
    (['shift', 'spike'], ('s1',))
    """

    def __init__(
        self,
        *,
        spike_margin: float = 0.4,
        shift_margin: float = 0.05,
        variance_margin: float = 0.1,
        decay: float = 0.9999,
        forecast_alpha: float = 0.5,
        spread_alpha: float = 0.1,
        min_count: int = 30,
        shift_settle: int = 700,
        settle_boost: float = 2.0,
    ) -> None:
        self.spike_margin = spike_margin
        self.shift_margin = shift_margin
        self.variance_margin = variance_margin
        self.decay = decay
        self.forecast_alpha = forecast_alpha
        self.spread_alpha = spread_alpha
        self.min_count = min_count
        self.shift_settle = shift_settle
        self.settle_boost = settle_boost
        self._index: dict[str, int] = {}  # sensor -> row of the state
        self._names: tuple[str, ...] = ()  # the sensors in row order
        self._state: NDArray[np.float64] = np.zeros((0, 9))
        self._unset = False  # some rows wait for their sensor's first value

    def _rows(self, x: Mapping[str, float]) -> tuple[list[int], NDArray[np.float64]]:
        rows = [self._index.get(k, -1) for k in x]
        return rows, np.fromiter(x.values(), float, len(x))

    def _view(self, rows: list[int]) -> NDArray[np.float64]:
        """The state rows of ``rows``: the state itself when they are all sensors in order."""
        if len(rows) == len(self._names) and rows == list(range(len(rows))):
            return self._state
        return self._state[rows]

    def score_one(self, x: Mapping[str, float]) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Novel kinds of ``x``: kind -> (largest excess, its sensors by excess), excess > 1.

        The excess is how far the feature left its range, divided by the kind's margin times
        the range width: above 1 is novel. Learns nothing.
        """
        if tuple(x) == self._names:  # the usual record: every sensor, in row order
            rows, v = list(range(len(self._names))), np.fromiter(x.values(), float, len(x))
        else:
            rows, v = self._rows(x)
        names = list(x)
        if min(rows, default=-1) < 0:  # sensors never seen are not scored
            keep = [i for i, r in enumerate(rows) if r >= 0]
            rows, v, names = [rows[i] for i in keep], v[keep], [names[i] for i in keep]
        if not rows:
            return {}
        w = self._view(rows).T.copy()
        return self._found(w, _features(w, v), names)

    def _found(
        self, w: NDArray[np.float64], f: NDArray[np.float64], names: Sequence[str]
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Novel kinds among the features ``f`` of the state rows (sensors ``names``), both
        transposed: a row per state column or feature, a column per sensor (contiguous rows:
        numpy's operations on them cost a fraction of those on a strided block)."""
        count = w[_N]
        young = count < self.min_count
        if np.count_nonzero(young) == len(young):  # young.all(), cheaper
            return {}
        lo, hi = w[_LO], w[_HI]
        outside = np.maximum(f - hi, lo - f)
        outside[2] = f[2] - hi[2]  # spread: only growing noise counts
        width = hi - lo + 1e-4 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-9
        excess = outside / (width * self._margins())
        excess[:, young] = 0.0
        settle = self.shift_settle
        # an unsettled range needs a larger shift (a settled one divides by 1: skipped)
        if settle > self.min_count and np.count_nonzero(count < settle):
            unsettled = (settle - count) / (settle - self.min_count)
            unsettled = np.minimum(np.maximum(unsettled, 0.0), 1.0)  # np.clip, cheaper
            excess[0] /= 1.0 + self.settle_boost * unsettled
        if not np.count_nonzero(excess > 1.0):
            return {}
        out: dict[str, tuple[float, tuple[str, ...]]] = {}
        for col, kind in ((1, "spike"), (0, "shift"), (2, "variance")):
            row = excess[col]
            hits = np.flatnonzero(row > 1.0)
            if hits.size:
                order = hits[np.argsort(-row[hits], kind="stable")]
                out[kind] = (float(row[order[0]]), tuple(names[i] for i in order[:3]))
        return out

    # the margins as an array, made once (a cache: not part of the state, never checkpointed)
    _margin_row: NDArray[np.float64] | None = None
    _kernel_row: NDArray[np.float64] | None = None
    CACHES = ("_margin_row", "_kernel_row")

    def kernel_params(self) -> NDArray[np.float64]:
        """The settings :data:`models.detectors.kernels.NOVELTY_PARAMS` names, in its order, as
        the compiled run takes them (made once)."""
        if self._kernel_row is None:
            self._kernel_row = np.array([float(getattr(self, k)) for k in NOVELTY_PARAMS])
        return self._kernel_row

    def run_sensors(self) -> tuple[str, ...]:
        """The sensors a compiled run takes, in row order: the usual record's keys. Empty while
        no run can be compiled (no sensor yet, or some waiting for their first value)."""
        return () if self._unset else self._names

    def learn_run(
        self, values: NDArray[np.float64], first_scored: int
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
        """:meth:`score_learn_one` of each row of ``values`` (records x :meth:`run_sensors`,
        record ``i`` scored when ``i >= first_scored``) in one compiled call
        (:func:`models.detectors.kernels.novelty_run`): each record's largest excess per kind
        (:data:`KINDS`), the positions in :meth:`run_sensors` of each finding's sensors (-1
        filling), and whether it has any finding."""
        return novelty_run(self._state, values, first_scored, self.kernel_params())

    def snapshot(self) -> NDArray[np.float64]:
        """A copy of the learned state, for :meth:`restore`."""
        return self._state.copy()

    def restore(self, snapshot: NDArray[np.float64]) -> None:
        """Go back to the state of :meth:`snapshot` (the same sensors)."""
        self._state[...] = snapshot

    def _margins(self) -> NDArray[np.float64]:
        """Margins in the features' order, as a column: value (shift), residual (spike),
        spread."""
        if self._margin_row is None:
            margins = (self.shift_margin, self.spike_margin, self.variance_margin)
            self._margin_row = np.array(margins)[:, None]
        return self._margin_row

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """:meth:`score_one` (when ``score``) then :meth:`learn_one`, the features computed once.

        The usual record (every sensor, in row order, all started) takes a fast path: the full
        excess is computed only when some feature lies outside its range at all.
        """
        if self._unset or tuple(x) != self._names:
            found = self.score_one(x) if score else {}
            self.learn_one(x)
            return found
        st = self._state
        w = st.T.copy()  # transposed: contiguous rows (see _found)
        f = _features(w, np.fromiter(x.values(), float, len(x)))
        found = {}
        # only a feature outside its range can be novel: most records skip the full excess
        if score and (np.count_nonzero(f > w[_HI]) or np.count_nonzero(f[:2] < w[3:5])):
            found = self._found(w, f, self._names)
        self._learn_rows(w, f)
        st[...] = w.T
        return found

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Take ``x`` into every sensor's forecast, spread and ranges."""
        if tuple(x) == self._names:  # the usual record: every sensor, in row order
            rows, v = list(range(len(self._names))), np.fromiter(x.values(), float, len(x))
        else:
            rows, v = self._rows(x)
        if min(rows, default=0) < 0:  # new sensors: a row each
            new = [k for k, r in zip(x, rows, strict=True) if r < 0]
            for k in new:
                self._index[k] = len(self._index)
            self._names += tuple(new)
            self._state = np.vstack((self._state, np.zeros((len(new), 9))))
            rows, self._unset = [self._index[k] for k in x], True
        st = self._view(rows)
        first = st[:, _N] == 0.0 if self._unset else None
        if first is not None and first.any():  # a first value: level and value range start there
            init = st[first]
            init[:, _N], init[:, _LEVEL], init[:, 3], init[:, 6] = 1.0, v[first], v[first], v[first]
            st[first] = init
            if first.all():
                self._state[rows] = st
                self._unset = bool((self._state[:, _N] == 0.0).any())
                return
            keep = ~first
            self._state[rows] = st
            rows, v = [r for r, k in zip(rows, keep, strict=True) if k], v[keep]
            st = self._state[rows]
        self._unset = bool((self._state[:, _N] == 0.0).any()) if self._unset else False
        w = st.T.copy()
        self._learn_rows(w, _features(w, v))
        st[...] = w.T
        if st is not self._state:
            self._state[rows] = st

    def _learn_rows(self, w: NDArray[np.float64], f: NDArray[np.float64]) -> None:
        """Update the state rows in place with their features ``f``, both transposed (``w``: a
        row per state column, see :meth:`_found`)."""
        a, b, keep_share = self.forecast_alpha, self.spread_alpha, self.decay
        r = f[1]
        w[_N] += 1.0
        w[_VAR] += b * (r * r - w[_VAR])
        w[_LEVEL] += a * r
        lo = np.minimum(w[_LO], f)
        hi = np.maximum(w[_HI], f)
        centre = 0.5 * (lo + hi)
        w[_LO] = centre + (lo - centre) * keep_share
        w[_HI] = centre + (hi - centre) * keep_share

    def forget(self, sensors: list[str]) -> None:
        """Drop what was learned about ``sensors`` (they start again at their next value)."""
        for name in sensors:
            row = self._index.get(name)
            if row is not None:
                self._state[row] = 0.0
                self._unset = True


def _features(w: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per sensor (a column each): the value, its forecast residual and the recent residual
    spread, from the transposed state rows ``w``."""
    f = np.empty((3, len(v)))
    f[0], f[1], f[2] = v, v - w[_LEVEL], np.sqrt(w[_VAR])
    return f
