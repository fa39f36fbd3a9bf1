"""Labelled data replayed through the worker's pipeline and judged: what `evaluate anomaly` runs.

Every series, file or engine is one fresh asset replayed by
:func:`streams.core.anomaly_replay.replay_alerts` (the monitor's detectors and policy by kind, then
the alert engine), so the figures are those of the alerts a worker would publish with the same
settings and policy file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.anomaly_corpus import (
    SeriesResult,
    evaluate_corpus,
    evaluate_references,
    judge_series,
    total,
)
from models.anomaly_eval import (
    CmapssEvaluation,
    read_cmapss,
    read_corpus_windows,
    read_nab_series,
    read_windows,
)
from models.intervals import IntervalReport, alarm_states, label_runs, score_intervals
from models.labelled_csv import read_labelled_csv
from models.rul.lives import HistoryRecord
from streams.core.alert_event import AlertEvent, to_rfc3339
from streams.core.anomaly_replay import opened, replay_alerts
from streams.core.pipeline import PipelineConfig
from streams.history_files import abnormal_intervals, read_history


@dataclass
class KindTally:
    """Which detector kind opened the alerts that detected windows, and the false alarms."""

    detected: Counter[str]
    false_alarms: Counter[str]

    def add(self, result: SeriesResult, kinds: dict[float, str]) -> None:
        for start, end in result.windows:
            inside = [t for t in result.alerts if start <= t <= end]
            if inside:
                self.detected[kinds.get(inside[0], "")] += 1
        for t in result.alerts:
            if not any(a <= t <= b for a, b in result.windows):
                self.false_alarms[kinds.get(t, "")] += 1

    def to_dict(self) -> dict[str, dict[str, int]]:
        names = sorted(set(self.detected) | set(self.false_alarms))
        return {
            k: {"windows_detected": self.detected[k], "false_alarms": self.false_alarms[k]}
            for k in names
        }


def _kinds(events: Sequence[AlertEvent]) -> dict[float, str]:
    return {e.opened_at: e.detector or "" for e in events if e.state == "open"}


def nab_series(
    name: str, times: Sequence[float], values: Sequence[float], config: PipelineConfig
) -> tuple[list[float], dict[float, str]]:
    """Alert opening times of one univariate series (sensor ``value``) and their kinds."""
    rows = ((t, {"value": v}, None) for t, v in zip(times, values, strict=True))
    events = replay_alerts(name, rows, config)
    return opened(events), _kinds(events)


def evaluate_nab_file(
    path: str | Path, windows: str | Path, config: PipelineConfig
) -> tuple[SeriesResult, dict[float, str]]:
    """One NAB series against its windows (a ``windows.json`` naming it, or holding only it)."""
    times, values = read_nab_series(path)
    wins = read_windows(windows, Path(path).name)
    alerts, kinds = nab_series(Path(path).name, times, values, config)
    return judge_series(Path(path).name, times, alerts, wins), kinds


def evaluate_nab_corpus(
    corpus: str | Path,
    windows: str | Path,
    config: PipelineConfig,
    reference: str | Path | None = None,
) -> tuple[dict[str, Any], KindTally]:
    """The ``--nab-corpus`` JSON document and the per-kind tally."""
    wins = read_corpus_windows(windows)
    kinds: dict[float, str] = {}
    tally = KindTally(Counter(), Counter())

    def detector(times: Sequence[float], values: Sequence[float]) -> list[float]:
        alerts, found = nab_series("nab", times, values, config)
        kinds.clear()
        kinds.update(found)
        return alerts

    series: dict[str, Any] = {}
    results = []
    for name in sorted(wins):
        (result,) = evaluate_corpus(corpus, wins, detector, [name])
        tally.add(result, kinds)
        results.append(result)
        series[name] = {
            **result.to_dict(),
            "alerts": [{"at": to_rfc3339(t), "kind": kinds.get(t, "")} for t in result.alerts],
        }
    doc: dict[str, Any] = {"series": series, "total": total(results)}
    if reference is not None:
        refs = evaluate_references(corpus, wins, reference)
        doc["reference"] = {name: total(res) for name, res in refs.items()}
    return doc, tally


def evaluate_labelled_csv(
    files: Sequence[str | Path],
    time_column: str,
    label_column: str,
    config: PipelineConfig,
    ignore: Sequence[str] = (),
    delimiter: str = ",",
) -> IntervalReport:
    """Labelled CSV files, one fresh asset each (named after the file), judged per record and
    per event (each run of 1s one event)."""
    records: dict[str, list[tuple[float, bool]]] = {}
    alerts: dict[str, list[float]] = {}
    intervals = []
    for i, path in enumerate(files):
        asset = f"{Path(path).name}#{i}"
        data = read_labelled_csv(path, time_column, label_column, ignore, delimiter)
        rows = ((t, s, None) for t, s in zip(data.times, data.sensors, strict=True))
        events = replay_alerts(asset, rows, config)
        spans = _spans(events)
        records[asset] = alarm_states(data.times, spans)
        alerts[asset] = opened(events)
        intervals += label_runs(asset, data.times, data.labels)
    return score_intervals(records, alerts, intervals)


def evaluate_history(
    history: Sequence[Path], events: Path, config: PipelineConfig
) -> IntervalReport:
    """A plant's recorded history (telemetry files), each asset replayed as a fresh one in event
    time order, judged against the ``abnormal`` intervals of its events file (the keys of
    ``--csv``)."""
    labelled = abnormal_intervals(events)
    by_asset: dict[str, list[HistoryRecord]] = {}
    for record in read_history(history):
        by_asset.setdefault(record.asset_id, []).append(record)
    records: dict[str, list[tuple[float, bool]]] = {}
    alerts: dict[str, list[float]] = {}
    for asset, rows in sorted(by_asset.items()):
        rows.sort(key=lambda r: r.ts_ms)
        times = [r.ts_ms / 1000 for r in rows]
        replay = ((t, r.sensors, r.settings or None) for t, r in zip(times, rows, strict=True))
        opened_here = replay_alerts(asset, replay, config)
        records[asset] = alarm_states(times, _spans(opened_here))
        alerts[asset] = opened(opened_here)
    intervals = [
        (i.asset_id, i.start_ms / 1000, i.end_ms / 1000)
        for asset_intervals in labelled.values()
        for i in asset_intervals
    ]
    return score_intervals(records, alerts, intervals)


def _spans(events: Sequence[AlertEvent]) -> list[tuple[float, float | None]]:
    """(opened, resolved or None) of each alert in ``events``."""
    spans: dict[str, tuple[float, float | None]] = {}
    for e in events:
        if e.state == "open":
            spans[e.alert_id] = (e.opened_at, None)
        elif e.state == "resolved" and e.alert_id in spans:
            spans[e.alert_id] = (spans[e.alert_id][0], e.ts)
    return list(spans.values())


def evaluate_cmapss_engines(
    path: str | Path, config: PipelineConfig, units: int | None = None
) -> CmapssEvaluation:
    """Each run-to-failure engine as one asset (event time = cycle x 60 s): the share with an
    anomaly alert open during their last 30 cycles (detection; an alert opened earlier that
    still holds counts) and the share with one opened in their first 50 (false alarm)."""
    engines = read_cmapss(path, units)
    late = early = 0
    for unit, rows in engines.items():
        replay = ((cycle * 60.0, sensors, settings) for cycle, settings, sensors in rows)
        spans = _spans(replay_alerts(f"engine-{unit}", replay, config))
        last = rows[-1][0] * 60.0
        late += any(b is None or b > last - 30 * 60.0 for _, b in spans)
        early += any(a <= 50 * 60.0 for a, _ in spans)
    return CmapssEvaluation(len(engines), late / len(engines), early / len(engines))
