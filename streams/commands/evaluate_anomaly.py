"""`pmaint evaluate anomaly`: replay labelled data through the per-asset anomaly monitor."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from models.anomaly_corpus import SeriesResult
from models.anomaly_eval import evaluate_nab_baseline, replay_series, shuttle_roc_auc
from models.errors import ConfigError
from models.intervals import IntervalReport
from models.monitor_config import DETECTORS, MonitorConfig
from models.policy import DetectorPolicy
from streams.anomaly_evaluation import (
    KindTally,
    evaluate_cmapss_engines,
    evaluate_history,
    evaluate_labelled_csv,
    evaluate_nab_corpus,
    evaluate_nab_file,
)
from streams.core.alert_policy import AlertPolicy
from streams.core.pipeline import PipelineConfig
from streams.plots import pyplot, save_figure

EXAMPLES = """examples:
  pmaint evaluate anomaly --nab-corpus data/nab/corpus --windows data/nab/corpus_windows.json \\
      --reference data/nab/reference_detections.json --json
  pmaint evaluate anomaly --nab data/nab/machine_temperature_system_failure.csv \\
      --windows data/nab/windows.json
  pmaint evaluate anomaly --csv pump1.csv pump2.csv --time-column time --label-column fault \\
      --ignore-columns batch --delimiter ';' --json
  pmaint evaluate anomaly --history plant.jsonl.gz --events maintenance.csv --json
  pmaint evaluate anomaly --shuttle --json
  pmaint evaluate anomaly --cmapss data/cmapss/train_FD001.txt --json
  pmaint evaluate anomaly --nab-corpus DIR --windows FILE --policy policy.toml

