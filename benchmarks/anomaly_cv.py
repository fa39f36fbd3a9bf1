"""Leave-one-category-out choice of the anomaly defaults on the NAB corpus; prints a table.

    python -m benchmarks.anomaly_cv [--corpus data/nab/corpus] [--windows FILE] [--jobs 2]

Every candidate setting of a small grid is replayed on every series through the worker's
pipeline (:func:`streams.anomaly_evaluation.nab_series`). For each category, the candidate with
the best NAB score on the *other* categories is chosen and judged on the held-out category;
the held-out rows added up are an honest estimate of the defaults on series nobody tuned them
on. The in-sample row is the candidate best on the whole corpus. The pattern detector (off by
default) joins the defaults at each of ``PATTERN_MARGINS`` as further candidates; the tables are
printed choosing without them, then among all, so the one run shows both. One set of settings
holds for all series: nothing is tuned per series.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from models.anomaly_corpus import (
    SeriesResult,
    judge_series,
    series_path,
    total,
)
from models.anomaly_eval import read_corpus_windows, read_nab_series
from models.monitor import MonitorConfig
from streams.anomaly_evaluation import nab_series
from streams.pipeline import PipelineConfig

GRID: dict[str, Sequence[Any]] = {
    "shift_settle": (0, 700),
    "seasonal_margin": (0.5, 1.0),
    "spike_margin": (0.2, 0.4),
}
# the pattern detector (off by default) joins the default settings at each of these margins
PATTERN_MARGINS = (0.1, 0.25, 0.5)
Task = tuple[str, str, dict[str, Any], list[tuple[float, float]]]


def _judge(task: Task) -> SeriesResult:
    corpus, name, values, windows = task
    times, series = read_nab_series(series_path(Path(corpus), name))
    config = PipelineConfig(monitor=_monitor(values))
    alerts, _ = nab_series(name, times, series, config)
    return judge_series(name, times, alerts, windows)


def _monitor(values: dict[str, Any]) -> MonitorConfig:
    """The defaults with ``values``; a ``pattern_margin`` turns the pattern detector on."""
    config = replace(MonitorConfig(), **values)
    if "pattern_margin" in values:
        config = replace(config, detectors=(*config.detectors, "pattern"))
    return config


def main(argv: list[str] | None = None) -> int:
    """Run the grid, choose per held-out category, print the tables and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", default="data/nab/corpus")
    parser.add_argument("--windows", default="data/nab/corpus_windows.json")
    parser.add_argument("--jobs", type=int, default=2)
    args, _ = parser.parse_known_args(argv)
    windows = read_corpus_windows(args.windows)
    candidates = [
        dict(zip(GRID, combo, strict=True)) for combo in itertools.product(*GRID.values())
    ] + [{"pattern_margin": m} for m in PATTERN_MARGINS]
    tasks = [(args.corpus, n, c, windows[n]) for c in candidates for n in sorted(windows)]
    with Pool(args.jobs) as pool:
        judged = pool.map(_judge, tasks)
    per = len(windows)
    runs = [judged[i * per : (i + 1) * per] for i in range(len(candidates))]
    categories = sorted({n.split("/")[0] for n in windows})

    without = [i for i, c in enumerate(candidates) if "pattern_margin" not in c]
    print("Without the pattern detector:\n")
    ho_without = _held_out(runs, candidates, categories, without)
    print("\nWith it (pattern candidates added):\n")
    ho = _held_out(runs, candidates, categories, list(range(len(candidates))))
    best_all = max(range(len(candidates)), key=lambda i: total(runs[i])["nab_score"])
    best_without = max(without, key=lambda i: total(runs[i])["nab_score"])
    ins, ins_without = total(runs[best_all]), total(runs[best_without])
    print(_row("**all, in sample**", _short(candidates[best_all]), ins))
    print(
        _row("**all, in sample, without pattern**", _short(candidates[best_without]), ins_without)
    )
    print("\n| candidate | | windows | false alarms | NAB |\n|---|---|---|---|---|")
    for c, run in zip(candidates, runs, strict=True):
        print(_row(_short(c), "", total(run)))
    line = {
        "name": "anomaly_cv",
        "held_out": ho,
        "in_sample": ins,
        "chosen": candidates[best_all],
        "held_out_without_pattern": ho_without,
        "in_sample_without_pattern": ins_without,
    }
    print(json.dumps(line))
    return 0


def _held_out(
    runs: list[list[SeriesResult]],
    candidates: list[dict[str, Any]],
    categories: list[str],
    allowed: list[int],
) -> dict[str, Any]:
    """Print the held-out table choosing among ``allowed`` candidates; the held-out total."""
    held_out: list[SeriesResult] = []
    print("| held-out category | chosen on the others | windows | false alarms | NAB |")
    print("|---|---|---|---|---|")
    for cat in categories:
        others = [c for c in categories if c != cat]
        best = max(allowed, key=lambda i: _total(runs[i], others)["nab_score"])
        chosen = [r for r in runs[best] if r.name.startswith(cat + "/")]
        held_out += chosen
        print(_row(cat, _short(candidates[best]), total(chosen)))
    print(_row("**all, held out**", "", total(held_out)))
    return total(held_out)


def _total(results: list[SeriesResult], categories: list[str]) -> dict[str, Any]:
    return total(r for r in results if r.name.split("/")[0] in categories)


def _row(name: str, chosen: str, t: dict[str, Any]) -> str:
    nab = t["nab_score"] if t["windows_total"] else "–"  # no windows: NAB's scale is undefined
    return (
        f"| {name} | {chosen} | {t['windows_detected']}/{t['windows_total']} "
        f"| {t['false_alarms']} | {nab} |"
    )


def _short(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


if __name__ == "__main__":
    raise SystemExit(main())
