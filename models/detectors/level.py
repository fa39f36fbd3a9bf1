"""A level that moves where it has not been lately: novelty of a slowly smoothed level.

Many faults move a sensor's usual level without any single value leaving the range the sensor
has shown: a CPU that runs at a plateau above its normal load, a tweet volume whose mean doubles
for a few hours while its spikes stay as high as ever. One value of such a stretch is no
news to the ``shift`` detector (earlier spikes widened the value range), and a spike in it is
no larger than earlier ones. The level the sensor keeps is: each sensor's exponentially
weighted mean (weight ``alpha``, about ``1 / alpha`` records of memory; single spikes move it
little) is judged against the slowly forgetting range of the same mean as it was at least
``lag`` records earlier, so a level that rises or falls further than the smoothed level went
before, by ``margin`` times that range's width, is novel. The range leaves out the last ``lag``
records so that a rise stays novel while it develops, and it takes the mean in every ``step``
records (a ring of ``lag // step`` snapshots per sensor), contracting towards its centre by
``decay`` per record as the novelty ranges do.

A young range has not yet seen the sensor's usual variety: until a sensor has ``settle``
records, a level must leave its range by up to ``1 + boost`` times the margin (falling linearly
from ``warm_up`` records, where scoring starts, to 1 at ``settle``), the shift detector's
settling with a longer reach.

State: numpy arrays and a tuple of sensor names (plain data: any checkpoint codec encodes them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

# per-sensor state rows: records seen, smoothed level, lower and upper end of the range, whether
# the range holds a level yet
_N, _MEAN, _LO, _HI, _SET = 0, 1, 2, 3, 4


class LevelDetector:
    """Smoothed-level novelty per sensor (River-style ``score_learn_one``).

    Parameters
    ----------
    margin
        How far (in widths of its range) the smoothed level must leave its range to count.
    alpha
        Weight of the newest value in the smoothed level.
    lag
        Records the range lags behind the smoothed level (a multiple of ``step``).
    step
        Records between the range's updates.
    decay
        Per-record contraction of the range towards its centre.
    warm_up
        Records of a sensor before it is scored.
    settle, boost
        Until ``settle`` records, a level must leave its range by up to ``1 + boost`` times the
        margin.

    Examples
    --------
    A noisy sensor with rare large spikes, then a plateau well inside the range of its values:

    >>> d = LevelDetector(warm_up=100, settle=0)
    >>> value = lambda i: 10.0 + (i % 5) * 0.2 + (30.0 if i % 400 == 7 else 0.0)
    >>> [d.score_learn_one({"s": value(i)}) for i in range(3000)][-1]
    {}
    >>> found = [d.score_learn_one({"s": 14.0 + (i % 5) * 0.2}) for i in range(3000, 3100)]
    >>> [f["level"][1] for f in found if f][:1]
    [('s',)]
    """

    def __init__(
        self,
        *,
        margin: float = 0.25,
        alpha: float = 1 / 24,
        lag: int = 48,
        step: int = 4,
        decay: float = 0.9999,
        warm_up: int = 300,
        settle: int = 1500,
        boost: float = 5.0,
    ) -> None:
        if step < 1 or lag < step or lag % step:
            raise ValueError(f"lag {lag} must be a multiple of step {step} (>= 1)")
        self.margin = margin
        self.alpha = alpha
        self.lag = lag
        self.step = step
        self.decay = decay
        self.warm_up = warm_up
        self.settle = settle
        self.boost = boost
        self._names: tuple[str, ...] = ()
        self._records = 0  # records seen (a sensor has seen at most as many)
        self._complete = False  # every sensor has a level: the usual record takes a fast path
        self._ranged = False  # every sensor has a range: snapshots take a fast path
        self._state: NDArray[np.float64] = np.zeros((5, 0))  # a row per state row and sensor
        self._ring: NDArray[np.float32] = np.zeros((lag // step, 0), np.float32)  # snapshots
        self._pos = 0  # the ring's oldest snapshot, replaced by the next one
        self._ticks = 0  # records since the last snapshot

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Judge ``x``'s smoothed levels against their ranges, then learn them.

        Returns ``{"level": (excess, sensors)}`` when a sensor's level is novel (excess > 1).
        Missing and NaN values leave their sensor's level be.
        """
        self._records += 1
        if not self._complete or tuple(x) != self._names:
            return self._score_learn_some(x, score)
        v = np.fromiter(x.values(), float, len(x))
        if np.isnan(v).any():
            return self._update(v, ~np.isnan(v), score)
        st = self._state
        st[_MEAN] += self.alpha * (v - st[_MEAN])
        st[_N] += 1.0
        return self._judged_and_learned(st, score)

    def _score_learn_some(
        self, x: Mapping[str, float], score: bool
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """A record with some sensors missing, out of order or new (these get a column)."""
        new = [k for k in x if k not in self._names]
        if new:
            self._names += tuple(new)
            self._ranged = False
            self._state = np.hstack((self._state, np.zeros((5, len(new)))))
            grown = np.zeros((len(self._ring), len(new)), np.float32)
            self._ring = np.hstack((self._ring, grown))
        index = {k: i for i, k in enumerate(self._names)}
        v = np.full(len(self._names), np.nan)
        for k, value in x.items():
            v[index[k]] = value
        found = self._update(v, ~np.isnan(v), score)
        self._complete = bool(np.count_nonzero(self._state[_N]) == len(self._names))
        return found

    def _update(
        self, v: NDArray[np.float64], seen: NDArray[np.bool_], score: bool
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        st = self._state
        first = seen & (st[_N] == 0.0)
        mean = np.where(first, v, st[_MEAN])
        st[_MEAN] = np.where(seen, mean + self.alpha * (np.nan_to_num(v) - mean), mean)
        st[_N] += seen
        return self._judged_and_learned(st, score)

    def _judged_and_learned(
        self, st: NDArray[np.float64], score: bool
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Judge the updated levels (when ``score`` and some sensor may be scored), then take a
        snapshot when one is due."""
        found: dict[str, tuple[float, tuple[str, ...]]] = {}
        if score and self._records > self.warm_up:
            mean = st[_MEAN]
            # only a level outside its range can be novel: most records skip the full excess
            if np.count_nonzero(mean > st[_HI]) or np.count_nonzero(mean < st[_LO]):
                found = self._judge(st)
        self._ticks += 1
        if self._ticks >= self.step:
            self._ticks = 0
            self._learn_snapshot(st)
        return found

    def _judge(self, st: NDArray[np.float64]) -> dict[str, tuple[float, tuple[str, ...]]]:
        """``{"level": ...}`` when a scored sensor's level leaves its range by the margin."""
        count = st[_N]
        scored = (count > self.warm_up) & (st[_SET] > 0.0)
        if not np.count_nonzero(scored):
            return {}
        lo, hi, mean = st[_LO], st[_HI], st[_MEAN]
        width = hi - lo + 1e-4 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-9
        excess = np.maximum(mean - hi, lo - mean) / (self.margin * width)
        if self.settle > self.warm_up:
            young = np.clip((self.settle - count) / (self.settle - self.warm_up), 0.0, 1.0)
            excess /= 1.0 + self.boost * young
        excess[~scored] = 0.0
        hits = np.flatnonzero(excess > 1.0)
        if not hits.size:
            return {}
        order = hits[np.argsort(-excess[hits], kind="stable")]
        return {"level": (float(excess[order[0]]), tuple(self._names[i] for i in order[:3]))}

    def _learn_snapshot(self, st: NDArray[np.float64]) -> None:
        """The range takes in the oldest snapshot (``lag`` records old), the newest joins."""
        oldest = self._ring[self._pos].astype(float)
        if self._ranged:  # every sensor's range holds a level: the usual case, in place
            lo, hi = st[_LO], st[_HI]
            np.minimum(lo, oldest, out=lo)
            np.maximum(hi, oldest, out=hi)
            shrink = (0.5 * (1.0 - self.decay**self.step)) * (hi - lo)  # towards the centre
            lo += shrink
            hi -= shrink
        else:
            self._start_ranges(st, oldest)
            self._ranged = bool(np.count_nonzero(st[_SET]) == len(self._names))
        self._ring[self._pos] = st[_MEAN]
        self._pos = (self._pos + 1) % len(self._ring)

    def _start_ranges(self, st: NDArray[np.float64], oldest: NDArray[np.float64]) -> None:
        """Ranges while some sensors have none yet: those whose oldest snapshot holds a level
        start at it or take it in."""
        started = st[_N] > self.lag  # the oldest snapshot holds a level of this sensor
        fresh = started & (st[_SET] == 0.0)
        lo = np.where(fresh, oldest, np.minimum(st[_LO], oldest))
        hi = np.where(fresh, oldest, np.maximum(st[_HI], oldest))
        keep = self.decay**self.step
        centre = 0.5 * (lo + hi)
        st[_LO] = np.where(started, centre + (lo - centre) * keep, st[_LO])
        st[_HI] = np.where(started, centre + (hi - centre) * keep, st[_HI])
        st[_SET] = np.where(started, 1.0, st[_SET])
