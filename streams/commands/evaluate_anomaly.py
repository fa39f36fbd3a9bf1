"""`pmaint evaluate anomaly`: replay labelled data through the per-asset anomaly monitor."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from models.anomaly_eval import (
    NabEvaluation,
    evaluate_cmapss,
    evaluate_nab,
    evaluate_nab_baseline,
    shuttle_roc_auc,
)
from models.errors import ConfigError
from models.monitor import MonitorConfig
from streams.alerts import AlertPolicy
from streams.plots import pyplot, save_figure

EXAMPLES = """examples:
  pmaint evaluate anomaly --nab data/nab/machine_temperature_system_failure.csv \\
      --windows data/nab/windows.json
  pmaint evaluate anomaly --nab series.csv --windows windows.json --consecutive 6 --json
  pmaint evaluate anomaly --nab series.csv --windows windows.json --quantile 0.99 --floor 3
  pmaint evaluate anomaly --shuttle --json
  pmaint evaluate anomaly --shuttle --detector hst --limit 10000
  pmaint evaluate anomaly --cmapss CMAPSSData/train_FD001.txt --json
  pmaint evaluate anomaly --cmapss train_FD001.txt --aggregate mean --floor 1.0

Alerts are debounced like the worker's default alert policy: one opens after --consecutive
anomalous records in a row and not within --cooldown of the previous one. NAB runs also report
an untuned river baseline (MinMaxScaler | HalfSpaceTrees, 99.5% running quantile threshold,
alert after 3 records in a row) on the same file. C-MAPSS runs replay each
run-to-failure engine through its own monitor (event time = cycle x 60 s) with a warm-up of
--cmapss-warm-up records (engines live only 128-362 cycles), and report the share of engines
alarmed in their last 30 cycles and, as false alarms, in their first 50.
"""

_DEFAULTS = MonitorConfig()
_POLICY = AlertPolicy()  # the worker's defaults (PMAINT_ALERT_DEBOUNCE_RECORDS, ..._COOLDOWN_S)
CMAPSS_WARM_UP = 30  # the service's 300 would cover most of a 128-362 cycle engine life
_BASELINE_CONSECUTIVE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `evaluate anomaly`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--nab", metavar="FILE", help="NAB-format series (timestamp,value CSV)")
    source.add_argument("--shuttle", action="store_true", help="river's bundled Shuttle data")
    source.add_argument(
        "--cmapss", metavar="FILE", help="C-MAPSS run-to-failure file (e.g. train_FD001.txt)"
    )
    parser.add_argument("--windows", metavar="FILE", help="NAB windows.json (with --nab)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="with --nab: value, score and alerts"
    )
    parser.add_argument(
        "--consecutive",
        type=int,
        default=_POLICY.debounce_records,
        metavar="K",
        help=f"anomalous records in a row that open an alert (default: {_POLICY.debounce_records})",
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
        help=f"anomaly scorer (default: {_DEFAULTS.detector})",
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


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print its result; returns the exit code."""
    if args.consecutive < 1 or args.cooldown < 0:
        raise ConfigError("--consecutive must be at least 1 and --cooldown not negative")
    config = MonitorConfig(
        detector=args.detector,
        aggregate=args.aggregate,
        warm_up=args.warm_up,
        quantile=args.quantile,
        floor=args.floor,
    )
    if args.cmapss:
        return _run_cmapss(args, config)
    if args.shuttle:
        auc = shuttle_roc_auc(config, limit=args.limit)
        text = (
            json.dumps({"roc_auc": round(auc, 4)}) if args.json else f"Shuttle ROC AUC: {auc:.4f}"
        )
        print(text)
        return 0
    if not args.windows:
        raise ConfigError("--nab needs --windows FILE")
    cooldown_s = args.cooldown * 3600
    result = evaluate_nab(args.nab, args.windows, config, args.consecutive, cooldown_s)
    base = (
        None
        if args.no_baseline
        else evaluate_nab_baseline(
            args.nab, args.windows, args.warm_up, _BASELINE_CONSECUTIVE, cooldown_s
        )
    )
    if args.plot:
        plot(result, args.plot)
    if args.json:
        doc: dict[str, object] = {
            **_summary(result),
            "alerts": [_iso(t) for t in result.alerts],
        }
        if base is not None:
            doc["baseline"] = _summary(base)
        print(json.dumps(doc))
        return 0
    for start, end in result.windows:
        hits = [t for t in result.alerts if start <= t <= end]
        status = (
            f"detected at {_iso(hits[0])}, {(end - hits[0]) / 3600:.1f} h before the window end"
            if hits
            else "missed"
        )
        print(f"window {_iso(start)} .. {_iso(end)}: {status}")
    false = [t for t in result.alerts if not any(a <= t <= b for a, b in result.windows)]
    listed = f" ({', '.join(_iso(t) for t in false)})" if false else ""
    print(f"false alarms: {len(false)}{listed}")
    print(f"detected {_line(result)}")
    if base is not None:
        print(
            "baseline (MinMaxScaler | HalfSpaceTrees, 99.5% quantile, "
            f"{_BASELINE_CONSECUTIVE} in a row): {_line(base)}"
        )
    return 0


def _summary(result: NabEvaluation) -> dict[str, object]:
    report = result.report
    return {
        "windows_detected": report.windows_detected,
        "windows_total": report.windows_total,
        "false_alarms": report.false_alarms,
        "mean_lead_time_s": report.mean_lead_time_s,
    }


def _line(result: NabEvaluation) -> str:
    report = result.report
    lead = report.mean_lead_time_s
    return (
        f"{report.windows_detected}/{report.windows_total} windows, "
        f"{report.false_alarms} false alarms, mean lead time "
        + (f"{lead / 3600:.1f} h" if lead is not None else "n/a")
    )


def _run_cmapss(args: argparse.Namespace, config: MonitorConfig) -> int:
    if args.cmapss_warm_up < 0:
        raise ConfigError("--cmapss-warm-up must not be negative")
    config = replace(config, warm_up=args.cmapss_warm_up)
    result = evaluate_cmapss(
        args.cmapss, config, args.consecutive, args.cooldown * 3600, units=args.limit
    )
    if args.json:
        print(json.dumps(asdict(result)))
        return 0
    print(
        f"{result.engines} engines: {result.alarmed_last_30:.0%} alarmed in their last 30 cycles, "
        f"{result.alarmed_first_50:.0%} in their first 50 (false alarms)"
    )
    return 0


def plot(result: NabEvaluation, path: Path) -> None:
    """The series, its anomaly score against the adaptive threshold, the labelled windows and
    the debounced alerts."""
    plt = pyplot()
    import matplotlib.dates as mdates

    assert result.replay is not None
    when = [datetime.fromtimestamp(t, UTC) for t in result.times]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    top.plot(when, result.values, lw=0.6, color="0.3", label="value")
    bottom.plot(when, result.replay.scores, lw=0.6, label="anomaly score")
    bottom.plot(when, result.replay.thresholds, "--", lw=1, label="adaptive threshold")
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
    top.set_title(f"NAB replay: {_line(result)}")
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)
