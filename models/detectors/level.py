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

from models.detectors.kernels import level_step
from models.state_codec import HasCaches

# per-sensor state rows (the kernel's): records seen, smoothed level, lower and upper end of the
# range, whether the range holds a level yet
_N = 0


class LevelDetector(HasCaches):
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

    _kernel_row: NDArray[np.float64] | None = None
    CACHES = ("_kernel_row",)

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

    def kernel_params(self) -> NDArray[np.float64]:
        """The settings :data:`models.detectors.kernels.LEVEL_PARAMS` names, in its order, as
        the compiled step takes them (made once)."""
        if self._kernel_row is None:
            keep = self.decay**self.step
            row = (self.alpha, self.margin, self.warm_up, self.settle, self.boost, self.lag)
            self._kernel_row = np.array([*row, keep, 0.5 * (1.0 - keep)], dtype=float)
        return self._kernel_row

    def score_learn_one(
        self,
        x: Mapping[str, float],
        score: bool = True,
        values: NDArray[np.float64] | None = None,
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Judge ``x``'s smoothed levels against their ranges, then learn them (one compiled
        step, :func:`models.detectors.kernels.level_step`; ``values``: those of ``x`` in its
        order, when already read).

        Returns ``{"level": (excess, sensors)}`` when a sensor's level is novel (excess > 1).
        Missing and NaN values leave their sensor's level be.
        """
        self._records += 1
        if self._complete and tuple(x) == self._names:
            v = np.fromiter(x.values(), float, len(x)) if values is None else values
        else:
            v = self._values_of_some(x)
        self._ticks += 1
        snapshot = self._ticks >= self.step
        judge = score and self._records > self.warm_up
        peak, *top, self._ranged = level_step(
            v, self._state, self._ring, self._pos, judge, snapshot, self._ranged,
            self.kernel_params(),
        )  # fmt: skip
        if snapshot:
            self._ticks = 0
            self._pos = (self._pos + 1) % len(self._ring)
        if not self._complete:
            self._complete = bool(np.count_nonzero(self._state[_N]) == len(self._names))
        if not peak:
            return {}
        return {"level": (peak, tuple(self._names[i] for i in top if i >= 0))}

    def _values_of_some(self, x: Mapping[str, float]) -> NDArray[np.float64]:
        """A record with some sensors missing, out of order or new (these get a column): a
        value per known sensor, NaN where missing."""
        new = [k for k in x if k not in self._names]
        if new:
            self._names += tuple(new)
            self._complete = self._ranged = False
            self._state = np.hstack((self._state, np.zeros((5, len(new)))))
            grown = np.zeros((len(self._ring), len(new)), np.float32)
            self._ring = np.hstack((self._ring, grown))
        index = {k: i for i, k in enumerate(self._names)}
        v = np.full(len(self._names), np.nan)
        for k, value in x.items():
            v[index[k]] = value
        return v
