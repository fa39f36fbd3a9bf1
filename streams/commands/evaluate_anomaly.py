"""`pmaint evaluate anomaly`: replay labelled data through the per-asset anomaly monitor."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from models.anomaly_eval import evaluate_nab, shuttle_roc_auc
from models.errors import ConfigError
from models.monitor import MonitorConfig

EXAMPLES = """examples:
  pmaint evaluate anomaly --nab data/nab/machine_temperature_system_failure.csv \\
      --windows data/nab/windows.json
  pmaint evaluate anomaly --nab series.csv --windows windows.json --consecutive 12 --json
  pmaint evaluate anomaly --shuttle --json
  pmaint evaluate anomaly --shuttle --detector hst --limit 10000
"""

_DEFAULTS = MonitorConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `evaluate anomaly`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--nab", metavar="FILE", help="NAB-format series (timestamp,value CSV)")
    source.add_argument("--shuttle", action="store_true", help="river's bundled Shuttle data")
    parser.add_argument("--windows", metavar="FILE", help="NAB windows.json (with --nab)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--consecutive",
        type=int,
        default=6,
        metavar="K",
        help="anomalous records in a row that open an alert (default: 6)",
    )
    parser.add_argument(
        "--cooldown",
        type=float,
        default=6.0,
        metavar="HOURS",
        help="an alert cannot re-open within this many hours (default: 6)",
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
        help="lowest threshold in score units (default: 3 sd for deviation, 0 for hst)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="with --shuttle: first N rows only"
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print its result; returns the exit code."""
    if args.consecutive < 1 or args.cooldown < 0:
        raise ConfigError("--consecutive must be at least 1 and --cooldown not negative")
    config = MonitorConfig(
        detector=args.detector, warm_up=args.warm_up, quantile=args.quantile, floor=args.floor
    )
    if args.shuttle:
        auc = shuttle_roc_auc(config, limit=args.limit)
        text = (
            json.dumps({"roc_auc": round(auc, 4)}) if args.json else f"Shuttle ROC AUC: {auc:.4f}"
        )
        print(text)
        return 0
    if not args.windows:
        raise ConfigError("--nab needs --windows FILE")
    result = evaluate_nab(args.nab, args.windows, config, args.consecutive, args.cooldown * 3600)
    report = result.report
    if args.json:
        doc = {
            "windows_detected": report.windows_detected,
            "windows_total": report.windows_total,
            "false_alarms": report.false_alarms,
            "mean_lead_time_s": report.mean_lead_time_s,
            "alerts": [_iso(t) for t in result.alerts],
        }
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
    lead = report.mean_lead_time_s
    print(
        f"detected {report.windows_detected}/{report.windows_total} windows, mean lead time "
        + (f"{lead / 3600:.1f} h" if lead is not None else "n/a")
    )
    return 0
