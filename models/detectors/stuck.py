"""A sensor that stops moving: its value repeats for longer than it ever did before.

A stuck transmitter, a frozen data feed or a machine that has stopped all show as one value
repeated record after record. Each sensor keeps the length of its current run of identical
values and the longest run it completed before; a run is novel once it is at least
``min_run`` records long and longer than ``ratio`` times that longest run. It is reported
once per run (the record where it crosses), not for as long as it lasts.

The longest run is a poor yardstick while the sensor has changed value only a few times (on a
young or mostly idle sensor the next, longer run is no surprise), so a sensor is scored only
after ``min_changes`` changes of value. A sensor that has never changed is a constant, not a
stuck sensor: it is never scored. The longest run does not decay: a sensor that once idled for
a day may do so again.

State is one numpy array (a row of five numbers per sensor) and a dict of sensor -> row;
every update is elementwise over the sensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

# per-sensor state columns: last value, current run, longest completed run, changes of value,
# whether the current run was reported
_LAST, _RUN, _LONGEST, _CHANGES, _REPORTED = range(5)


class StuckDetector:
    """Stuck-value novelty per sensor (River-style ``learn_one``/``score_one``).

    Parameters
    ----------
    ratio
        A run is novel when longer than this times the sensor's longest earlier run.
    min_run
        ... and at least this many records long.
    min_changes
        Changes of value a sensor needs before it is scored.

    Examples
    --------
    >>> d = StuckDetector(ratio=1.25, min_run=4, min_changes=10)
    >>> for i in range(40):  # runs of two identical values
    ...     _ = d.score_learn_one({"s1": float(i // 2), "s2": 1.0})
    >>> [d.score_learn_one({"s1": 99.0, "s2": 1.0}) for _ in range(3)]
    [{}, {}, {}]
    >>> d.score_learn_one({"s1": 99.0, "s2": 1.0})
    {'stuck': (1.6, ('s1',))}
    >>> d.score_learn_one({"s1": 99.0, "s2": 1.0})  # reported once per run
    {}
    """

    def __init__(self, *, ratio: float = 1.25, min_run: int = 36, min_changes: int = 300) -> None:
        self.ratio = ratio
        self.min_run = min_run
        self.min_changes = min_changes
        self._index: dict[str, int] = {}  # sensor -> row of the state
        self._names: tuple[str, ...] = ()  # the sensors in row order
        self._state: NDArray[np.float64] = np.zeros((0, 5))

    def _rows(self, x: Mapping[str, float]) -> list[int]:
        """The state rows of ``x``'s sensors, a new row (its run starting) for a new one."""
        if tuple(x) == self._names:
            return list(range(len(self._names)))
        new = [k for k in x if k not in self._index]
        if new:
            for k in new:
                self._index[k] = len(self._index)
            self._names += tuple(new)
            fresh = np.zeros((len(new), 5))
            fresh[:, _LAST] = np.nan  # the first value changes nothing
            self._state = np.vstack((self._state, fresh))
        return [self._index[k] for k in x]

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Take ``x`` into every sensor's runs; when ``score``, the novel ones: ``{"stuck":
        (run / (ratio * longest), its sensors by that, at most three)}``, or ``{}``."""
        rows = self._rows(x)
        whole = len(rows) == len(self._state)
        st = self._state if whole else self._state[rows]
        v = np.fromiter(x.values(), float, len(x))
        same = v == st[:, _LAST]
        known = ~np.isnan(st[:, _LAST])
        changed = known & ~same
        st[:, _LONGEST] = np.where(changed, np.maximum(st[:, _LONGEST], st[:, _RUN]), st[:, _LONGEST])
        st[:, _CHANGES] += changed
        st[:, _RUN] = np.where(same, st[:, _RUN] + 1.0, 1.0)
        st[:, _REPORTED] *= same
        st[:, _LAST] = v
        found: dict[str, tuple[float, tuple[str, ...]]] = {}
        if score and np.count_nonzero(st[:, _RUN] >= self.min_run):
            excess = st[:, _RUN] / (self.ratio * np.maximum(st[:, _LONGEST], 1.0))
            novel = (
                (st[:, _RUN] >= self.min_run)
                & (excess > 1.0)
                & (st[:, _CHANGES] >= self.min_changes)
                & (st[:, _REPORTED] == 0.0)
            )
            hits = np.flatnonzero(novel)
            if hits.size:
                st[hits, _REPORTED] = 1.0
                order = hits[np.argsort(-excess[hits], kind="stable")]
                names = list(x)
                found["stuck"] = (float(excess[order[0]]), tuple(names[i] for i in order[:3]))
        if not whole:
            self._state[rows] = st
        return found
