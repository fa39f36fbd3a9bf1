"""Alerts and per-record alarm states judged against labelled (asset, start, end) intervals.

The same judgement serves every labelled source: CSV files with a 0/1 label column (each run of
1s an interval) and recorded histories with an events file. Per record (over all assets):
``point_f1``, ``point_far`` (share of normal records in alarm) and ``point_mar`` (share of
abnormal records not in alarm). Per event: an interval is detected when one of its asset's
alerts opens inside it; every alert outside all of its asset's intervals is a false alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

Interval = tuple[str, float, float]


@dataclass(frozen=True)
class IntervalReport:
    """Point-wise and event-wise figures (the JSON keys of ``evaluate anomaly --csv``)."""

    point_f1: float
    point_far: float
    point_mar: float
    events_detected: int
    events_total: int
    false_alarms: int

    def to_dict(self) -> dict[str, float | int]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def score_intervals(
    records: Mapping[str, Sequence[tuple[float, bool]]],
    alerts: Mapping[str, Sequence[float]],
    intervals: Sequence[Interval],
) -> IntervalReport:
    """Judge ``records`` (asset -> [(time, in alarm)]) and ``alerts`` (asset -> opening times).

    >>> recs = {"a": [(0.0, False), (1.0, True), (2.0, True), (3.0, False)]}
    >>> r = score_intervals(recs, {"a": [1.0, 3.5]}, [("a", 2.0, 3.0)])
    >>> r.point_f1, r.point_far, r.point_mar, r.events_detected, r.events_total, r.false_alarms
    (0.5, 0.5, 0.5, 0, 1, 2)
    """
    by_asset: dict[str, list[tuple[float, float]]] = {}
    for asset, start, end in intervals:
        by_asset.setdefault(asset, []).append((start, end))
    tp = fp = fn = tn = 0
    for asset, rows in records.items():
        spans = by_asset.get(asset, [])
        for t, alarm in rows:
            label = any(a <= t <= b for a, b in spans)
            tp += alarm and label
            fp += alarm and not label
            fn += label and not alarm
            tn += not (alarm or label)
    detected = sum(
        any(start <= t <= end for t in alerts.get(asset, ())) for asset, start, end in intervals
    )
    false_alarms = sum(
        not any(a <= t <= b for a, b in by_asset.get(asset, ()))
        for asset, times in alerts.items()
        for t in times
    )
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return IntervalReport(
        point_f1=f1,
        point_far=fp / (fp + tn) if fp + tn else 0.0,
        point_mar=fn / (fn + tp) if fn + tp else 0.0,
        events_detected=detected,
        events_total=len(intervals),
        false_alarms=false_alarms,
    )


def label_runs(asset: str, times: Sequence[float], labels: Sequence[bool]) -> list[Interval]:
    """Each run of true labels as one ``(asset, first time, last time)`` interval.

    >>> label_runs("a", [0.0, 1.0, 2.0, 3.0, 4.0], [False, True, True, False, True])
    [('a', 1.0, 2.0), ('a', 4.0, 4.0)]
    """
    out: list[Interval] = []
    start: float | None = None
    for i, (t, label) in enumerate(zip(times, labels, strict=True)):
        if label and start is None:
            start = t
        if start is not None and (not label or i == len(times) - 1):
            out.append((asset, start, t if label else times[i - 1]))
            start = None
    return out


def alarm_states(
    times: Sequence[float], spans: Sequence[tuple[float, float | None]]
) -> list[tuple[float, bool]]:
    """Per record, whether an alert was open: ``spans`` are (opened, resolved or None).

    >>> alarm_states([0.0, 1.0, 2.0, 3.0], [(1.0, 3.0)])
    [(0.0, False), (1.0, True), (2.0, True), (3.0, False)]
    """
    return [(t, any(a <= t and (b is None or t < b) for a, b in spans)) for t in times]
