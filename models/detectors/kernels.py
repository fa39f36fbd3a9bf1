"""Compiled run-level kernels of the detectors' per-record recursions (numba).

A detector's numpy code costs a handful of microseconds per call, and a record takes about
twenty calls on arrays of five to twenty-five sensors: call overhead, not arithmetic. A kernel
here runs the same recursion over a whole run of records in one compiled call, state arrays in
(updated in place), per-record findings out.

Results are IEEE-identical to the numpy code they replace: the same operations in the same
order, no ``fastmath`` (no reassociation, no fused multiply-add), numpy's error model (a
division by zero gives inf or NaN, as in numpy, not an exception), and ``np.maximum``'s and
``np.minimum``'s NaN propagation spelt out. Tests compare them record for record. Matrix
products are the exception a loop cannot copy: OpenBLAS sums them in an order of its own for
each processor. The correlation step calls the BLAS functions numpy's ``@`` calls, in numpy's
own OpenBLAS with numpy's arguments; where numpy ships another BLAS that step is None.

Compiled code is cached on disk (``cache=True``: next to this module, or under
``NUMBA_CACHE_DIR``, or the user's cache directory when this one is read-only); where no cache
directory is writable the kernels compile in memory on first use.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numba
import numpy as np
from llvmlite import binding as llvm
from numpy.typing import NDArray

_F = TypeVar("_F", bound=Callable[..., Any])

# novelty state columns (models.detectors.novelty): count, level forecast, residual variance,
# lower ends of the value, residual and spread ranges, then their upper ends
_N, _LEVEL, _VAR, _LO, _HI = 0, 1, 2, 3, 6
# novelty kinds in the order the detector reports them (spike, shift, variance), as feature
# columns (residual, value, spread)
_KIND_COLUMNS = (1, 0, 2)
TOP = 3  # sensors named per finding


def compiled(*signatures: str) -> Callable[[_F], _F]:
    """``numba.njit`` with an on-disk cache where a cache directory is writable; with
    ``signatures``, compiled (or loaded from the cache) at once, when the module is imported,
    so that a worker's first batch does not wait for the compiler (the kernels' arrays are
    C-contiguous: a signature of such arrays is the fastest call).

    A function without a source file has no cache location either (numba refuses to cache
    it): it compiles in memory, as every kernel does where no cache directory is writable.

    >>> compiled("float64(float64, float64)")(lambda a, b: a + b)(1.5, 2.0)
    3.5
    """

    eager = list(signatures) or None  # None: each signature compiled on its first call

    def compile_(fn: _F) -> _F:
        try:
            return cast(_F, numba.njit(eager, cache=True, error_model="numpy")(fn))
        except RuntimeError:  # no writable cache location: compile in memory
            return cast(_F, numba.njit(eager, error_model="numpy")(fn))

    return compile_


@compiled()
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN when either is."""
    return a if a >= b or math.isnan(a) else b


