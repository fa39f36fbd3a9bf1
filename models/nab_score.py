"""NAB's standard-profile score, implemented from the NAB paper's definition.

Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta Anomaly
Benchmark" (ICMLA 2015): every labelled window rewards only its *earliest* detection, by a
scaled sigmoid of where in the window it fell (near 1 at the window's start, 0 at its end);
a window without a detection costs ``A_FN``; a detection outside every window costs ``A_FP``
times a sigmoid that grows from 0 just after a window to 1 far from it (a detection before the
first window costs the full ``A_FP``); detections in the probationary period are ignored.
The corpus score is normalised so the null detector (no detections) scores 0 and the perfect
detector (one detection at the start of every window) scores 100:
``100 * (S - S_null) / (S_perfect - S_null)``.

Positions are measured in time, as fractions of the window's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Window = tuple[float, float]


@dataclass(frozen=True)
class Profile:
    """Weights of a NAB application profile (the standard profile by default)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD = Profile()


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1`` (-1 beyond ``y > 3``).

    ``y`` is a relative position: -1 at a window's start, 0 at its end, positive after it.

    >>> round(scaled_sigmoid(-1.0), 4), scaled_sigmoid(0.0), scaled_sigmoid(4.0)
    (0.9866, 0.0, -1.0)
    """
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass(frozen=True)
class SeriesScore:
    """Raw NAB score of one series, with what the normalisation needs."""

    raw: float
    null: float
    perfect: float


def score_series(
    detections: Iterable[float],
    windows: Sequence[Window],
    probation_end: float = -math.inf,
    profile: Profile = STANDARD,
) -> SeriesScore:
    """Raw NAB score of ``detections`` (times) against ``windows`` (sorted, disjoint).

    Detections at or before ``probation_end`` are ignored.

    >>> s = score_series([5.0, 25.0], [(0.0, 10.0)])
    >>> round(s.raw, 4), s.null, round(s.perfect, 4)
    (0.7384, -1.0, 0.9866)
    """
    wins = sorted(windows)
    raw = 0.0
    credited: set[int] = set()
    for t in sorted(detections):
        if t <= probation_end:
            continue
        inside = next((i for i, (a, b) in enumerate(wins) if a <= t <= b), None)
        if inside is not None:
            if inside not in credited:
                a, b = wins[inside]
                y = -(b - t) / (b - a) if b > a else 0.0
                raw += profile.tp * scaled_sigmoid(y)
                credited.add(inside)
            continue
        before = [(a, b) for a, b in wins if b < t]
        if not before:
            raw -= profile.fp
            continue
        a, b = before[-1]
        y = (t - b) / (b - a) if b > a else 4.0
        raw += profile.fp * scaled_sigmoid(y)
    raw -= profile.fn * (len(wins) - len(credited))
    perfect = profile.tp * scaled_sigmoid(-1.0) * len(wins)
    return SeriesScore(raw, -profile.fn * len(wins), perfect)


def normalised(scores: Iterable[SeriesScore]) -> float:
    """Corpus score on NAB's 0 (null detector) .. 100 (perfect detector) scale.

    >>> normalised([score_series([], [(0.0, 1.0)]), score_series([0.0], [(0.0, 1.0)])])
    50.0
    """
    items = list(scores)
    raw = sum(s.raw for s in items)
    null = sum(s.null for s in items)
    perfect = sum(s.perfect for s in items)
    if perfect == null:  # no windows: only false positives can count
        return 100.0 * raw if raw < 0 else 100.0
    return 100.0 * (raw - null) / (perfect - null)


def probation_end(times: Sequence[float], fraction: float = 0.15, cap: int = 750) -> float:
    """Time of the last record of NAB's probationary period (15% of the file, at most 750).

    >>> probation_end([float(i) for i in range(100)])
    14.0
    """
    n = min(math.floor(fraction * len(times)), cap)
    return times[n - 1] if n > 0 else -math.inf