Every series, file or engine is replayed as one fresh asset through the worker's own pipeline
(the same detectors, policy by kind, policy file and alert engine), and the anomaly alerts it
opens are judged: an alert inside a labelled window detects it, every other alert is a false
alarm. nab_score is NAB's standard-profile score (0 = no detections, 100 = perfect). --csv
files: one asset per file, every numeric column but the time and label columns a sensor; each
run of label 1 is an event. C-MAPSS runs replay each run-to-failure engine (event time = cycle
x 60 s, warm-up --cmapss-warm-up records) and report the share of engines alarmed in their last
30 cycles and, as false alarms, in their first 50. The policy file defaults to
PMAINT_POLICY_FILE.
"""

_DEFAULTS = MonitorConfig()
_POLICY = AlertPolicy()  # the worker's defaults (PMAINT_ALERT_COOLDOWN_S)
CMAPSS_WARM_UP = 30  # the service's 300 would cover most of a 128-362 cycle engine life
_BASELINE_CONSECUTIVE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `evaluate anomaly`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--nab", metavar="FILE", help="NAB-format series (timestamp,value CSV)")
    source.add_argument(
        "--nab-corpus", metavar="DIR", help="NAB corpus: <category>/<series>.csv under DIR"
    )
    source.add_argument("--csv", nargs="+", metavar="FILE", help="labelled multivariate CSVs")
    source.add_argument(
        "--history", nargs="+", type=Path, metavar="FILE",
        help="a plant's telemetry history (.jsonl, .csv, C-MAPSS .txt; .gz too), with --events",
    )  # fmt: skip
    source.add_argument("--shuttle", action="store_true", help="river's bundled Shuttle data")
    source.add_argument(
        "--cmapss", metavar="FILE", help="C-MAPSS run-to-failure file (e.g. train_FD001.txt)"
    )
    parser.add_argument("--windows", metavar="FILE", help="NAB windows JSON (--nab, --nab-corpus)")
    parser.add_argument(
        "--reference", metavar="FILE", help="with --nab-corpus: published detectors' flags"
    )
    parser.add_argument("--time-column", metavar="COL", help="with --csv: event time column")
    parser.add_argument("--label-column", metavar="COL", help="with --csv: 0/1 label column")
    parser.add_argument(
        "--ignore-columns", default="", metavar="A,B", help="with --csv: columns that are no sensor"
    )
    parser.add_argument("--delimiter", default=",", help="with --csv: field delimiter (default ,)")
    parser.add_argument(
        "--events", type=Path, metavar="FILE",
        help="with --history: events CSV whose rows asset_id,abnormal,start,end label intervals",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="TOML detector policy file")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="with --nab: value, score and alerts"
    )
    parser.add_argument(
        "--detectors",
        default=",".join(_DEFAULTS.detectors),
        metavar="K,K",
        help=f"detectors that alarm (default: {','.join(_DEFAULTS.detectors)})",
    )
    parser.add_argument(
        "--consecutive",
        type=int,
        default=_DEFAULTS.debounce,
        metavar="K",
        help=f"records in a row a sustained deviation needs (default: {_DEFAULTS.debounce})",
    )
    parser.add_argument(
        "--cooldown",
        type=float,
        default=_POLICY.cooldown_s / 3600,
        metavar="HOURS",
        help=f"no alert re-opens within this many hours (default: {_POLICY.cooldown_s / 3600:g})",
    )
    parser.add_argument(
        "--detector",
        choices=("deviation", "hst"),
        default=_DEFAULTS.detector,
        help=f"slow-deviation scorer (default: {_DEFAULTS.detector})",
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=_DEFAULTS.warm_up,
        metavar="N",
        help=f"records learned before any alarm (default: {_DEFAULTS.warm_up})",
    )
    parser.add_argument(
        "--quantile",
        type=float,
        default=_DEFAULTS.quantile,
        help=f"adaptive threshold quantile (default: {_DEFAULTS.quantile})",
    )
    parser.add_argument(
        "--floor",
        type=float,
        default=_DEFAULTS.floor,
        help="lowest threshold in score units (default: 2.5 sd for deviation, 0 for hst)",
    )
    parser.add_argument(
        "--aggregate",
        choices=("max", "mean", "rms", "top2"),
        default=_DEFAULTS.aggregate,
        help=f"how the deviation scorer combines sensors (default: {_DEFAULTS.aggregate})",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="with --shuttle: first N rows only; with --cmapss: first N engines only",
    )
    parser.add_argument(
        "--cmapss-warm-up",
        type=int,
        default=CMAPSS_WARM_UP,
        metavar="N",
        help=f"with --cmapss: warm-up records per engine (default: {CMAPSS_WARM_UP})",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="with --nab: skip the river baseline"
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def _config(args: argparse.Namespace) -> PipelineConfig:
    """The pipeline settings: command-line overrides, then the policy file's rules."""
    if args.consecutive < 1 or args.cooldown < 0:
        raise ConfigError("--consecutive must be at least 1 and --cooldown not negative")
    detectors = tuple(d for d in args.detectors.split(",") if d)
    unknown = set(detectors) - set(DETECTORS)
    if unknown:
        raise ConfigError(f"--detectors: unknown {sorted(unknown)}; known: {', '.join(DETECTORS)}")
    monitor = MonitorConfig(
        detector=args.detector,
        aggregate=args.aggregate,
        warm_up=args.cmapss_warm_up if args.cmapss else args.warm_up,
        quantile=args.quantile,
        floor=args.floor,
        detectors=detectors,
        debounce=args.consecutive,
    )
    policy_file = args.policy
    if policy_file is None:
        from streams.settings import load_settings

        policy_file = load_settings().policy_file
    return PipelineConfig(
        monitor=monitor,
        policy=replace(_POLICY, cooldown_s=args.cooldown * 3600),
        detectors=DetectorPolicy.load(policy_file, monitor) if policy_file else None,
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print its result; returns the exit code."""
    config = _config(args)
    if args.cmapss_warm_up < 0:
        raise ConfigError("--cmapss-warm-up must not be negative")
    if args.cmapss:
        result = evaluate_cmapss_engines(args.cmapss, config, units=args.limit)
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(
                f"{result.engines} engines: {result.alarmed_last_30:.0%} alarmed in their last "
                f"30 cycles, {result.alarmed_first_50:.0%} in their first 50 (false alarms)"
            )
        return 0
    if args.shuttle:
        auc = shuttle_roc_auc(config.monitor, limit=args.limit)
        print(
            json.dumps({"roc_auc": round(auc, 4)}) if args.json else f"Shuttle ROC AUC: {auc:.4f}"
        )
        return 0
    if args.csv:
        return _run_csv(args, config)
    if args.history:
        if not args.events:
            raise ConfigError("--history needs --events FILE (its abnormal rows are the labels)")
        return _print_report(evaluate_history(args.history, args.events, config), args.json)
    if not args.windows:
        raise ConfigError("--nab and --nab-corpus need --windows FILE")
    if args.nab_corpus:
        return _run_corpus(args, config)
    return _run_nab(args, config)


def _run_csv(args: argparse.Namespace, config: PipelineConfig) -> int:
    if not args.time_column or not args.label_column:
        raise ConfigError("--csv needs --time-column COL and --label-column COL")
    ignore = [c.strip() for c in args.ignore_columns.split(",") if c.strip()]
    report = evaluate_labelled_csv(
        args.csv, args.time_column, args.label_column, config, ignore, args.delimiter
    )
    return _print_report(report, args.json)


def _print_report(report: IntervalReport, as_json: bool) -> int:
    doc = report.to_dict()
    if as_json:
        print(json.dumps(doc))
    else:
        for key, value in doc.items():
            print(f"{key}: {value}")
    return 0


def _run_corpus(args: argparse.Namespace, config: PipelineConfig) -> int:
    doc, tally = evaluate_nab_corpus(args.nab_corpus, args.windows, config, args.reference)
    if args.json:
        print(json.dumps(doc))
        return 0
    for name, r in doc["series"].items():
        print(
            f"{name}: {r['windows_detected']}/{r['windows_total']} windows, "
            f"{r['false_alarms']} false alarms"
        )
    print(f"pmaint: {_totals(doc['total'])}")
    for name, t in doc.get("reference", {}).items():
        print(f"{name}: {_totals(t)}")
    print(_kind_lines(tally))
    return 0


def _totals(t: dict[str, object]) -> str:
    return (
        f"{t['windows_detected']}/{t['windows_total']} windows, {t['false_alarms']} false "
        f"alarms, NAB score {t['nab_score']}"
    )


def _kind_lines(tally: KindTally) -> str:
    rows = [f"  {k}: {v['windows_detected']} windows, {v['false_alarms']} false alarms"
            for k, v in tally.to_dict().items()]  # fmt: skip
    return "\n".join(["by kind (the detector whose alert came first):", *rows])


def _run_nab(args: argparse.Namespace, config: PipelineConfig) -> int:
    result, kinds = evaluate_nab_file(args.nab, args.windows, config)
    base = None
    if not args.no_baseline:
        base = evaluate_nab_baseline(
            args.nab, args.windows, args.warm_up, _BASELINE_CONSECUTIVE, config.policy.cooldown_s
        ).report
    if args.plot:
        plot(args.nab, result, config.monitor, args.plot)
    leads = [b - next(t for t in result.alerts if a <= t <= b)
             for a, b in result.windows if any(a <= t <= b for t in result.alerts)]  # fmt: skip
    lead = sum(leads) / len(leads) if leads else None
    if args.json:
        doc: dict[str, object] = {
            **result.to_dict(),
            "mean_lead_time_s": lead,
            "alerts": [_iso(t) for t in result.alerts],
            "kinds": [kinds.get(t, "") for t in result.alerts],
        }
        if base is not None:
            doc["baseline"] = {
                "windows_detected": base.windows_detected,
                "windows_total": base.windows_total,
                "false_alarms": base.false_alarms,
                "mean_lead_time_s": base.mean_lead_time_s,
            }
        print(json.dumps(doc))
        return 0
    for start, end in result.windows:
        hits = [t for t in result.alerts if start <= t <= end]
        status = (
            f"detected at {_iso(hits[0])} ({kinds.get(hits[0], '')}), "
            f"{(end - hits[0]) / 3600:.1f} h before the window end"
            if hits
            else "missed"
        )
        print(f"window {_iso(start)} .. {_iso(end)}: {status}")
    false = [t for t in result.alerts if not any(a <= t <= b for a, b in result.windows)]
    named = ", ".join(f"{_iso(t)} {kinds.get(t, '')}" for t in false)
    listed = f" ({named})" if false else ""
    print(f"false alarms: {len(false)}{listed}")
    print(f"detected {_line(result, lead)}")
    if base is not None:
        print(
            "baseline (MinMaxScaler | HalfSpaceTrees, 99.5% quantile, "
            f"{_BASELINE_CONSECUTIVE} in a row): {base.windows_detected}/{base.windows_total} "
            f"windows, {base.false_alarms} false alarms"
        )
    return 0


def _line(result: SeriesResult, lead: float | None) -> str:
    return (
        f"{result.windows_detected}/{len(result.windows)} windows, "
        f"{result.false_alarms} false alarms, mean lead time "
        + (f"{lead / 3600:.1f} h" if lead is not None else "n/a")
    )


def plot(series: str | Path, result: SeriesResult, monitor: MonitorConfig, path: Path) -> None:
    """The series, the slow-deviation score against its adaptive threshold, the labelled
    windows and the alerts."""
    plt = pyplot()
    import matplotlib.dates as mdates

    from models.anomaly_eval import read_nab_series

    times, values = read_nab_series(series)
    replay = replay_series(times, values, monitor)
    when = [datetime.fromtimestamp(t, UTC) for t in times]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    top.plot(when, values, lw=0.6, color="0.3", label="value")
    bottom.plot(when, replay.scores, lw=0.6, label="deviation score")
    bottom.plot(when, replay.thresholds, "--", lw=1, label="adaptive threshold")
    for ax in (top, bottom):
        for i, (start, end) in enumerate(result.windows):
            ax.axvspan(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC),
                color="tab:orange", alpha=0.2, label="labelled window" if i == 0 else None,
            )  # fmt: skip
        for i, t in enumerate(result.alerts):
            ax.axvline(
                datetime.fromtimestamp(t, UTC), color="red", lw=1,
                label="alert" if i == 0 else None,
            )  # fmt: skip
    top.set_ylabel("value")
    bottom.set_ylabel("score (sd)")
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
    top.set_title(f"NAB replay: {_line(result, None)}")
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)
