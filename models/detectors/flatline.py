"""A sensor that stops moving (a flatline): its value repeats for longer than it ever did before.

A stuck transmitter, a frozen data feed or a machine that has stopped all show as one value
repeated record after record. Each sensor keeps the length of its current run of identical
values and the longest run it completed before; a run is novel once it is at least
``min_run`` records long and longer than ``ratio`` times that longest run. It is reported
once per run (the record where it crosses), not for as long as it lasts.

The longest run is a poor yardstick while the sensor has changed value only a few times (on a
young or mostly idle sensor the next, longer run is no surprise), so a sensor is scored only
after ``min_changes`` changes of value (a sensor that has never changed is a constant, not a
flatline). The longest run does not decay: a sensor that once idled for a day may do so again.
Unlike the worker's data-quality alert on stuck sensors (``streams.core.alerts``: a fixed number of
identical values), a run is judged against the sensor's own history, so a sensor that idles
as long as it always did is no finding.

Most records of a continuous sensor change every value: they take a fast path (one comparison
of the record with the last one); only records that repeat a value walk the sensors. State:
plain lists (any checkpoint codec encodes them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import nan
from operator import eq


class FlatlineDetector:
    """Flatline novelty per sensor (River-style ``score_learn_one``).

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
    >>> d = FlatlineDetector(ratio=1.25, min_run=4, min_changes=10)
    >>> for i in range(40):  # runs of two identical values
    ...     _ = d.score_learn_one({"s1": float(i // 2), "s2": 1.0})
    >>> [d.score_learn_one({"s1": 99.0, "s2": 1.0}) for _ in range(3)]
    [{}, {}, {}]
    >>> d.score_learn_one({"s1": 99.0, "s2": 1.0})
    {'flatline': (1.6, ('s1',))}
    >>> d.score_learn_one({"s1": 99.0, "s2": 1.0})  # reported once per run
    {}
    """

    def __init__(self, ratio: float = 1.25, min_run: int = 36, min_changes: int = 300) -> None:
        if min_run < 2:
            raise ValueError(f"min_run must be at least 2, not {min_run}")
        self.ratio = ratio
        self.min_run = min_run
        self.min_changes = min_changes
        self._names: tuple[str, ...] = ()  # the sensors in state order
        self._index: dict[str, int] = {}  # sensor -> its place in the lists below
        self._last: list[float] = []  # last value
        self._run: list[int] = []  # records in the current run of one value
        self._longest: list[int] = []  # longest completed run
        self._changes: list[int] = []  # changes of value, less those of the fast records
        self._reported: list[bool] = []  # the current run was reported
        self._fast = 0  # records where every sensor changed value (a change each)
        self._open = False  # some sensor's current run is longer than one record

    def score_learn_one(
        self, x: Mapping[str, float], score: bool = True
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Take ``x`` into every sensor's runs; when ``score``, the novel ones: ``{"flatline":
        (run / (ratio * longest), its sensors by that, at most three)}``, or ``{}``."""
        values = list(x.values())
        if tuple(x) == self._names:
            if not self._open and not any(map(eq, values, self._last)):
                self._last = values  # every run was one record and ends: nothing else changes
                self._fast += 1
                return {}
            rows: Sequence[int] = range(len(values))
        else:
            rows = [self._row(k) for k in x]
        return self._walk(rows, values, score)

    def _row(self, name: str) -> int:
        """The state place of sensor ``name``; a new sensor starts with no value."""
        row = self._index.get(name)
        if row is None:
            row = self._index[name] = len(self._names)
            self._names += (name,)
            self._last.append(nan)  # the first value changes nothing
            self._run.append(0)
            self._longest.append(0)
            self._changes.append(-self._fast)
            self._reported.append(False)
        return row

    def _walk(
        self, rows: Sequence[int], values: Sequence[float], score: bool
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Take the ``values`` of the sensors at ``rows`` one by one; the novel runs."""
        last, run, longest, reported = self._last, self._run, self._longest, self._reported
        hits: list[tuple[float, str]] = []
        for row, v in zip(rows, values, strict=True):
            if v == last[row]:
                run[row] += 1
            else:
                if last[row] == last[row]:  # not the first value (NaN)
                    self._changes[row] += 1
                longest[row] = max(longest[row], run[row])
                last[row], run[row], reported[row] = v, 1, False
                continue
            n = run[row]
            if not score or n < self.min_run or reported[row]:
                continue
            excess = n / (self.ratio * max(longest[row], 1))
            if excess > 1.0 and self._changes[row] + self._fast >= self.min_changes:
                reported[row] = True
                hits.append((excess, self._names[row]))
        self._open = any(n > 1 for n in run)
        if not hits:
            return {}
        hits.sort(key=lambda h: -h[0])
        return {"flatline": (hits[0][0], tuple(name for _, name in hits[:3]))}
