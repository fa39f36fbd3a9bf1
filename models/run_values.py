"""The values of a run of one asset's records as one array, made once for every part that
takes them.

A run's records usually have the same sensors in the same order, so the monitor reads their
values once (:meth:`RunValues.of`) and hands each record's row to the parts that would
otherwise each read the record's mapping again (the scaler, the level and novelty detectors).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class RunValues(NamedTuple):
    """The leading records of a run that have the first one's ``keys`` in its order, a row
    each (``size`` of them) in ``values``.

    >>> usual = RunValues.of([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}, {"b": 5.0, "a": 6.0}])
    >>> usual.keys, usual.size, usual.values.tolist()
    (('a', 'b'), 2, [[1.0, 2.0], [3.0, 4.0]])
    >>> RunValues.of([{"a": None}]) is None  # no number: the record's own path raises
    True
    """

    keys: tuple[str, ...]
    values: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Records with a row."""
        return len(self.values)

    @classmethod
    def of(cls, records: Sequence[Mapping[str, float]]) -> RunValues | None:
        """The run's leading records with the first one's keys; ``None`` when there is none, or
        when one of their values is not a real number (numpy alone would read ``None`` as NaN).
        """
        if not records:
            return None
        keys = tuple(records[0])
        size = 1
        for x in records[1:]:
            if tuple(x) != keys:
                break
            size += 1
        if size == 1:  # (the usual run of one record)
            flat = list(records[0].values())
        else:
            flat = list(chain.from_iterable(x.values() for x in records[:size]))
        try:
            values = real_values(flat).reshape(size, len(keys))
        except (TypeError, ValueError, OverflowError):
            return None
        return cls(keys, values)


def keyed_row(values: Mapping[str, float]) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """A record's names and its values as one array, in its order (the row form the compiled
    detectors take).

    >>> keyed_row({"s1": 0.5, "s2": -1.0})
    (('s1', 's2'), array([ 0.5, -1. ]))
    """
    return tuple(values), np.fromiter(values.values(), float, len(values))


def real_values(values: Collection[float]) -> NDArray[np.float64]:
    """``values`` as an array. A value that is not a real number raises ``TypeError``, as
    arithmetic on it did (numpy alone would read ``None`` as NaN).

    >>> real_values({"s1": 1.5, "s2": None}.values())
    Traceback (most recent call last):
    TypeError: unsupported operand type(s) for +: 'float' and 'NoneType'
    """
    sum(values)  # (raises on a value that is not a number; cheaper than a loop)
    return np.fromiter(values, float, len(values))
