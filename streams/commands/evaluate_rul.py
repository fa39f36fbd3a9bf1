"""``pmaint evaluate rul``: score a RUL model on the last window of each test engine or asset.

Test data is C-MAPSS (``--data`` or ``--test`` + ``--rul``) or a plant's history with its
maintenance log (``--history`` + ``--events``): each asset is forecast at its last record and
scored against the failure that ended that life; assets with no failure after their last record
(right-censored) are counted but not scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from models.errors import ConfigError, DataError
from models.features import SETTINGS
from models.rul.data import SUBSETS, Run, cmapss_paths, read_cmapss_test
from models.rul.device import DEVICES
from models.rul.lives import Columns, label_lives
from models.rul.serve import Evaluation, RulPredictor, evaluate
from streams.history_files import read_events, read_history
from streams.plots import pyplot, save_figure

EXAMPLES = """examples:
  pmaint evaluate rul --model artifacts/rul-fd001 --data ~/CMAPSSData --subset FD001
  pmaint evaluate rul --model artifacts/rul-fd001 --test test_FD001.txt --rul RUL_FD001.txt --json
  pmaint evaluate rul --model artifacts/rul-fd001 --data ~/CMAPSSData --plot rul.png
  pmaint evaluate rul --model artifacts/rul-pumps --history plant/2026.csv --events events.csv

Each test engine is scored on its last window against its true RUL as given in the RUL file;
*_capped metrics cap the truth at the model's training cap (the piecewise-linear protocol)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint evaluate rul``."""
    parser.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact dir")
    parser.add_argument("--data", type=Path, metavar="DIR", help="CMAPSSData directory")
    parser.add_argument("--subset", default="FD001", choices=SUBSETS, help="with --data")
    parser.add_argument("--test", type=Path, metavar="FILE", help="test_FD00x.txt")
    parser.add_argument("--rul", type=Path, metavar="FILE", help="RUL_FD00x.txt")
    parser.add_argument("--history", type=Path, nargs="+", metavar="FILE", help="history files")
    parser.add_argument("--events", type=Path, metavar="FILE", help="maintenance log (CSV)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a plot")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")


def _sources(args: argparse.Namespace) -> tuple[Path, Path] | None:
    """The C-MAPSS ``(test, RUL)`` files, or None for ``--history``."""
    given = [args.data is not None, args.test is not None or args.rul is not None,
             args.history is not None]  # fmt: skip
    if sum(given) != 1:
        raise ConfigError(
            "give one of --data DIR (with --subset), --test FILE --rul FILE, "
            "or --history FILE --events FILE"
        )
    if args.events is not None and args.history is None:
        raise ConfigError("--events goes with --history")
    if args.data is not None:
        _, test, rul = cmapss_paths(args.data, args.subset)
        return test, rul
    if args.history is not None:
        if args.events is None:
            raise ConfigError("--history needs --events FILE (the maintenance log)")
        return None
    if args.test is None or args.rul is None:
        raise ConfigError("give both --test FILE and --rul FILE")
    return args.test, args.rul


def history_runs(predictor: RulPredictor, paths: list[Path], events: Path) -> tuple[list[Run], int]:
    """Each asset's last life when a failure ended it (-> runs), and how many were censored."""
    meta = predictor.metadata
    norm = meta.normalizer
    settings = norm.setting_names or SETTINGS[: norm.centroids.shape[1]]
    columns = Columns(norm.sensors, settings if norm.n_regimes > 1 else (), {}, {})
    lives = label_lives(read_history(paths), read_events(events).events, columns)
    if lives.unit != meta.rul_unit:
        raise DataError(
            f"the model forecasts RUL in {meta.rul_unit} but this history gives it in {lives.unit}"
        )
    return [lives.runs[i] for i in lives.last.values()], len(lives.unfailed)


def run(args: argparse.Namespace) -> int:
    """Load, score, print (and plot)."""
    files = _sources(args)
    torch.set_num_threads(max(1, args.threads))
    predictor = RulPredictor.load(args.model, args.device)
    censored = 0
    if files is None:
        runs, censored = history_runs(predictor, args.history, args.events)
        if not runs:
            raise DataError("no asset's last record is followed by a failure in the events")
        name = ", ".join(p.name for p in args.history)
    else:
        runs, name = read_cmapss_test(*files), files[0].name
    result = evaluate(predictor, runs)
    m = result.metrics()
    doc = {
        "rmse": round(m["rmse"], 4), "score": round(m["score"], 2),
        "coverage": round(m["coverage"], 4), "n_assets": int(m["n_engines"]),
        "out_of_domain_share": round(m["out_of_domain_share"], 4),
        "n_censored": censored, "n_engines": int(m["n_engines"]),
        "rmse_capped": round(m["rmse_capped"], 4),
        "score_capped": round(m["score_capped"], 2),
        "rul_unit": predictor.metadata.rul_unit,
        "model_version": predictor.version, "device": str(predictor.device),
    }  # fmt: skip
    if args.plot is not None:
        plot(
            result,
            args.plot,
            f"{predictor.version}: RMSE {m['rmse']:.2f}, cover {m['coverage']:.2f}",
        )
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"model {doc['model_version']} on {doc['n_assets']} assets ({name})")
        print(f"  RMSE           {doc['rmse']:.2f} {doc['rul_unit']}"
              f"   (capped truth {doc['rmse_capped']:.2f})")  # fmt: skip
        print(f"  NASA score     {doc['score']:.1f}   (capped truth {doc['score_capped']:.1f})")
        print(f"  P10-P90 cover  {doc['coverage']:.2f}")
        print(f"  out of domain  {doc['out_of_domain_share']:.0%} of assets")
        if censored:
            print(f"  censored       {censored} assets (no failure after their last record)")
        if args.plot is not None:
            print(f"  plot           {args.plot}")
    return 0


def plot(result: Evaluation, path: Path, title: str) -> None:
    """Predicted vs true RUL per engine (sorted by true RUL) with the P10-P90 band."""
    plt = pyplot()

    order = np.argsort(result.true, kind="stable")
    x = np.arange(len(order))
    p = result.prediction
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.fill_between(x, p.p10[order], p.p90[order], alpha=0.3, label="P10-P90 band", step="mid")
    ax.plot(x, p.p50[order], "o-", ms=3, lw=1, label="predicted RUL (P50)")
    ax.plot(x, result.true[order], "k.", ms=5, label="true RUL")
    ax.set_xlabel("test engine (sorted by true RUL)")
    ax.set_ylabel("remaining useful life (cycles)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)
