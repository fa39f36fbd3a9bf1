"""Leave-one-category-out choice of the anomaly defaults on the NAB corpus; prints a table.

    python -m benchmarks.anomaly_cv [--corpus data/nab/corpus] [--windows FILE] [--jobs 2]

Every candidate setting of a small grid is replayed on every series through the worker's
pipeline (:func:`streams.anomaly_evaluation.nab_series`). For each category, a candidate is
chosen on the *other* categories and judged on the held-out category; the held-out rows added
up are an honest estimate of the defaults on series nobody tuned them on. The in-sample row is
the candidate chosen on the whole corpus. One set of settings holds for all series: nothing is
tuned per series.

The choice prefers fewer false alarms over one more window: of the candidates within
``--tolerance`` NAB points (1.0, about one window of 101) of the best NAB score, the one with
the fewest false alarms (then the best score) is chosen. The grid's ``flatline`` and ``level``
turn those detectors off or on, with the pattern detector off; it joins the defaults at each of
``PATTERN`` (margin, history) as further candidates; the tables are printed choosing without
them, then among all, so one run shows both.
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
from models.monitor_config import MonitorConfig
from streams.anomaly_evaluation import nab_series
from streams.core.pipeline import PipelineConfig

GRID: dict[str, Sequence[Any]] = {
    "deviation_history": (0.0, 1.25, 1.5),
    "variance_history": (0.0, 1.0),
    "flatline": (False, True),  # the flatline detector off or on (see _monitor)
    "level": (False, True),  # the level detector off or on
    "pattern": (False,),  # the pattern detector off: it joins at PATTERN's settings
}
# the pattern detector joins the defaults at these (margin, history) settings
PATTERN = ((0.25, 1.0), (0.3, 1.0), (0.5, 1.0))
Task = tuple[str, str, dict[str, Any], list[tuple[float, float]]]


def _judge(task: Task) -> SeriesResult:
    corpus, name, values, windows = task
    times, series = read_nab_series(series_path(Path(corpus), name))
    config = PipelineConfig(monitor=_monitor(values))
    alerts, _ = nab_series(name, times, series, config)
    return judge_series(name, times, alerts, windows)


def _monitor(values: dict[str, Any]) -> MonitorConfig:
    """The defaults with ``values``; a ``pattern_margin`` turns the pattern detector on, a
    ``flatline``, ``level`` or ``pattern`` turns that detector on (True) or off (False).

    >>> _monitor({"pattern_margin": 0.1}).detectors[-3:]
    ('flatline', 'level', 'pattern')
    >>> "flatline" in _monitor({"flatline": False}).detectors
    False
    >>> _monitor({"level": False, "pattern": False}).detectors[-2:]
    ('seasonal', 'flatline')
    """
    switches = ("flatline", "level", "pattern")
    settings = {k: v for k, v in values.items() if k not in switches}
    config = replace(MonitorConfig(), **settings)
    detectors = tuple(d for d in config.detectors if d not in switches)
    for name in switches:
        if values.get(name, name in config.detectors):
            detectors += (name,)
    if "pattern_margin" in values and "pattern" not in detectors:
        detectors += ("pattern",)
    return replace(config, detectors=detectors)


def main(argv: list[str] | None = None) -> int:
    """Run the grid, choose per held-out category, print the tables and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", default="data/nab/corpus")
    parser.add_argument("--windows", default="data/nab/corpus_windows.json")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1.0)
    args, _ = parser.parse_known_args(argv)
    windows = read_corpus_windows(args.windows)
    candidates = [
        dict(zip(GRID, combo, strict=True)) for combo in itertools.product(*GRID.values())
    ]
    candidates += [{"pattern_margin": m, "pattern_history": h} for m, h in PATTERN]
    tasks = [(args.corpus, n, c, windows[n]) for c in candidates for n in sorted(windows)]
    with Pool(args.jobs) as pool:
        judged = pool.map(_judge, tasks)
    per = len(windows)
    runs = [judged[i * per : (i + 1) * per] for i in range(len(candidates))]
    categories = sorted({n.split("/")[0] for n in windows})

    without = [i for i, c in enumerate(candidates) if "pattern_margin" not in c]
    line: dict[str, Any] = {"name": "anomaly_cv"}
    for label, allowed in (("without_pattern", without), ("", list(range(len(candidates))))):
        print(f"\nChoosing among {'all candidates' if not label else 'those without pattern'}:\n")
        held_out: list[SeriesResult] = []
        print("| held-out category | chosen on the others | windows | false alarms | NAB |")
        print("|---|---|---|---|---|")
        for cat in categories:
            others = [c for c in categories if c != cat]
            best = allowed[_choose([_total(runs[i], others) for i in allowed], args.tolerance)]
            chosen = [r for r in runs[best] if r.name.startswith(cat + "/")]
            held_out += chosen
            print(_row(cat, _short(candidates[best]), total(chosen)))
        best_all = allowed[_choose([total(runs[i]) for i in allowed], args.tolerance)]
        ho, ins = total(held_out), total(runs[best_all])
        print(_row("**all, held out**", "", ho))
        print(_row("**all, in sample**", _short(candidates[best_all]), ins))
        suffix = f"_{label}" if label else ""
        line |= {f"held_out{suffix}": ho, f"in_sample{suffix}": ins}
        line[f"chosen{suffix}"] = candidates[best_all]
    print("\n| candidate | | windows | false alarms | NAB |\n|---|---|---|---|---|")
    for c, run in zip(candidates, runs, strict=True):
        print(_row(_short(c), "", total(run)))
    print(json.dumps(line))
    return 0


def _choose(totals: list[dict[str, Any]], tolerance: float) -> int:
    """Index of the chosen candidate: the fewest false alarms (then the best NAB score) among
    those within ``tolerance`` NAB points of the best.

    >>> _choose([{"nab_score": 71.0, "false_alarms": 69}, {"nab_score": 70.4, "false_alarms": 54},
    ...          {"nab_score": 69.0, "false_alarms": 20}], 1.0)
    1
    """
    top = max(t["nab_score"] for t in totals)
    near = [i for i, t in enumerate(totals) if t["nab_score"] >= top - tolerance]
    return min(near, key=lambda i: (totals[i]["false_alarms"], -totals[i]["nab_score"]))


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
