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
running segment; when the segment is complete, one compiled call
(:func:`models.detectors.pattern_kernels.pattern_close`) takes its means and runs the query
(distances to the reservoir, all sensors at once). The reservoir holds ``reservoir``
subsequences per sensor: the one that ended just before the current one starts (never
overlapping it) comes in after each query, in place of the one longest unused (not the nearest
neighbour of any query), so courses that keep recurring stay and one-off ones age out. Only the
first ``max_sensors`` sensors of an asset's first record are watched (a bounded cost and memory
on wide assets).

State: numpy arrays and a list of the running segment's values (any checkpoint codec encodes
them). A checkpoint that holds the per-sensor state as lists (written before the compiled close)
is taken over on first use.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from models.detectors.pattern_kernels import pattern_close
from models.state_codec import HasCaches

# the per-sensor lists and counters of a checkpoint written before the compiled close, in the
# order of the kernel's state rows and counters
_LEGACY_ROWS = ("_last", "_spread", "_score", "_lo", "_hi", "_sum", "_count")
_LEGACY_COUNTERS = ("_pos", "_segments", "_kept", "_queries")
_KEPT, _QUERIES = 2, 3  # counters read here


class PatternDetector(HasCaches):
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

    _kernel_row: NDArray[np.float64] | None = None
    CACHES = ("_kernel_row",)
    # None in a checkpoint written before the compiled close (its state is taken over)
    _values: list[float | None] | None = None

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
        self._values = []  # the running segment's records: a value per sensor (None: missing)
        self._ticks = 0  # records in the running segment
        # per sensor (the kernel's rows): last segment mean, usual spread within a subsequence,
        # smoothed discord score and its range's lower and upper end, the running segment's sum
        # and number of values
        self._state: NDArray[np.float64] = np.zeros((7, 0))
        # the last 2P segment means, written twice (column j and j + 2P), so that the window
        # ending at the newest segment is one slice
        self._ring: NDArray[np.float64] = np.zeros((0, 4 * points))
        self._past: NDArray[np.float32] = np.zeros((0, 0, points), dtype=np.float32)
        self._used: NDArray[np.float64] = np.zeros((0, 0))  # query that last used each entry
        # the ring's next column, segments closed, subsequences in the reservoir (the same for
        # every sensor), queries judged against a full reservoir
        self._counters: NDArray[np.int64] = np.zeros(4, dtype=np.int64)

    def kernel_params(self) -> NDArray[np.float64]:
        """The settings :data:`models.detectors.pattern_kernels.PATTERN_PARAMS` names, in its
        order, as the compiled close takes them (made once)."""
        if self._kernel_row is None:
            keep = self.decay ** (self.length // self.points)
            row = (self.margin, self.smooth, keep, self.warm_up, self.reservoir)
            self._kernel_row = np.array(row, dtype=float)
        return self._kernel_row

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Add ``x`` to the running segment; when it is complete, judge the subsequence that
        ends with it and learn it.

        Returns ``{"pattern": (excess, sensors)}`` when a watched sensor's course is novel
        (excess > 1), else ``{}``. Missing and NaN values leave the segment be.
        """
        if not self._names:
            self._start(x)
        values = self._values
        if values is None:
            values = self._take_over_lists()
        values.extend(map(x.get, self._names))
        self._ticks += 1
        if self._ticks < self.length // self.points:
            return {}
        self._values, self._ticks = [], 0
        peak, *top = pattern_close(
            np.array(values, dtype=np.float64), self._state, self._ring, self._past,
            self._used, self._counters, score, self.kernel_params(),
        )  # fmt: skip
        if top[0] < 0:
            return {}
        return {"pattern": (peak, tuple(self._names[i] for i in top if i >= 0))}

    @property
    def queries(self) -> int:
        """Queries judged against a full reservoir."""
        return int(self._counters[_QUERIES])

    @property
    def kept(self) -> int:
        """Past subsequences in the reservoir (the same for every sensor)."""
        return int(self._counters[_KEPT])

    def _start(self, x: Mapping[str, float]) -> None:
        names = tuple(x)[: self.max_sensors]
        n, k, p = len(names), self.reservoir, self.points
        self._names = names
        self._values = []
        self._state = np.zeros((7, n))
        self._ring = np.zeros((n, 4 * p))
        self._past = np.zeros((n, k, p), dtype=np.float32)
        self._used = np.zeros((n, k))

    def _take_over_lists(self) -> list[float | None]:
        """Take over a checkpoint's per-sensor lists and counters (written before the compiled
        close) as the kernel's arrays."""
        legacy = self.__dict__
        rows = [legacy.pop(name) for name in _LEGACY_ROWS]
        self._state = np.array(rows, dtype=np.float64).reshape(len(rows), len(self._names))
        counters = [legacy.pop(name) for name in _LEGACY_COUNTERS]
        self._counters = np.array(counters, dtype=np.int64)
        self._values = []
        return self._values
