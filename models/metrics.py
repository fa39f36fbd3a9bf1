"""Evaluation metrics: RUL error, NASA score, interval coverage, event-window detection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def rmse(predicted: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error.

    >>> rmse([10.0, 20.0], [12.0, 16.0])
    3.1622776601683795
    """
    p, t = np.asarray(predicted, dtype=float), np.asarray(true, dtype=float)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def nasa_score(predicted: ArrayLike, true: ArrayLike) -> float:
    """C-MAPSS scoring function: late predictions cost more than early ones.

    With ``d = predicted - true``: ``exp(-d/13) - 1`` for ``d < 0``, ``exp(d/10) - 1`` otherwise.

    >>> round(nasa_score([90.0, 110.0], [100.0, 100.0]), 4)
    2.8764
    """
    d = np.asarray(predicted, dtype=float) - np.asarray(true, dtype=float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def interval_coverage(lower: ArrayLike, upper: ArrayLike, true: ArrayLike) -> float:
    """Share of true values inside ``[lower, upper]``.

    >>> interval_coverage([0, 5, 10], [10, 8, 20], [5, 9, 10])
    0.6666666666666666
    """
    lo, hi, t = (np.asarray(a, dtype=float) for a in (lower, upper, true))
    return float(np.mean((t >= lo) & (t <= hi)))


@dataclass(frozen=True)
class WindowReport:
    """Alerts judged against labelled event windows (timestamps in seconds).

    ``lead_times_s`` holds, per detected window, the time from the first alert inside the window
    to the window's end (how early the event was flagged).
    """

    windows_detected: int
    windows_total: int
    false_alarms: int
    lead_times_s: tuple[float, ...]

    @property
    def mean_lead_time_s(self) -> float | None:
        """Mean lead time over the detected windows, ``None`` if none was detected."""
        return float(np.mean(self.lead_times_s)) if self.lead_times_s else None


def judge_windows(alerts: Sequence[float], windows: Sequence[tuple[float, float]]) -> WindowReport:
    """Count detected windows and false alarms.

    An alert inside a window detects it; an alert outside every window is a false alarm.

    >>> r = judge_windows([5.0, 15.0, 50.0], [(10.0, 20.0), (30.0, 40.0)])
    >>> (r.windows_detected, r.windows_total, r.false_alarms, r.lead_times_s)
    (1, 2, 2, (5.0,))
    """
    first_hits: dict[int, float] = {}
    false_alarms = 0
    for t in sorted(alerts):
        hit = next((i for i, (start, end) in enumerate(windows) if start <= t <= end), None)
        if hit is None:
            false_alarms += 1
        else:
            first_hits.setdefault(hit, t)
    leads = tuple(windows[i][1] - t for i, t in sorted(first_hits.items()))
    return WindowReport(len(first_hits), len(windows), false_alarms, leads)
