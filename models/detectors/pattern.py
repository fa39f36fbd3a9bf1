"""A shape never seen before: the recent subsequence of a sensor against a reservoir of its past.

Many faults change a signal's course, not its extremes: a periodic load that loses its rhythm,
a burst pattern at the wrong moment, a stretch that runs at a level and wiggle the sensor has
shown before, but never together. No single value leaves its range, so the spike and shift
detectors stay quiet. This detector is the matrix-profile (discord) idea made online and
bounded: each sensor's recent subsequence, in units of the sensor's usual spread within a
subsequence, is compared with a reservoir of the sensor's past subsequences; the distance to its
nearest neighbour (smoothed over the last few queries) is the discord score, judged against the
slowly forgetting range of the sensor's own past scores (as :mod:`models.detectors.novelty`
does). A course with no near neighbour among those the sensor has shown scores high.

Subsequences keep their level: z-normalised ones (shape only, as the matrix profile has it) were
measured on the NAB corpus and separate anomalies from normal variety far worse (README).

To be cheap, a subsequence of ``length`` records is held as ``points`` means of ``length //
points`` records each (piecewise aggregate approximation). A record only adds its values to the
running segment's sums; a query (distances to the reservoir, all sensors at once, numpy) runs
once per segment. The reservoir holds ``reservoir`` subsequences per sensor: the one that ended
just before the current one starts (never overlapping it) comes in after each query, in place of
the one longest unused (not the nearest neighbour of any query), so courses that keep recurring
stay and one-off ones age out. Only the first ``max_sensors`` sensors of an asset's first record
are watched (a bounded cost and memory on wide assets).

State: plain lists and numpy arrays (any checkpoint codec encodes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isnan, sqrt

import numpy as np
from numpy.typing import NDArray


class PatternDetector:
    """Subsequence discord per sensor (River-style ``score_learn_one``).

    Parameters
    ----------
    margin
        How far (in widths of its range) the discord score must leave its range to count.
    decay
        Per-record contraction of the score range towards its centre.
    length
        Records a subsequence spans.
    points
        Segment means a subsequence is held as (``length`` is a multiple of it).
    reservoir
        Past subsequences kept per sensor.
    max_sensors
        Sensors watched: the first ones of the asset's first record.
    warm_up
        Queries the score range learns (after the reservoir is full) before it is scored.
    smooth
        Weight of the newest query in the smoothed discord score that is judged.

    Examples
    --------
    A square wave of period 16 records, then a stretch of its first half only:

    >>> d = PatternDetector(length=16, points=8, reservoir=16, warm_up=20)
    >>> wave = lambda i: 1.0 if i % 16 < 8 else 0.0
    >>> [d.score_learn_one({"s": wave(i)}) for i in range(2000)][-1]
    {}
    >>> found = [d.score_learn_one({"s": 1.0 + 0.01 * (i % 2)}) for i in range(2000, 2040)]
    >>> [f["pattern"][1] for f in found if f][:1]
    [('s',)]
    """

    def __init__(
        self,
        *,
        margin: float = 0.5,
        decay: float = 0.9999,
        length: int = 32,
        points: int = 8,
        reservoir: int = 32,
        max_sensors: int = 4,
        warm_up: int = 50,
        smooth: float = 0.3,
    ) -> None:
        if points < 2 or length < points or length % points:
            raise ValueError(f"length {length} must be a multiple of points {points} (>= 2)")
        self.margin = margin
        self.decay = decay
        self.length = length
        self.points = points
        self.reservoir = reservoir
        self.max_sensors = max_sensors
        self.warm_up = warm_up
        self.smooth = smooth
        self._names: tuple[str, ...] = ()
        self._sum: list[float] = []  # the running segment's sum per sensor ...
        self._count: list[float] = []  # ... and its number of values
        self._ticks = 0  # records in the running segment
        # the last 2P segment means, written twice (column j and j + 2P), so that the window
        # ending at the newest segment is one slice; pos: the next column
        self._ring: NDArray[np.float64] = np.zeros((0, 4 * points))
        self._pos = 0
        self._segments = 0  # segments closed
        self._kept = 0  # subsequences in the reservoir (the same for every sensor)
        self._past: NDArray[np.float32] = np.zeros((0, 0, points), dtype=np.float32)
        self._used: NDArray[np.float64] = np.zeros((0, 0))  # query that last used each entry
        # per sensor: last segment mean, usual spread within a subsequence, smoothed discord
        # score and its range's lower and upper end
        self._last: list[float] = []
        self._spread: list[float] = []
        self._score: list[float] = []
        self._lo: list[float] = []
        self._hi: list[float] = []
        self._queries = 0  # queries judged against a full reservoir

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Add ``x`` to the running segment; when it is complete, judge the subsequence that
        ends with it and learn it.

        Returns ``{"pattern": (excess, sensors)}`` when a watched sensor's course is novel
        (excess > 1), else ``{}``.
        """
        if not self._names:
            self._start(x)
        sums, counts = self._sum, self._count
        for i, name in enumerate(self._names):
            v = x.get(name)
            if v is not None and not isnan(v):  # missing and NaN values leave the segment be
                sums[i] += v
                counts[i] += 1.0
        self._ticks += 1
        if self._ticks < self.length // self.points:
            return {}
        return self._close(score)

    def _start(self, x: Mapping[str, float]) -> None:
        names = tuple(x)[: self.max_sensors]
        n, k, p = len(names), self.reservoir, self.points
        self._names = names
        self._sum, self._count = [0.0] * n, [0.0] * n
        self._last, self._spread, self._score = [0.0] * n, [0.0] * n, [0.0] * n
        self._lo, self._hi = [0.0] * n, [0.0] * n
        self._ring = np.zeros((n, 4 * p))
        self._past = np.zeros((n, k, p), dtype=np.float32)
        self._used = np.zeros((n, k))

    def _close(self, score: bool) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Close the segment: query the reservoir with the newest subsequence, then learn."""
        p, n = self.points, len(self._names)
        # a sensor without values in the segment holds its last mean
        last = [
            s / c if c > 0.0 else m
            for s, c, m in zip(self._sum, self._count, self._last, strict=True)
        ]
        self._last = last
        self._sum, self._count, self._ticks = [0.0] * n, [0.0] * n, 0
        pos = self._pos
        self._ring[:, pos] = last
        self._ring[:, pos + 2 * p] = last
        self._pos = (pos + 1) % (2 * p)
        self._segments += 1
        if self._segments < p:
            return {}
        window = self._ring[:, pos + 1 : pos + 1 + 2 * p]  # oldest segment first
        query = window[:, p:]
        self._learn_spread(query.std(axis=1).tolist())
        scale = 1.0 / np.array([max(s, 1e-12) for s in self._spread])
        found: dict[str, tuple[float, tuple[str, ...]]] = {}
        if self._kept:
            found = self._query(query * scale[:, None], score)
        if self._segments >= 2 * p:
            self._keep(window[:, :p] * scale[:, None])
        return found

    def _learn_spread(self, spread: list[float]) -> None:
        """The usual spread within a subsequence: the unit subsequences are compared in."""
        old = self._spread
        self._spread = [
            s if o == 0.0 else o * 0.98 + s * 0.02 for o, s in zip(old, spread, strict=True)
        ]

    def _query(
        self, query: NDArray[np.float64], score: bool
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Nearest-neighbour distance of each sensor's subsequence; judge it, learn its range."""
        diff = self._past[:, : self._kept, :] - query[:, None, :]
        d2 = (diff * diff).mean(axis=2)
        nearest = d2.argmin(axis=1)
        rows = np.arange(len(self._names))
        self._used[rows, nearest] = self._segments
        if self._kept < self.reservoir:
            return {}  # a reservoir still filling says little about what is new
        dist = [sqrt(d) for d in d2[rows, nearest].tolist()]
        if self._queries:
            a = self.smooth
            dist = [s + a * (d - s) for s, d in zip(self._score, dist, strict=True)]
        self._score = dist
        lo, hi = self._lo, self._hi
        found: dict[str, tuple[float, tuple[str, ...]]] = {}
        if self._queries == 0:
            lo, hi = list(dist), list(dist)
        elif score and self._queries >= self.warm_up:
            found = self._judge(dist)
        self._queries += 1
        keep = self.decay ** (self.length // self.points)
        self._lo, self._hi = [], []
        for was_lo, was_hi, d in zip(lo, hi, dist, strict=True):
            low, high = min(was_lo, d), max(was_hi, d)
            centre = 0.5 * (low + high)
            self._lo.append(centre + (low - centre) * keep)
            self._hi.append(centre + (high - centre) * keep)
        return found

    def _judge(self, dist: list[float]) -> dict[str, tuple[float, tuple[str, ...]]]:
        """``{"pattern": (excess, sensors)}`` when a score leaves its range by the margin."""
        excess = [
            (d - hi) / (self.margin * (hi - lo) + 1e-12)
            for d, lo, hi in zip(dist, self._lo, self._hi, strict=True)
        ]
        hits = sorted((i for i, e in enumerate(excess) if e > 1.0), key=lambda i: -excess[i])
        if not hits:
            return {}
        return {"pattern": (excess[hits[0]], tuple(self._names[i] for i in hits[:3]))}

    def _keep(self, sub: NDArray[np.float64]) -> None:
        """Take a past subsequence into the reservoir, in place of the longest unused one."""
        rows = np.arange(len(self._names))
        if self._kept < self.reservoir:
            slot: NDArray[np.intp] | int = self._kept
            self._kept += 1
        else:
            slot = self._used.argmin(axis=1)
        self._past[rows, slot] = sub
        self._used[rows, slot] = self._segments
