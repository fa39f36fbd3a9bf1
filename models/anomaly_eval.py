"""Offline evaluation helpers: NAB, C-MAPSS and Shuttle readers, ROC AUC, a river baseline.

Pure functions. The alerts that ``pmaint evaluate anomaly`` judges come from replaying data
through the worker's own pipeline (:mod:`streams.anomaly_evaluation`); here are the readers, the
score replay of one monitor (:func:`replay_series`, for plots), the Shuttle ROC AUC of the
monitor's score and the untuned river baseline judged with :func:`debounce`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.datafiles import read_bytes, read_text
from models.errors import DataError
from models.metrics import WindowReport, judge_windows
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig


def parse_time(text: str) -> float:
    """Epoch seconds of a NAB timestamp (naive timestamps are UTC).

    >>> parse_time("1970-01-01 00:05:00.000000")
    300.0
    """
    t = datetime.fromisoformat(text.strip())
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def read_nab_series(path: str | Path) -> tuple[list[float], list[float]]:
    """Read a NAB ``timestamp,value`` CSV into ``(epoch_seconds, values)``.

    Raises
    ------
    DataError
        If the file is missing or malformed.
    """
    try:
        rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    except OSError as exc:
        raise DataError(f"cannot read NAB series {path}: {exc.strerror}") from exc
    try:
        times = [parse_time(r["timestamp"]) for r in rows]
        values = [float(r["value"]) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: expected columns timestamp,value ({exc})") from exc
    if not rows or not all(math.isfinite(v) for v in values):
        raise DataError(f"{path}: no rows or non-finite values")
    return times, values


def read_corpus_windows(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """``{"category/file.csv": [(start, end), ...]}`` from a NAB windows JSON file.

    Raises
    ------
    DataError
        If the file is missing or not of that shape.
    """
    try:
        doc = json.loads(read_bytes(path))
    except OSError as exc:
        raise DataError(f"cannot read windows {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg})") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected an object of series -> windows")
    try:
        return {k: [(parse_time(a), parse_time(b)) for a, b in v] for k, v in doc.items()}
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: windows must be [start, end] timestamp pairs") from exc


def read_windows(path: str | Path, series: str) -> list[tuple[float, float]]:
    """Labelled windows of ``series`` (a file name) from a NAB ``windows.json``.

    The file maps series file names to ``[[start, end], ...]``; a file naming a single series
    is used whatever the series is called.

    Raises
    ------
    DataError
        If the file is missing, malformed or has no windows for ``series``.
    """
    doc = read_corpus_windows(path)
    key = next((k for k in doc if Path(k).name == Path(series).name), None)
    if key is None and len(doc) == 1:
        key = next(iter(doc))
    if key is None:
        raise DataError(f"{path}: no windows for {Path(series).name}")
    return doc[key]


@dataclass(frozen=True)
class Replay:
    """Per-record outcome of replaying a series."""

    scores: tuple[float, ...]
    thresholds: tuple[float, ...]
    flags: tuple[bool, ...]


def replay_series(
    times: Sequence[float], values: Sequence[float], config: MonitorConfig | None = None
) -> Replay:
    """Replay a univariate series (sensor ``value``) through a fresh :class:`AssetMonitor`.

    >>> r = replay_series([60.0 * i for i in range(400)], [1.0 + (i % 7) for i in range(400)])
    >>> len(r.scores), any(r.flags)
    (400, False)
    """
    monitor = AssetMonitor(config)
    results = [monitor.update({"value": v}, None, t) for t, v in zip(times, values, strict=True)]
    return Replay(
        tuple(r.score for r in results),
        tuple(r.threshold for r in results),
        tuple(r.is_anomaly for r in results),
    )


def debounce(
    times: Sequence[float], flags: Iterable[bool], consecutive: int = 12, cooldown_s: float = 900.0
) -> list[float]:
    """Alert times: after ``consecutive`` anomalous records, at most once per run of them,
    and never within ``cooldown_s`` of the previous alert.

    >>> debounce([0, 1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 1, 1, 1], consecutive=2, cooldown_s=3)
    [1, 5]
    """
    alerts: list[float] = []
    run, fired, last = 0, False, -math.inf
    for t, flag in zip(times, flags, strict=True):
        if not flag:
            run, fired = 0, False
            continue
        run += 1
        if run >= consecutive and not fired and t - last >= cooldown_s:
            alerts.append(t)
            last, fired = t, True
    return alerts


@dataclass(frozen=True)
class NabEvaluation:
    """Alerts of a replay judged against labelled windows."""

    report: WindowReport
    alerts: tuple[float, ...]
    windows: tuple[tuple[float, float], ...]
    times: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    replay: Replay | None = None


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Exact ROC AUC (Mann-Whitney, ties count half) of unbounded ``scores``.

    >>> roc_auc([False, False, True, True], [0.1, 5.0, 3.0, 9.0])
    0.75
    """
    y = np.asarray(labels, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=float))
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise DataError("ROC AUC needs both labels")
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties averaged.

    >>> rankdata(np.array([3.0, 1.0, 3.0])).tolist()
    [2.5, 1.0, 2.5]
    """
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(len(a), dtype=float)
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def shuttle_roc_auc(config: MonitorConfig | None = None, limit: int | None = None) -> float:
    """ROC AUC of the monitor's scores over river's Shuttle stream (``limit`` rows or all).

    Every row is scored before it is learned (progressive validation).
    """
    from river import datasets

    monitor = AssetMonitor(config)
    labels: list[bool] = []
    scores: list[float] = []
    for i, (x, y) in enumerate(datasets.Shuttle()):
        if limit is not None and i >= limit:
            break
        labels.append(bool(y))
        scores.append(monitor.update(x, None, float(i)).score)
    return roc_auc(labels, scores)


def baseline_flags(values: Sequence[float], warm_up: int = 300, q: float = 0.995) -> list[bool]:
    """Flags of an untuned river detector: ``MinMaxScaler | HalfSpaceTrees`` (seed 0).

    Each value is scored, compared with the running ``q`` quantile of the previous scores,
    then learned; nothing is flagged during the first ``warm_up`` records. This is the
    comparison point reported next to the monitor.

    >>> flags = baseline_flags([1.0 + (i % 7) for i in range(300)], warm_up=280)
    >>> len(flags), any(flags[:280])
    (300, False)
    """
    from river import anomaly, compose, preprocessing, stats

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0))
    quantile = stats.Quantile(q)
    flags: list[bool] = []
    for i, v in enumerate(values):
        x = {"value": v}
        score = float(model.score_one(x))
        threshold = quantile.get()
        flags.append(i >= warm_up and threshold is not None and score > threshold)
        quantile.update(score)
        model.learn_one(x)
    return flags


def evaluate_nab_baseline(
    series: str | Path,
    windows: str | Path,
    warm_up: int = 300,
    consecutive: int = 3,
    cooldown_s: float = 900.0,
) -> NabEvaluation:
    """Judge :func:`baseline_flags` on a NAB series like :func:`evaluate_nab` judges ours."""
    times, values = read_nab_series(series)
    wins = read_windows(windows, Path(series).name)
    alerts = debounce(times, baseline_flags(values, warm_up), consecutive, cooldown_s)
    return NabEvaluation(judge_windows(alerts, wins), tuple(alerts), tuple(wins))


CMAPSS_COLUMNS = 26  # unit, cycle, setting1..3, s1..s21


def read_cmapss(
    path: str | Path, units: int | None = None
) -> dict[int, list[tuple[int, dict[str, float], dict[str, float]]]]:
    """Engines of a C-MAPSS file: ``{unit: [(cycle, settings, sensors), ...]}``.

    ``units`` keeps only the first that many engines.

    Raises
    ------
    DataError
        If the file is missing or a row does not have 26 numeric columns.
    """
    engines: dict[int, list[tuple[int, dict[str, float], dict[str, float]]]] = {}
    try:
        lines = read_text(path).splitlines()
    except OSError as exc:
        raise DataError(f"cannot read C-MAPSS file {path}: {exc.strerror}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cols = [float(c) for c in line.split()]
        except ValueError as exc:
            raise DataError(f"{path}:{n}: non-numeric column") from exc
        if len(cols) != CMAPSS_COLUMNS:
            raise DataError(f"{path}:{n}: expected {CMAPSS_COLUMNS} columns, got {len(cols)}")
        unit = int(cols[0])
        if units is not None and unit not in engines and len(engines) >= units:
            break
        settings = {f"setting{i + 1}": cols[2 + i] for i in range(3)}
        sensors = {f"s{i + 1}": cols[5 + i] for i in range(21)}
        engines.setdefault(unit, []).append((int(cols[1]), settings, sensors))
    if not engines:
        raise DataError(f"{path}: no rows")
    return engines


@dataclass(frozen=True)
class CmapssEvaluation:
    """Run-to-failure engines replayed one monitor each; fractions of engines alarmed."""

    engines: int
    alarmed_last_30: float  # an alert within the engine's last 30 cycles (detection)
    alarmed_first_50: float  # an alert within its first 50 cycles (false alarm)
