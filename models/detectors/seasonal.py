"""A daily cycle broken: each sensor against its own value at the same time of day.

Many streams follow the clock (load by hour, traffic by day): a value normal at 14:00 may be
abnormal at 03:00, and a day whose cycle is missing shows no spike and no shift. Each sensor
keeps a daily profile (``bins`` phases of the UTC day, each an exponentially weighted mean of
the phase's mean value on past days), the smoothed residual of each phase's mean against that
profile, and the slowly forgetting range of that residual (as :mod:`models.detectors.novelty`
does). A record only adds its values to its phase's sum; the profile, residual and range
move once per phase (an hour by default), so the detector costs little per record.

The detector speaks only where the cycle is confidently present: after ``min_days`` days of
records, and only while the profile explains at least ``min_explained`` of the sensor's
variance (1 - var(residual) / var(value), both exponentially weighted). Elsewhere it is silent,
so streams without a daily cycle behave as without this detector.

State: a dict of sensor -> row and numpy arrays (plain data for any checkpoint codec).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

_DAY = 86400.0
# per-sensor state columns: count of phases, mean and variance of the phase means, variance of
# the residual, smoothed residual, its range's lower and upper end
_N, _MEAN, _VAR, _EVAR, _SMOOTH, _LO, _HI = range(7)


class SeasonalDetector:
    """Novelty of the residual against a daily profile, where a daily cycle is present.

    Parameters
    ----------
    margin
        How far (in widths of its range) the smoothed residual must leave its range to count.
    decay
        Per-phase contraction of the residual range towards its centre.
    bins
        Phases of the day the profile holds.
    day_weight
        Weight of the newest day in a phase's profile value.
    smooth_alpha
        Weight of the newest phase in the smoothed residual.
    slow_alpha
        Weight of the newest phase in the variances that judge the cycle's presence.
    min_explained
        Share of a sensor's variance the profile must explain for the sensor to be scored.
    min_days
        Days of records before anything is scored (the residual range learns from day one on).
    samples
        Records a phase's mean takes at least; a denser stream contributes every n-th record
        (n from the gap between a phase's first two records, at most the last phase's count),
        so a dense stream costs little more than a sparse one.

    Examples
    --------
    >>> import math
    >>> d = SeasonalDetector()
    >>> day = lambda t: 10.0 + 5.0 * math.sin(2 * math.pi * t / 86400)
    >>> [d.score_learn_one({"s": day(t)}, t) for t in range(0, 5 * 86400, 600)][-1]
    {}
    >>> found = [d.score_learn_one({"s": 10.0}, 5 * 86400 + t) for t in range(0, 43200, 600)]
    >>> [f["seasonal"][1] for f in found if f][:1]
    [('s',)]
    """

    def __init__(
        self,
        *,
        margin: float = 1.0,
        decay: float = 0.999,
        bins: int = 24,
        day_weight: float = 0.3,
        smooth_alpha: float = 0.3,
        slow_alpha: float = 0.03,
        min_explained: float = 0.5,
        min_days: float = 3.0,
        samples: int = 8,
    ) -> None:
        self.margin = margin
        self.decay = decay
        self.bins = bins
        self.day_weight = day_weight
        self.smooth_alpha = smooth_alpha
        self.slow_alpha = slow_alpha
        self.min_explained = min_explained
        self.min_days = min_days
        self.samples = samples
        self._names: tuple[str, ...] = ()
        self._state: NDArray[np.float64] = np.zeros((0, 7))
        self._sum: NDArray[np.float64] = np.zeros(0)  # the running phase's sum of values ...
        self._count: NDArray[np.float64] = np.zeros(0)  # ... their number, per sensor, ...
        self._full = 0.0  # ... and the records in it with every sensor, in row order
        self._ticks = 0  # records in the running phase ...
        self._counted = 0  # ... and in the last one
        self._stride = 1  # take every stride-th record of a phase (about ``samples`` a phase)
        self._last = np.nan  # time of the last record
        # phase means, float32 (small checkpoints); NaN: the phase not seen yet
        self._profile: NDArray[np.float32] = np.zeros((0, bins), dtype=np.float32)
        self._first = np.nan  # time of the first record
        self._phase = -1.0  # the running phase: its index since the epoch

    def score_learn_one(
        self, x: Mapping[str, float], now: float, score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Add ``x`` to its phase; when a new phase begins, judge the one that ended.

        Returns ``{"seasonal": (excess, sensors)}`` when the ended phase broke the cycle
        (excess > 1), else ``{}``.
        """
        phase = float(now * self.bins // _DAY)
        found: dict[str, tuple[float, tuple[str, ...]]] = {}
        if phase != self._phase:
            if self._phase >= 0.0:
                found = self._close(score and now - self._first >= self.min_days * _DAY)
            else:
                self._first = now
            self._phase = phase
            self._counted, self._ticks = self._ticks, 0
        elif self._ticks == 1:  # the phase's second record: the stream's density
            per_phase = _DAY / self.bins / max(now - self._last, 1.0)
            if self._counted:  # never more than the last phase had (bursts)
                per_phase = min(per_phase, self._counted)
            self._stride = max(1, int(per_phase) // self.samples)
        self._last = now
        self._ticks += 1
        if (self._ticks - 1) % self._stride:
            return found  # a dense stream: a phase's mean from every stride-th record
        v = np.fromiter(x.values(), float, len(x))
        if tuple(x) == self._names:  # the usual record: every sensor, in row order
            self._sum += v
            self._full += 1.0
        else:
            self._add(x)
            rows = [self._names.index(k) for k in x]
            self._sum[rows] += v
            self._count[rows] += 1.0
        return found

    def _close(self, score: bool) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Judge and learn the phase that ended (its sensors that had values)."""
        st, count = self._state, self._count + self._full
        v = self._sum / np.maximum(count, 1.0)
        self._sum, self._count, self._full = np.zeros_like(v), np.zeros_like(v), 0.0
        if not (count > 0.0).all():
            return {}  # a sensor without values in this phase: the phase is skipped (rare)
        col = int(self._phase % self.bins)
        prof = self._profile[:, col].astype(float)
        seen = ~np.isnan(prof)
        resid = np.where(seen, v - prof, 0.0)
        smooth = st[:, _SMOOTH] + self.smooth_alpha * (resid - st[:, _SMOOTH])
        found = self._judge(smooth) if score else {}
        self._learn(v, resid, smooth, seen)
        self._profile[:, col] = np.where(seen, prof + self.day_weight * (v - prof), v)
        return found

    def _judge(self, smooth: NDArray[np.float64]) -> dict[str, tuple[float, tuple[str, ...]]]:
        st = self._state
        explained = 1.0 - st[:, _EVAR] / np.maximum(st[:, _VAR], 1e-12)
        lo, hi = st[:, _LO], st[:, _HI]
        excess = np.maximum(smooth - hi, lo - smooth) / (self.margin * (hi - lo) + 1e-12)
        excess[(explained < self.min_explained) | (st[:, _VAR] <= 0.0)] = 0.0
        hits = np.flatnonzero(excess > 1.0)
        if not hits.size:
            return {}
        order = hits[np.argsort(-excess[hits], kind="stable")]
        return {"seasonal": (float(excess[order[0]]), tuple(self._names[i] for i in order[:3]))}

    def _learn(
        self,
        v: NDArray[np.float64],
        resid: NDArray[np.float64],
        smooth: NDArray[np.float64],
        seen: NDArray[np.bool_],
    ) -> None:
        """Take a phase's means in: value and residual variances, the residual's range."""
        st, a = self._state, self.slow_alpha
        st[:, _N] += 1.0
        first = st[:, _N] == 1.0
        d = v - st[:, _MEAN]
        st[:, _MEAN] = np.where(first, v, st[:, _MEAN] + a * d)
        st[:, _VAR] += a * (d * d - st[:, _VAR]) * ~first
        st[:, _EVAR] += a * (resid * resid - st[:, _EVAR]) * seen
        st[:, _SMOOTH] = smooth
        if st[0, _N] > self.bins:  # the profile holds a day: its residual range learns
            lo = np.minimum(st[:, _LO], smooth)
            hi = np.maximum(st[:, _HI], smooth)
            centre = 0.5 * (lo + hi)
            st[:, _LO] = centre + (lo - centre) * self.decay
            st[:, _HI] = centre + (hi - centre) * self.decay

    def _add(self, x: Mapping[str, float]) -> None:
        new = [k for k in x if k not in self._names]
        if new:
            self._names += tuple(new)
            self._state = np.vstack((self._state, np.zeros((len(new), 7))))
            self._sum = np.concatenate((self._sum, np.zeros(len(new))))
            self._count = np.concatenate((self._count, np.zeros(len(new))))
            unseen = np.full((len(new), self.bins), np.nan, dtype=np.float32)
            self._profile = np.vstack((self._profile, unseen))
