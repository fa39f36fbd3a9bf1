"""Per-sensor state as one array: a row per sensor, in the order the sensors first came.

Compiled kernels (:mod:`models.detectors.kernels`) update the rows in place; a record's
sensors are mapped to their rows once per key order (a record usually has the keys of the one
before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from models.state_codec import HasCaches


class SensorTable(HasCaches):
    """``columns`` floats of state per sensor (zeros: nothing learned yet).

    >>> t = SensorTable(3)
    >>> t.rows_for({"s2": 1.0, "s1": 2.0}, grow=True).tolist(), t.names, t.stats.shape
    ([0, 1], ('s2', 's1'), (2, 3))
    >>> t.rows_for({"s1": 2.0, "s3": 0.0}).tolist()
    [1, -1]
    >>> t.drop(["s2"]); t.names, t.rows_for({"s1": 2.0}).tolist()
    (('s1',), [0])
    """

    def __init__(self, columns: int) -> None:
        self.names: tuple[str, ...] = ()
        self.stats: NDArray[np.float64] = np.zeros((0, columns))

    # the rows of the last record's sensors in its order (-1: none yet), and whether it had a
    # sensor without a row (caches: never checkpointed)
    _keys: tuple[str, ...] | None = None
    _rows: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
    _missing = False
    CACHES = ("_keys", "_rows", "_missing")

    @classmethod
    def of(cls, lists: Mapping[str, Sequence[float]], columns: int) -> SensorTable:
        """A table of per-sensor lists of ``columns`` floats (checkpoints before tables)."""
        table = cls(columns)
        table.names = tuple(lists)
        table.stats = np.array([list(v) for v in lists.values()], float).reshape(-1, columns)
        return table

    def rows_for(self, sensors: Iterable[str], grow: bool = False) -> NDArray[np.int64]:
        """The row of each of ``sensors`` (names, or a record's mapping: in its order), -1 where
        there is none; ``grow``: a new row (of zeros) for each sensor without one."""
        keys = tuple(sensors)
        if keys != self._keys or (grow and self._missing):
            index = {k: i for i, k in enumerate(self.names)}
            new = [k for k in keys if k not in index]
            if grow and new:
                index.update((k, i) for i, k in enumerate(new, len(self.names)))
                self.names += tuple(new)
                self.stats = np.concatenate([self.stats, np.zeros((len(new), self.stats.shape[1]))])
                new = []
            self._rows = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
            self._keys, self._missing = keys, bool(new)
        return self._rows

    def drop(self, sensors: Iterable[str]) -> None:
        """Forget the state of ``sensors``."""
        gone = set(sensors)
        keep = [i for i, k in enumerate(self.names) if k not in gone]
        if len(keep) < len(self.names):
            self.names = tuple(self.names[i] for i in keep)
            self.stats = np.ascontiguousarray(self.stats[keep])
            self._keys = None
