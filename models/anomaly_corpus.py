"""A labelled NAB corpus (``<category>/<series>.csv``) judged series by series, then in total.

Every series is replayed through a fresh detector (a function from ``(times, values)`` to alert
times); its alerts are judged with :func:`models.metrics.judge_windows` (an alert inside a
window detects it, every alert outside all windows is a false alarm) and scored with NAB's
standard profile (:mod:`models.nab_score`). Published detectors' flagged timestamps are turned
into alerts the same way the issue's comparison did (each run of flags one alert, none within
``cooldown_s`` of the previous one, none in the first ``warm_up`` records) and judged alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.anomaly_eval import debounce, parse_time, read_nab_series
from models.datafiles import read_bytes
from models.errors import DataError
from models.metrics import judge_windows
from models.nab_score import SeriesScore, normalised, probation_end, score_series

Detector = Callable[[Sequence[float], Sequence[float]], Sequence[float]]
Windows = list[tuple[float, float]]


@dataclass(frozen=True)
class SeriesResult:
    """One series' alerts judged against its windows."""

    name: str
    alerts: tuple[float, ...]
    windows: tuple[tuple[float, float], ...]
    windows_detected: int
    false_alarms: int
    nab: SeriesScore

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows_detected": self.windows_detected,
            "windows_total": len(self.windows),
            "false_alarms": self.false_alarms,
        }


def total(results: Iterable[SeriesResult]) -> dict[str, Any]:
    """Totals over series: windows detected and total, false alarms, normalised NAB score.

    >>> r = judge_series("a", [0.0, 1.0, 2.0, 3.0], [2.5, 3.5], [(2.0, 3.0)], probation=0.0)
    >>> total([r])
    {'windows_detected': 1, 'windows_total': 1, 'false_alarms': 1, 'nab_score': 88.34}
    """
    items = list(results)
    return {
        "windows_detected": sum(r.windows_detected for r in items),
        "windows_total": sum(len(r.windows) for r in items),
        "false_alarms": sum(r.false_alarms for r in items),
        "nab_score": round(normalised(r.nab for r in items), 2),
    }


def judge_series(
    name: str,
    times: Sequence[float],
    alerts: Sequence[float],
    windows: Sequence[tuple[float, float]],
    probation: float | None = None,
) -> SeriesResult:
    """Judge one series' alerts (``probation``: NAB's probationary end, computed if None)."""
    report = judge_windows(alerts, windows)
    end = probation_end(times) if probation is None else probation
    return SeriesResult(
        name,
        tuple(alerts),
        tuple(windows),
        report.windows_detected,
        report.false_alarms,
        score_series(alerts, windows, end),
    )


def series_path(corpus: Path, name: str) -> Path:
    """The file of series ``name`` under ``corpus`` (plain or ``.gz``).

    Raises
    ------
    DataError
        If neither exists.
    """
    for candidate in (corpus / name, corpus / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{corpus}: series {name} listed in the windows file is missing")


def evaluate_corpus(
    corpus: str | Path,
    windows: Mapping[str, Windows],
    detector: Detector,
    names: Iterable[str] | None = None,
) -> list[SeriesResult]:
    """Run ``detector`` on every series of ``windows`` (or of ``names``) and judge it."""
    results = []
    for name in sorted(names if names is not None else windows):
        times, values = read_nab_series(series_path(Path(corpus), name))
        alerts = detector(times, values)
        results.append(judge_series(name, times, alerts, windows[name]))
    return results


def reference_alerts(
    flagged: Sequence[str], times: Sequence[float], warm_up: int = 300, cooldown_s: float = 900.0
) -> list[float]:
    """Alerts of a published detector from its flagged timestamps (see the module doc).

    >>> reference_alerts(["1970-01-01 00:00:02", "1970-01-01 00:00:03"], [1.0, 2.0, 3.0], 0)
    [2.0]
    """
    marked = {parse_time(t) for t in flagged}
    flags = [t in marked for t in times]
    alerts = debounce(times, flags, 1, cooldown_s)
    return [t for t in alerts if t > times[warm_up - 1]] if 0 < warm_up <= len(times) else alerts


def evaluate_references(
    corpus: str | Path, windows: Mapping[str, Windows], path: str | Path
) -> dict[str, list[SeriesResult]]:
    """Judge every published detector of a ``reference_detections.json`` on the corpus.

    Raises
    ------
    DataError
        If the file is missing or malformed.
    """
    try:
        doc = json.loads(read_bytes(path))
        detectors = {name: d["flagged"] for name, d in doc.items()}
    except OSError as exc:
        raise DataError(f"cannot read reference detections {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected {{detector: {{'flagged': {{series: [...]}}}}}}") from exc
    out: dict[str, list[SeriesResult]] = {name: [] for name in detectors}
    for name in sorted(windows):
        times, _ = read_nab_series(series_path(Path(corpus), name))
        for detector, flagged in detectors.items():
            alerts = reference_alerts(flagged.get(name, []), times)
            out[detector].append(judge_series(name, times, alerts, windows[name]))
    return out
