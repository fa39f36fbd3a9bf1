"""Compiled kernels of the regime-aware scaling (:mod:`models.regime_scaler`), the scorers'
aggregate (:mod:`models.anomaly`), the CUSUM drift step (:mod:`models.drift`) and the operating
regimes' nearest centre (:mod:`models.regimes`), under the rules of
:mod:`models.detectors.kernels` (results identical to numpy's).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from models.detectors.kernels import compiled

# running statistics columns (models.sensor_table.SensorTable): records seen (0: a column just
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
