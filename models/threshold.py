"""The adaptive threshold: an asset's own score distribution decides what is anomalous."""

from __future__ import annotations

from river import stats


class AdaptiveThreshold:
    """A running quantile of an asset's own scores, never below a fixed floor.

    Parameters
    ----------
    q
        Quantile of past scores above which a score is anomalous.
    floor
        Lowest threshold (in score units): scores below it never alarm, however quiet the
        asset has been.

    Examples
    --------
    >>> t = AdaptiveThreshold(q=0.9, floor=1.0)
    >>> for s in range(100):
    ...     t.update(s / 10)
    >>> round(t.get(), 1), t.classify(9.5), t.classify(0.5)
    (8.9, True, False)
    """

    def __init__(self, q: float = 0.995, floor: float = 3.0) -> None:
        self.q = q
        self.floor = floor
        self._quantile = stats.Quantile(q)

    def get(self) -> float:
        """Current threshold."""
        value = self._quantile.get()
        return max(self.floor, float(value)) if value is not None else self.floor

    def classify(self, score: float) -> bool:
        """Whether ``score`` is above the threshold."""
        return score > self.get()

    def update(self, score: float) -> None:
        """Learn one score."""
        self._quantile.update(score)