@compiled()
def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats: NaN when either is."""
    return a if a <= b or math.isnan(a) else b


# novelty settings as one array (few arguments: a compiled call's cost grows with them)
NOVELTY_PARAMS = (
    "shift_margin",
    "spike_margin",
    "variance_margin",
    "min_count",
    "shift_settle",
    "settle_boost",
    "forecast_alpha",
    "spread_alpha",
    "decay",
)


@compiled()
def _novelty_excess(
    state: NDArray[np.float64],
    f: NDArray[np.float64],
    excess: NDArray[np.float64],
    params: NDArray[np.float64],
) -> None:
    """Fill ``excess`` (features x sensors) as ``NoveltyDetector._found`` computes it; all 0
    when every sensor is young."""
    min_count, shift_settle, settle_boost = params[3], params[4], params[5]
    sensors = f.shape[1]
    excess[:] = 0.0
    unsettled_any, grown_any = False, False
    for s in range(sensors):
        count = state[s, _N]
        unsettled_any |= count < shift_settle
        grown_any |= not count < min_count
    if not grown_any:
        return
    for s in range(sensors):
        if state[s, _N] < min_count:
            continue
        for c in range(3):
            lo, hi, x = state[s, _LO + c], state[s, _HI + c], f[c, s]
            outside = x - hi if c == 2 else _maximum(x - hi, lo - x)
            width = hi - lo + 1e-4 * _maximum(abs(lo), abs(hi)) + 1e-9
            excess[c, s] = outside / (width * params[c])
    if shift_settle > min_count and unsettled_any:
        for s in range(sensors):
            unsettled = (shift_settle - state[s, _N]) / (shift_settle - min_count)
            unsettled = _minimum(_maximum(unsettled, 0.0), 1.0)
            excess[0, s] /= 1.0 + settle_boost * unsettled


@compiled()
def _rank(
    row: NDArray[np.float64],
    peak: NDArray[np.float64],
    top: NDArray[np.int64],
    k: int,
    floor: float = 1.0,
) -> None:
    """The entries of ``row`` above ``floor``, largest first (ties in row order, as a stable
    sort): the largest into ``peak[k]``, the first ``TOP`` positions into ``top[k]``."""
    best = np.zeros(TOP)
    found = 0
    for s in range(row.shape[0]):
        e = row[s]
        if not e > floor:
            continue
        at = min(found, TOP)
        while at > 0 and e > best[at - 1]:
            at -= 1
        if at < TOP:
            for p in range(min(found, TOP - 1), at, -1):
                best[p], top[k, p] = best[p - 1], top[k, p - 1]
            best[at], top[k, at] = e, s
        found += 1
    if found:
        peak[k] = best[0]


@compiled(
    "Tuple((float64[:, ::1], int64[:, :, ::1], boolean[::1]))"
    "(float64[:, ::1], float64[:, ::1], int64, float64[::1])"
)
def novelty_run(
    state: NDArray[np.float64],
    values: NDArray[np.float64],
    first_scored: int,
    params: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """Score (from record ``first_scored`` on) and learn each row of ``values`` (records x
    sensors, in the state's row order) as :meth:`NoveltyDetector.score_learn_one` does,
    ``state`` (sensors x 9, every sensor started) updated in place; ``params``: the
    detector's settings named in :data:`NOVELTY_PARAMS`, in that order.

    Returns each record's largest excess per kind (spike, shift, variance; 0 where none is
    above 1), the sensors of each finding by excess (at most ``TOP``, -1 filling), and whether
    the record has any finding.
    """
    records, sensors = values.shape
    forecast_alpha, spread_alpha, decay = params[6], params[7], params[8]
    peak = np.zeros((records, 3))
    top = np.full((records, 3, TOP), -1, dtype=np.int64)
    hit = np.zeros(records, dtype=np.bool_)
    f = np.empty((3, sensors))
    excess = np.empty((3, sensors))
    for j in range(records):
        outside_any = False
        for s in range(sensors):
            v = values[j, s]
            f[0, s], f[1, s], f[2, s] = v, v - state[s, _LEVEL], np.sqrt(state[s, _VAR])
            for c in range(3):
                if f[c, s] > state[s, _HI + c] or (c < 2 and f[c, s] < state[s, _LO + c]):
                    outside_any = True
        if j >= first_scored and outside_any:
            _novelty_excess(state, f, excess, params)
            for k in range(3):
                _rank(excess[_KIND_COLUMNS[k]], peak[j], top[j], k)
            hit[j] = peak[j, 0] > 1.0 or peak[j, 1] > 1.0 or peak[j, 2] > 1.0
        for s in range(sensors):
            r = f[1, s]
            state[s, _N] += 1.0
            state[s, _VAR] += spread_alpha * (r * r - state[s, _VAR])
            state[s, _LEVEL] += forecast_alpha * r
            for c in range(3):
                lo = _minimum(state[s, _LO + c], f[c, s])
                hi = _maximum(state[s, _HI + c], f[c, s])
                centre = 0.5 * (lo + hi)
                state[s, _LO + c] = centre + (lo - centre) * decay
                state[s, _HI + c] = centre + (hi - centre) * decay
    return peak, top, hit


@compiled("void(float64[::1], float64[:, ::1], float64[::1], float64)")
def covariance_learn(
    mean: NDArray[np.float64], cov: NDArray[np.float64], v: NDArray[np.float64], a: float
) -> None:
    """Take ``v`` into an exponentially weighted ``mean`` and ``cov`` (newest weight ``a``), in
    place, as ``CorrelationDetector`` does: ``cov = (1 - a) * (cov + a * outer(d, d))`` with
    ``d = v - mean`` (the same products in the same order)."""
    d = v - mean
    for i in range(len(d)):
        mean[i] += a * d[i]
    keep = 1.0 - a
    for i in range(len(d)):
        for j in range(len(d)):
            cov[i, j] = (d[i] * d[j] * a + cov[i, j]) * keep


# level state rows (models.detectors.level): records seen, smoothed level, lower and upper end of
# the range, whether the range holds a level yet
_L_N, _L_MEAN, _L_LO, _L_HI, _L_SET = 0, 1, 2, 3, 4
# level settings as one array, in this order (decay ** step and half of 1 minus it precomputed)
LEVEL_PARAMS = ("alpha", "margin", "warm_up", "settle", "boost", "lag", "keep", "half_gap")


@compiled()
def _level_snapshot(
    state: NDArray[np.float64],
    ring: NDArray[np.float32],
    pos: int,
    ranged: bool,
    lag: float,
    keep: float,
    half_gap: float,
) -> bool:
    """The ranges take in the ring's snapshot at ``pos`` (``lag`` records old), contracting by
    ``keep`` towards their centres; the levels replace it. Returns whether every sensor's range
    holds a level."""
    all_set = True
    for s in range(state.shape[1]):
        oldest = np.float64(ring[pos, s])
        lo, hi = state[_L_LO, s], state[_L_HI, s]
        if ranged:  # the usual case: every range holds a level
            lo, hi = _minimum(lo, oldest), _maximum(hi, oldest)
            shrink = half_gap * (hi - lo)
            state[_L_LO, s], state[_L_HI, s] = lo + shrink, hi - shrink
        elif state[_L_N, s] > lag:  # the oldest snapshot holds a level of this sensor
            if state[_L_SET, s] == 0.0:
                lo, hi = oldest, oldest
            else:
                lo, hi = _minimum(lo, oldest), _maximum(hi, oldest)
            centre = 0.5 * (lo + hi)
            state[_L_LO, s] = centre + (lo - centre) * keep
            state[_L_HI, s] = centre + (hi - centre) * keep
            state[_L_SET, s] = 1.0
        all_set &= state[_L_SET, s] != 0.0
        ring[pos, s] = np.float32(state[_L_MEAN, s])
    return all_set


@compiled(
    "Tuple((float64, int64, int64, int64, boolean))"
    "(float64[::1], float64[:, ::1], float32[:, ::1], int64, boolean, boolean, boolean,"
    " float64[::1])"
)
def level_step(
    v: NDArray[np.float64],
    state: NDArray[np.float64],
    ring: NDArray[np.float32],
    pos: int,
    judge: bool,
    snapshot: bool,
    ranged: bool,
    params: NDArray[np.float64],
) -> tuple[float, int, int, int, bool]:
    """One record ``v`` (a value per sensor, NaN where missing) of
    :meth:`LevelDetector.score_learn_one`: the smoothed levels learn it, are judged against
    their ranges when ``judge``, and when ``snapshot`` the ranges take in the ring's snapshot at
    ``pos`` (every sensor's range already holds a level when ``ranged``) and the levels replace
    it; ``state`` (5 x sensors) and ``ring`` (snapshots x sensors) in place, ``params``: the
    settings :data:`LEVEL_PARAMS` names.

    Returns the largest excess (0 when none is above 1), the positions of the sensors above 1
    by excess (-1 filling), and whether every sensor's range holds a level.
    """
    sensors = v.shape[0]
    alpha, margin, warm_up, settle = params[0], params[1], params[2], params[3]
    boost, lag, keep, half_gap = params[4], params[5], params[6], params[7]
    for s in range(sensors):
        x = v[s]
        if math.isnan(x):
            continue
        mean = x if state[_L_N, s] == 0.0 else state[_L_MEAN, s]
        mean = mean + alpha * (x - mean)
        state[_L_MEAN, s] = mean
        state[_L_N, s] += 1.0
    outside = False  # only a level outside its range can be novel: most records skip the excess
    for s in range(sensors):
        outside |= state[_L_MEAN, s] > state[_L_HI, s] or state[_L_MEAN, s] < state[_L_LO, s]
    peak = np.zeros(1)
    top = np.full((1, TOP), -1, dtype=np.int64)
    if judge and outside:
        excess = np.zeros(sensors)
        for s in range(sensors):
            count = state[_L_N, s]
            if not (count > warm_up and state[_L_SET, s] > 0.0):
                continue
            lo, hi, mean = state[_L_LO, s], state[_L_HI, s], state[_L_MEAN, s]
            width = hi - lo + 1e-4 * _maximum(abs(lo), abs(hi)) + 1e-9
            e = _maximum(mean - hi, lo - mean) / (margin * width)
            if settle > warm_up:
                young = _minimum(_maximum((settle - count) / (settle - warm_up), 0.0), 1.0)
                e /= 1.0 + boost * young
            excess[s] = e
        _rank(excess, peak, top, 0)
    if snapshot:
        ranged = _level_snapshot(state, ring, pos, ranged, lag, keep, half_gap)
    return peak[0], top[0, 0], top[0, 1], top[0, 2], ranged


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
def _pairwise_sum(a: NDArray[np.float64]) -> float:
    """``a``'s sum as numpy's reductions add (pairwise): a plain loop under 8 values, 8
    accumulators combined as a tree up to 128, halves (at a multiple of 8) beyond."""
    n = a.shape[0]
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[i]
        return res
    if n > 128:
        half = n // 2
        half -= half % 8
        return float(_pairwise_sum(a[:half]) + _pairwise_sum(a[half:]))
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    while i < n - n % 8:
        r0, r1, r2, r3 = r0 + a[i], r1 + a[i + 1], r2 + a[i + 2], r3 + a[i + 3]
        r4, r5, r6, r7 = r4 + a[i + 4], r5 + a[i + 5], r6 + a[i + 6], r7 + a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return float(res)


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
    mean = _pairwise_sum(query) / p
    squares = np.empty(p)
    for j in range(p):
        d = query[j] - mean
        squares[j] = d * d
    spread = math.sqrt(_pairwise_sum(squares) / p)
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
        d2[e] = _pairwise_sum(squares) / p
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
        _rank(excess, peak, top, 0)
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


# running statistics columns (models.anomaly.SensorTable): records seen (0: a column just
# added, nothing learned yet), mean, variance
_S_N, _S_MEAN, _S_VAR = 0, 1, 2


@compiled("void(float64[:, ::1], float64[::1], int64[::1], float64)")
def scaler_learn(
    stats: NDArray[np.float64], values: NDArray[np.float64], rows: NDArray[np.int64], least: float
) -> None:
    """Take ``values`` into the running statistics of their ``rows`` of ``stats``, in place, as
    ``RegimeScaler`` always did: the first value is the mean, then an exponentially weighted
    update with weight ``max(1 / n, least)``."""
    for i in range(len(values)):
        row, v = rows[i], values[i]
        n = stats[row, _S_N]
        if n == 0.0:
            stats[row, _S_N], stats[row, _S_MEAN], stats[row, _S_VAR] = 1.0, v, 0.0
            continue
        n += 1.0
        stats[row, _S_N] = n
        a = 1.0 / n
        a = least if least > a else a
        mean = stats[row, _S_MEAN]
        d = v - mean
        stats[row, _S_MEAN] = mean + a * d
        stats[row, _S_VAR] = (1.0 - a) * (stats[row, _S_VAR] + a * d * d)


@compiled(
    "int64(float64[:, ::1], float64[::1], int64[::1], float64, float64, float64, float64[::1])"
)
def scaler_deviations(
    stats: NDArray[np.float64],
    values: NDArray[np.float64],
    rows: NDArray[np.int64],
    clip: float,
    resolution: float,
    min_count: float,
    out: NDArray[np.float64],
) -> int:
    """The clipped standardised deviation of each of ``values`` (row -1: no statistics) into
    ``out``; NaN where the sensor is not scored yet (fewer than ``min_count`` records). Returns
    how many are scored."""
    low, scored = -clip, 0
    for i in range(len(values)):
        row = rows[i]
        if row < 0 or stats[row, _S_N] < min_count:
            out[i] = np.nan
            continue
        mean = stats[row, _S_MEAN]
        sd = math.sqrt(stats[row, _S_VAR]) + resolution * abs(mean) + 1e-9
        q = (values[i] - mean) / sd
        q = q if q < clip else clip  # max(-clip, min(clip, q)), NaN included
        out[i] = q if q > low else low
        scored += 1
    return scored


@compiled()
def scaler_score(
    deviations: NDArray[np.float64], how: int, k: int, top: NDArray[np.int64]
) -> tuple[float, int]:
    """The score of ``deviations`` (NaN: not scored) as ``models.anomaly.aggregate`` gives it
    (``how``: 0 mean, 1 rms, 2 max, 3 top2 of the magnitudes, summed in order), and in ``top``
    the positions of every deviation that may rank among the ``k`` largest magnitudes (those
    at least the ``k``-th largest). Returns the score and how many positions are in ``top``."""
    largest = np.full(max(k, 2), -np.inf)  # the largest magnitudes, largest first
    total, scored = 0.0, 0
    for q in deviations:
        if math.isnan(q):
            continue
        m = abs(q)
        total += m * m if how == 1 else m
        scored += 1
        j = len(largest)
        while j > 0 and m > largest[j - 1]:
            j -= 1
        if j < len(largest):
            largest[j + 1 :] = largest[j:-1].copy()
            largest[j] = m
    score = 0.0
    if scored > 0:
        if how == 0:
            score = total / scored
        elif how == 1:
            score = math.sqrt(total / scored)
        elif how == 2:
            score = largest[0]
        else:
            score = (largest[0] + largest[1]) / 2 if scored > 1 else largest[0]
    least = largest[k - 1] if scored > k > 0 else -np.inf
    n = 0
    for i in range(len(deviations)):
        q = deviations[i]
        if not math.isnan(q) and abs(q) >= least:
            top[n] = i
            n += 1
    return score, n


def _numpy_blas() -> dict[str, int]:
    """Addresses of the CBLAS ``ddot`` and ``dgemv`` of the OpenBLAS numpy's wheel ships (and
    numpy's ``@`` runs), by name; empty where numpy has another BLAS (built from source, a
    distribution's numpy)."""
    names = ("scipy_cblas_ddot64_", "scipy_cblas_dgemv64_")
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    for path in sorted(libs.glob("libscipy_openblas64_*.so")):
        try:
            lib = ctypes.CDLL(str(path))  # loaded by numpy already: the same library
            return {
                name: cast(int, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
                for name in names
            }
        except (OSError, AttributeError):
            continue
    return {}


_BLAS = _numpy_blas()
for _name, _address in _BLAS.items():
    llvm.add_symbol(_name, _address)
# CBLAS enums (as numpy's matmul passes them)
_ROW_MAJOR, _COL_MAJOR, _TRANS = 101, 102, 112
_DOUBLES = numba.types.CPointer(numba.types.float64)  # type: ignore[no-untyped-call]
_ddot: Any = numba.types.ExternalFunction(
    "scipy_cblas_ddot64_",
    numba.types.float64(
        numba.types.int64, _DOUBLES, numba.types.int64, _DOUBLES, numba.types.int64
    ),
)
_dgemv: Any = numba.types.ExternalFunction(
    "scipy_cblas_dgemv64_",
    numba.types.void(
        numba.types.int32,
        numba.types.int32,
        numba.types.int64,
        numba.types.int64,
        numba.types.float64,
        _DOUBLES,
        numba.types.int64,
        _DOUBLES,
        numba.types.int64,
        numba.types.float64,
        _DOUBLES,
        numba.types.int64,
    ),
)


@compiled()
def _basis_t_dot(
    basis: NDArray[np.float64], c: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out = basis.T @ c`` as numpy's matmul computes it (``basis``: sensors x components)."""
    n, k = basis.shape
    if k == 1:  # a row times a column: numpy's dot
        out[0] = 0.0 + _ddot(n, basis.ctypes, 1, c.ctypes, 1)
    elif k > 1:
        _dgemv(_ROW_MAJOR, _TRANS, n, k, 1.0, basis.ctypes, k, c.ctypes, 1, 0.0, out.ctypes, 1)


@compiled()
def _basis_dot(
    basis: NDArray[np.float64], x: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out = basis @ x`` as numpy's matmul computes it."""
    n, k = basis.shape
    if k > 1:
        _dgemv(_COL_MAJOR, _TRANS, k, n, 1.0, basis.ctypes, k, x.ctypes, 1, 0.0, out.ctypes, 1)
        return
    for i in range(n):  # one component or none: numpy's plain loop
        out[i] = 0.0
        for j in range(k):
            out[i] += basis[i, j] * x[j]


@compiled()
def _top_by_size(by: NDArray[np.float64]) -> tuple[int, int, int]:
    """The positions of the ``TOP`` largest ``|by|`` (-1 filling), in the order a stable sort of
    ``-|by|`` gives (NaN last)."""
    size = np.empty(by.shape[0])
    for i in range(by.shape[0]):
        s = abs(by[i])
        size[i] = -1.0 if math.isnan(s) else s
    peak, top = np.zeros(1), np.full((1, TOP), -1, dtype=np.int64)
    _rank(size, peak, top, 0, -2.0)
    return top[0, 0], top[0, 1], top[0, 2]


def _correlation_step(
    values: NDArray[np.float64],
    order: NDArray[np.int64],
    mean: NDArray[np.float64],
    cov: NDArray[np.float64],
    basis: NDArray[np.float64],
    inverse_variance: NDArray[np.float64],
    n: int,
    spe_max: float,
    t2_max: float,
    margin: float,
    decay: float,
    alpha: float,
    judge: bool,
    learn: bool,
) -> tuple[float, int, int, int, float, float]:
    """One record of :class:`CorrelationDetector` (``values`` in the record's order,
    ``values[order]`` in the state's): its SPE and T² off the components ``basis`` (sensors x
    components; no rows: none yet), judged against their maxima when ``judge``, then when
    ``learn`` taken into the maxima and into ``mean`` and ``cov`` (in place; ``n`` records
    learned before; ``alpha``: the newest record's least weight there).

    Returns the excess (0 when not above 1), the positions of the sensors named (-1 filling),
    and the SPE and T² maxima (unchanged unless ``learn``).
    """
    sensors = values.shape[0]
    v = np.empty(sensors)
    for i in range(sensors):
        v[i] = values[order[i]]
    excess, top = 0.0, (-1, -1, -1)
    if basis.shape[0]:
        k = basis.shape[1]
        c, p, back = v - mean, np.zeros(k), np.zeros(sensors)
        _basis_t_dot(basis, c, p)
        _basis_dot(basis, p, back)
        res = c - back
        _basis_dot(basis, p * inverse_variance, back)
        t2_parts = c * back
        spe = 0.0 + _ddot(sensors, res.ctypes, 1, res.ctypes, 1)
        t2 = 0.0 + _pairwise_sum(t2_parts)
        if judge:
            best, by = 1.0, res
            if spe_max > 0.0 and (spe - spe_max) / (margin * spe_max) > best:
                best = (spe - spe_max) / (margin * spe_max)
            if t2_max > 0.0 and (t2 - t2_max) / (margin * t2_max) > best:
                best, by = (t2 - t2_max) / (margin * t2_max), t2_parts
            if best > 1.0:
                excess, top = best, _top_by_size(by)
        if learn:  # Python's max: the first unless the second is larger
            spe_max = spe_max * decay if spe_max * decay > spe else spe
            t2_max = t2_max * decay if t2_max * decay > t2 else t2
    if learn:
        a = 1.0 / (n + 1)
        covariance_learn(mean, cov, v, alpha if alpha > a else a)
    return excess, top[0], top[1], top[2], spe_max, t2_max


_CORRELATION_STEP_SIGNATURE = (
    "Tuple((float64, int64, int64, int64, float64, float64))"
    "(float64[::1], int64[::1], float64[::1], float64[:, ::1], float64[:, ::1], float64[::1],"
    " int64, float64, float64, float64, float64, float64, boolean, boolean)"
)
# where numpy's BLAS is not found the compiled step cannot reproduce its products: None (the
# detector keeps its numpy step)
correlation_step = compiled(_CORRELATION_STEP_SIGNATURE)(_correlation_step) if _BLAS else None


@compiled(
    "int64(float64[:, ::1], float64[::1], int64[::1], float64, float64, int64[::1], float64[::1])"
)
def cusum_step(
    state: NDArray[np.float64],
    values: NDArray[np.float64],
    rows: NDArray[np.int64],
    slack: float,
    limit: float,
    fired: NDArray[np.int64],
    shifts: NDArray[np.float64],
) -> int:
    """One two-sided CUSUM step of each of ``values`` on its ``rows`` of ``state`` (upper sum,
    its count, lower sum, its count), in place, as ``SensorDriftDetector`` always did: the
    positions of the values that fired into ``fired``, their shifts into ``shifts`` (their rows
    start again). Returns how many fired."""
    low, n = -slack, 0
    for i in range(len(values)):
        row, value = rows[i], values[i]
        if state[row, 0] == 0.0 and state[row, 2] == 0.0 and low <= value <= slack:
            continue  # both sums at 0 (so their counts too) and staying there: no change
        up = state[row, 0] + value - slack
        up = up if up > 0.0 else 0.0  # max(0.0, up), NaN included
        state[row, 0] = up
        state[row, 1] = state[row, 1] + 1.0 if up > 0.0 else 0.0
        down = state[row, 2] - value - slack
        down = down if down > 0.0 else 0.0
        state[row, 2] = down
        state[row, 3] = state[row, 3] + 1.0 if down > 0.0 else 0.0
        if up > limit:
            shift = slack + up / state[row, 1]
        elif down > limit:
            shift = -(slack + down / state[row, 3])
        else:
            continue
        state[row, :] = 0.0
        fired[n], shifts[n] = i, shift
        n += 1
    return n


@compiled("Tuple((int64, float64))(float64[::1], float64[:, ::1], float64[:, ::1])")
def regime_nearest(
    values: NDArray[np.float64], centres: NDArray[np.float64], scales: NDArray[np.float64]
) -> tuple[int, float]:
    """The first of ``centres`` (rows) nearest to ``values`` (-1 when none is nearer than
    infinity) and its distance: the largest ``|value - centre| / scale`` over the settings,
    NaN ignored, as ``OperatingRegimes`` measures it."""
    best, best_d = -1, np.inf
    for i in range(centres.shape[0]):
        d = 0.0
        for j in range(values.shape[0]):
            e = abs(values[j] - centres[i, j]) / scales[i, j]
            d = e if e > d else d  # max(d, e), NaN ignored
        if d < best_d:
            best, best_d = i, d
    return best, best_d


@compiled("Tuple((int64[::1], float64[::1]))(float64[:, ::1], float64[:, ::1], float64[:, ::1])")
def regimes_nearest(
    rows: NDArray[np.float64], centres: NDArray[np.float64], scales: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """:func:`regime_nearest` of each of ``rows``: the nearest centres and their distances."""
    best = np.empty(rows.shape[0], dtype=np.int64)
    dist = np.empty(rows.shape[0])
    for r in range(rows.shape[0]):
        best[r], dist[r] = regime_nearest(rows[r], centres, scales)
    return best, dist
