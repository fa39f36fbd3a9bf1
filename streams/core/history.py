"""A short per-asset history of scores and RUL bands, for sparklines on the fleet page."""

from __future__ import annotations

import math
from array import array

FIELDS = ("score", "threshold", "rul", "rul_p10", "rul_p90")


class History:
    """The last ``size`` records of one asset in fixed arrays (about 28 bytes a record).

    >>> h = History(size=2)
    >>> h.add(1.0, 0.5, 3.0)
    >>> h.add(2.0, 0.7, 3.0)
    >>> h.add(3.0, 4.2, 3.5)
    >>> h.set_rul(2.0, 40.0, 30.0, 55.0)
    >>> [(p["ts"], p["score"], p["rul"]) for p in h.points()]
    [(2.0, 0.7, 40.0), (3.0, 4.2, None)]
    """

    __slots__ = ("_n", "_pos", "_ts", "_values")

    def __init__(self, size: int = 120) -> None:
        self._ts = array("d", bytes(8 * size))
        self._values = array("f", [math.nan]) * (len(FIELDS) * size)
        self._pos = 0
        self._n = 0

    def add(self, ts: float, score: float, threshold: float) -> None:
        """Append one scored record (its RUL comes with :meth:`set_rul`)."""
        size = len(self._ts)
        self._ts[self._pos] = ts
        base, values = self._pos * len(FIELDS), self._values
        values[base], values[base + 1] = score, threshold
        values[base + 2] = values[base + 3] = values[base + 4] = math.nan  # its RUL: not yet
        self._pos = (self._pos + 1) % size
        self._n = min(self._n + 1, size)

    def set_rul(self, ts: float, rul: float, p10: float, p90: float) -> None:
        """Attach a RUL forecast to the newest record at ``ts`` (forecasts of a batch arrive
        after all its records were added)."""
        size = len(self._ts)
        for back in range(1, self._n + 1):
            k = (self._pos - back) % size
            if self._ts[k] == ts:
                base = k * len(FIELDS) + 2
                self._values[base : base + 3] = array("f", [rul, p10, p90])
                return

    def points(self) -> list[dict[str, float | None]]:
        """Oldest first, as JSON-ready dicts (``None`` for what is unknown)."""
        size, out = len(self._ts), []
        for i in range(self._n):
            k = (self._pos - self._n + i) % size
            values = self._values[k * len(FIELDS) : (k + 1) * len(FIELDS)]
            point: dict[str, float | None] = {"ts": self._ts[k]}
            for name, v in zip(FIELDS, values, strict=True):
                point[name] = None if math.isnan(v) else round(float(v), 4)
            out.append(point)
        return out
