"""Compiled kernels of the models' per-record recursions (numba): their rules, the helpers
they share, and the novelty and level detectors' kernels.

A detector's numpy code costs a handful of microseconds per call, and a record takes about
twenty calls on arrays of five to twenty-five sensors: call overhead, not arithmetic. A kernel
runs the same recursion over a record, or a whole run of records, in one compiled call, state
arrays in (updated in place), findings out. The other kernels follow the same rules, beside what
they serve: :mod:`~models.detectors.pattern_kernels`,
:mod:`~models.detectors.correlation_kernels` and :mod:`~models.detectors.scaler_kernels` (the
scaling, the scorers' aggregate, the drift step and the operating regimes).

Results are IEEE-identical to the numpy code they replace: the same operations in the same
order, no ``fastmath`` (no reassociation, no fused multiply-add), numpy's error model (a
division by zero gives inf or NaN, as in numpy, not an exception), and ``np.maximum``'s and
``np.minimum``'s NaN propagation spelt out. Tests compare them record for record. Matrix
products are the exception a loop cannot copy: OpenBLAS sums them in an order of its own for
each processor: the correlation step calls the BLAS functions numpy's ``@`` calls.

Compiled code is cached on disk (``cache=True``: next to this module, or under
``NUMBA_CACHE_DIR``, or the user's cache directory when this one is read-only); where no cache
directory is writable the kernels compile in memory on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
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
def maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN when either is."""
    return a if a >= b or math.isnan(a) else b


@compiled()
def minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats: NaN when either is."""
    return a if a <= b or math.isnan(a) else b


@compiled()
def pairwise_sum(a: NDArray[np.float64]) -> float:
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
        return float(pairwise_sum(a[:half]) + pairwise_sum(a[half:]))
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
            outside = x - hi if c == 2 else maximum(x - hi, lo - x)
            width = hi - lo + 1e-4 * maximum(abs(lo), abs(hi)) + 1e-9
            excess[c, s] = outside / (width * params[c])
    if shift_settle > min_count and unsettled_any:
        for s in range(sensors):
            unsettled = (shift_settle - state[s, _N]) / (shift_settle - min_count)
            unsettled = minimum(maximum(unsettled, 0.0), 1.0)
            excess[0, s] /= 1.0 + settle_boost * unsettled


@compiled()
def rank(
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
                rank(excess[_KIND_COLUMNS[k]], peak[j], top[j], k)
            hit[j] = peak[j, 0] > 1.0 or peak[j, 1] > 1.0 or peak[j, 2] > 1.0
        for s in range(sensors):
            r = f[1, s]
            state[s, _N] += 1.0
            state[s, _VAR] += spread_alpha * (r * r - state[s, _VAR])
            state[s, _LEVEL] += forecast_alpha * r
            for c in range(3):
                lo = minimum(state[s, _LO + c], f[c, s])
                hi = maximum(state[s, _HI + c], f[c, s])
                centre = 0.5 * (lo + hi)
                state[s, _LO + c] = centre + (lo - centre) * decay
                state[s, _HI + c] = centre + (hi - centre) * decay
    return peak, top, hit


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
            lo, hi = minimum(lo, oldest), maximum(hi, oldest)
            shrink = half_gap * (hi - lo)
            state[_L_LO, s], state[_L_HI, s] = lo + shrink, hi - shrink
        elif state[_L_N, s] > lag:  # the oldest snapshot holds a level of this sensor
            if state[_L_SET, s] == 0.0:
                lo, hi = oldest, oldest
            else:
                lo, hi = minimum(lo, oldest), maximum(hi, oldest)
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
            width = hi - lo + 1e-4 * maximum(abs(lo), abs(hi)) + 1e-9
            e = maximum(mean - hi, lo - mean) / (margin * width)
            if settle > warm_up:
                young = minimum(maximum((settle - count) / (settle - warm_up), 0.0), 1.0)
                e /= 1.0 + boost * young
            excess[s] = e
        rank(excess, peak, top, 0)
    if snapshot:
        ranged = _level_snapshot(state, ring, pos, ranged, lag, keep, half_gap)
    return peak[0], top[0, 0], top[0, 1], top[0, 2], ranged
