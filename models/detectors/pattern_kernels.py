"""Compiled kernels of the pattern detector (:mod:`models.detectors.pattern`): a segment's
close, its subsequence judged against the sensor's past ones and learned, under the rules of
:mod:`models.detectors.kernels` (results identical to numpy's, sums pairwise as numpy's).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from models.detectors.kernels import TOP, compiled, pairwise_sum, rank

# pattern state rows (models.detectors.pattern): last segment mean, usual spread within a
# subsequence, smoothed discord score, lower and upper end of its range, the running segment's
# sum and number of values
_P_LAST, _P_SPREAD, _P_SCORE, _P_LO, _P_HI, _P_SUM, _P_COUNT = range(7)
# pattern counters: the ring's next column, segments closed, subsequences kept (the same for
# every sensor), queries judged against a full reservoir
_P_POS, _P_SEGMENTS, _P_KEPT, _P_QUERIES = range(4)
# pattern settings as one array, in this order (keep: decay ** records per segment)
PATTERN_PARAMS = ("margin", "smooth", "keep", "warm_up", "reservoir")


@compiled()
def _argmin(row: NDArray[np.float64]) -> int:
    """``np.argmin`` of a row: the first minimum, or the first NaN."""
    at, best = 0, row[0]
    for e in range(1, row.shape[0]):
        if math.isnan(best):
            break
        if not row[e] >= best:
            at, best = e, row[e]
    return at


@compiled()
def _pattern_segment(values: NDArray[np.float64], state: NDArray[np.float64]) -> None:
    """The running segment's values (record after record, a value per sensor, NaN where
    missing) into its sums, then each sensor's mean into its last mean (kept where the sensor
    had no value); the sums start afresh."""
    sensors = state.shape[1]
    for j in range(values.shape[0]):
        v = values[j]
        if not math.isnan(v):
            state[_P_SUM, j % sensors] += v
            state[_P_COUNT, j % sensors] += 1.0
    for i in range(sensors):
        if state[_P_COUNT, i] > 0.0:
            state[_P_LAST, i] = state[_P_SUM, i] / state[_P_COUNT, i]
        state[_P_SUM, i], state[_P_COUNT, i] = 0.0, 0.0


@compiled()
def _pattern_spread(query: NDArray[np.float64], state: NDArray[np.float64], i: int) -> float:
    """Sensor ``i``'s usual spread learns the spread (``np.std``) of its newest subsequence;
    returns the scale its subsequences are compared in (1 / the spread, at least 1e-12)."""
    p = query.shape[0]
    mean = pairwise_sum(query) / p
    squares = np.empty(p)
    for j in range(p):
        d = query[j] - mean
        squares[j] = d * d
    spread = math.sqrt(pairwise_sum(squares) / p)
    old = state[_P_SPREAD, i]
    spread = spread if old == 0.0 else old * 0.98 + spread * 0.02
    state[_P_SPREAD, i] = spread
    return 1.0 / (1e-12 if spread < 1e-12 else spread)  # Python's max(spread, 1e-12)


@compiled()
def _pattern_nearest(
    past: NDArray[np.float32], query: NDArray[np.float64], kept: int, squares: NDArray[np.float64]
) -> tuple[int, float]:
    """The nearest of the first ``kept`` subsequences of ``past`` (kept x points) to ``query``
    and its mean squared distance (as ``np.argmin`` of numpy's means picks)."""
    p = query.shape[0]
    d2 = np.empty(kept)
    for e in range(kept):
        for j in range(p):
            d = np.float64(past[e, j]) - query[j]
            squares[j] = d * d
        d2[e] = pairwise_sum(squares) / p
    at = _argmin(d2)
    return at, d2[at]


@compiled()
def _pattern_judge(
    dist: NDArray[np.float64],
    state: NDArray[np.float64],
    queries: int,
    score: bool,
    params: NDArray[np.float64],
    peak: NDArray[np.float64],
    top: NDArray[np.int64],
) -> None:
    """The newest nearest-neighbour distances into the smoothed discord scores, judged (into
    ``peak`` and ``top``) when ``score`` and past the warm-up, then into their ranges."""
    margin, smooth, keep, warm_up = params[0], params[1], params[2], params[3]
    sensors = dist.shape[0]
    for i in range(sensors):
        d = dist[i]
        if queries:
            s = state[_P_SCORE, i]
            d = s + smooth * (d - s)
        state[_P_SCORE, i] = d
        if queries == 0:
            state[_P_LO, i], state[_P_HI, i] = d, d
    if queries and score and queries >= warm_up:
        excess = np.empty(sensors)
        for i in range(sensors):
            lo, hi = state[_P_LO, i], state[_P_HI, i]
            excess[i] = (state[_P_SCORE, i] - hi) / (margin * (hi - lo) + 1e-12)
        rank(excess, peak, top, 0)
    for i in range(sensors):
        d, low, high = state[_P_SCORE, i], state[_P_LO, i], state[_P_HI, i]
        low = d if d < low else low  # Python's min and max: the first unless one beats it
        high = d if d > high else high
        centre = 0.5 * (low + high)
        state[_P_LO, i] = centre + (low - centre) * keep
        state[_P_HI, i] = centre + (high - centre) * keep


@compiled(
    "Tuple((float64, int64, int64, int64))"
    "(float64[::1], float64[:, ::1], float64[:, ::1], float32[:, :, ::1], float64[:, ::1],"
    " int64[::1], boolean, float64[::1])"
)
def pattern_close(
    values: NDArray[np.float64],
    state: NDArray[np.float64],
    ring: NDArray[np.float64],
    past: NDArray[np.float32],
    used: NDArray[np.float64],
    counters: NDArray[np.int64],
    score: bool,
    params: NDArray[np.float64],
) -> tuple[float, int, int, int]:
    """Close the running segment of :class:`PatternDetector` (``values``: its records, a value
    per sensor each, NaN where missing): the segment means into the ``ring`` (sensors x 4
    points: the last 2 points means, written twice); from ``points`` segments on, each
    sensor's newest subsequence scaled by its usual spread queries its reservoir ``past``
    (sensors x reservoir x points; ``used``: the segment that last used each entry) and is
    judged when the reservoir is full and ``score``; from ``2 points`` segments on the
    subsequence just before it comes into the reservoir in place of the longest unused one.
    ``state`` (7 x sensors), the ``counters`` and the arrays in place; ``params``: the
    settings :data:`PATTERN_PARAMS` names.

    Returns the largest excess (0 when none is above 1) and the positions of the sensors above
    1 by excess (at most ``TOP``, -1 filling).
    """
    sensors, p = state.shape[1], ring.shape[1] // 4
    peak = np.zeros(1)
    top = np.full((1, TOP), -1, dtype=np.int64)
    _pattern_segment(values, state)
    pos = counters[_P_POS]
    for i in range(sensors):
        ring[i, pos] = ring[i, pos + 2 * p] = state[_P_LAST, i]
    counters[_P_POS] = (pos + 1) % (2 * p)
    counters[_P_SEGMENTS] += 1
    segments, kept = counters[_P_SEGMENTS], counters[_P_KEPT]
    if segments < p:
        return 0.0, -1, -1, -1
    start = pos + 1  # the window ring[:, start : start + 2 p], oldest segment first
    scale = np.empty(sensors)
    for i in range(sensors):
        scale[i] = _pattern_spread(ring[i, start + p : start + 2 * p], state, i)
    if kept:
        query, squares, dist = np.empty(p), np.empty(p), np.empty(sensors)
        for i in range(sensors):
            for j in range(p):
                query[j] = ring[i, start + p + j] * scale[i]
            nearest, d2 = _pattern_nearest(past[i], query, kept, squares)
            used[i, nearest] = segments
            dist[i] = math.sqrt(d2)
        if kept >= params[4]:  # a reservoir still filling says little about what is new
            _pattern_judge(dist, state, counters[_P_QUERIES], score, params, peak, top)
            counters[_P_QUERIES] += 1
    if segments >= 2 * p:
        for i in range(sensors):
            slot = kept if kept < params[4] else _argmin(used[i])
            for j in range(p):
                past[i, slot, j] = ring[i, start + j] * scale[i]
            used[i, slot] = segments
        if kept < params[4]:
            counters[_P_KEPT] = kept + 1
    return peak[0], top[0, 0], top[0, 1], top[0, 2]
