"""``pmaint evaluate rul``: score a RUL model on C-MAPSS test engines (last window each)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from models.errors import ConfigError
from models.rul.data import SUBSETS, cmapss_paths, read_cmapss_test
from models.rul.device import DEVICES
from models.rul.serve import Evaluation, RulPredictor, evaluate
from streams.plots import pyplot, save_figure

EXAMPLES = """examples:
  pmaint evaluate rul --model artifacts/rul-fd001 --data ~/CMAPSSData --subset FD001
  pmaint evaluate rul --model artifacts/rul-fd001 --test test_FD001.txt --rul RUL_FD001.txt --json
  pmaint evaluate rul --model artifacts/rul-fd001 --data ~/CMAPSSData --plot rul.png

Each test engine is scored on its last window against its true RUL as given in the RUL file;
*_capped metrics cap the truth at the model's training cap (the piecewise-linear protocol)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint evaluate rul``."""
    parser.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact dir")
    parser.add_argument("--data", type=Path, metavar="DIR", help="CMAPSSData directory")
    parser.add_argument("--subset", default="FD001", choices=SUBSETS, help="with --data")
    parser.add_argument("--test", type=Path, metavar="FILE", help="test_FD00x.txt")
    parser.add_argument("--rul", type=Path, metavar="FILE", help="RUL_FD00x.txt")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a plot")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    """Load, score, print (and plot)."""
    if args.data is not None:
        if args.test is not None or args.rul is not None:
            raise ConfigError("give either --data (with --subset) or --test and --rul, not both")
        _, test, rul = cmapss_paths(args.data, args.subset)
    elif args.test is not None and args.rul is not None:
        test, rul = args.test, args.rul
    else:
        raise ConfigError("give --data DIR (with --subset) or both --test FILE and --rul FILE")
    torch.set_num_threads(max(1, args.threads))
    predictor = RulPredictor.load(args.model, args.device)
    result = evaluate(predictor, read_cmapss_test(test, rul))
    m = result.metrics()
    doc = {
        "rmse": round(m["rmse"], 4), "score": round(m["score"], 2),
        "coverage": round(m["coverage"], 4), "n_engines": int(m["n_engines"]),
        "rmse_capped": round(m["rmse_capped"], 4),
        "score_capped": round(m["score_capped"], 2),
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
        print(f"model {doc['model_version']} on {doc['n_engines']} engines ({test.name})")
        print(f"  RMSE           {doc['rmse']:.2f}   (capped truth {doc['rmse_capped']:.2f})")
        print(f"  NASA score     {doc['score']:.1f}   (capped truth {doc['score_capped']:.1f})")
        print(f"  P10-P90 cover  {doc['coverage']:.2f}")
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
