"""``pmaint train``: train the RUL forecaster and write a model artifact.

Three sources: NASA C-MAPSS (``--data``), the fleet simulator (``--simulated``) or a plant's own
history with its maintenance log (``--history`` + ``--events``, see :mod:`models.rul.lives`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from models.datafiles import resolve
from models.errors import ConfigError
from models.rul.artifact import METADATA, save_artifact
from models.rul.data import (
    SUBSETS,
    Run,
    cmapss_paths,
    read_cmapss,
    read_cmapss_test,
    simulated_runs,
)
from models.rul.device import DEVICES
from models.rul.lives import Lives, label_lives
from models.rul.serve import RulPredictor, evaluate
from models.rul.train import TrainConfig, train_rul
from streams.history_files import read_events, read_history

EXAMPLES = """examples:
  pmaint train --data ~/CMAPSSData --subset FD001 --out artifacts/rul-fd001
  pmaint train --data ~/CMAPSSData --subset FD001 --out artifacts/rul-fd001 --folds 3 --seed 7
  pmaint train --simulated --assets 40 --lives 3 --out artifacts/rul-sim --device cpu
  pmaint train --history plant/2025.jsonl.gz plant/2026.csv --events plant/events.csv \
      --out artifacts/rul-pumps --asset-type pump

--history reads .jsonl (records or frames), .csv (asset_id,ts[,cycle][,setting...],<sensors>)
or C-MAPSS .txt, each optionally .gz; --events is a CSV asset_id,event[,ts][,cycle] whose
failure and replacement rows end a life. RUL is in cycles when the records carry cycle and the
events give it, else in hours; lives without a failure in the history are left out.

With --data, test_<subset>.txt and RUL_<subset>.txt next to the training file (when present)
are scored too and their metrics stored in the artifact."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint train``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, metavar="DIR", help="CMAPSSData directory")
    src.add_argument("--simulated", action="store_true", help="train on the fleet simulator")
    src.add_argument(
        "--history", type=Path, nargs="+", metavar="FILE", help="telemetry history files"
    )
    parser.add_argument("--events", type=Path, metavar="FILE", help="maintenance log (CSV)")
    parser.add_argument("--asset-type", default="", metavar="T", help="asset type of the model")
    parser.add_argument("--subset", default="FD001", choices=SUBSETS, help="C-MAPSS subset")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="artifact dir")
    parser.add_argument("--force", action="store_true", help="overwrite an existing artifact")
    d = TrainConfig()
    options: tuple[tuple[str, type[float], float, str], ...] = (
        ("--epochs", int, d.epochs, "most epochs per member"),
        ("--patience", int, d.patience, "early-stopping patience"),
        ("--folds", int, d.folds, "ensemble members, one per fold of the engines"),
        ("--seed", int, d.seed, "random seed"),
        ("--batch-size", int, d.batch_size, "training batch size"),
        ("--lr", float, d.lr, "learning rate"),
        ("--hidden", int, d.hidden, "LSTM hidden size"),
        ("--layers", int, d.layers, "LSTM layers"),
        ("--val-share", float, d.val_share, "validation share with --folds 1"),
        ("--cap", float, d.cap, "RUL target cap in cycles"),
        ("--trend", float, d.trend, "trend channels' smoothing factor, 0: none"),
        ("--age-scale", float, d.age_scale, "age channel's scale, 0: none"),
    )
    for flag, kind, default, text in options:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default:g})")
    parser.add_argument("--device", choices=DEVICES, default=d.device, help=f"default {d.device}")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1,
        help="ensemble members trained at once on the CPU, one single-threaded process each "
        "(default: the number of cores)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sim = parser.add_argument_group("simulator (with --simulated)")
    sim.add_argument("--assets", type=int, default=40, help="simulated assets")
    sim.add_argument("--lives", type=int, default=3, help="run-to-failure lives per asset")
    sim.add_argument("--regimes", type=int, default=3, help="operating regimes")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _history(args: argparse.Namespace) -> Lives:
    if args.events is None:
        raise ConfigError("--history needs --events FILE (the maintenance log)")
    _say(args, f"reading {len(args.history)} history file(s) ...")
    records = read_history(args.history)
    log = read_events(args.events)
    lives = label_lives(records, log.events, cap=args.cap)
    assets = len({r.asset_id for r in records})
    _say(args, f"{len(records)} records of {assets} assets: {len(lives.runs)} lives end in a "
         f"failure, {len(lives.censored)} censored (left out); RUL in {lives.unit}")  # fmt: skip
    for name, why in lives.columns.kept.items():
        _say(args, f"  kept     {name}: {why}")
    for name, why in lives.columns.dropped.items():
        _say(args, f"  dropped  {name}: {why}")
    return lives


def _load(args: argparse.Namespace) -> tuple[list[Run], list[Run] | None, str]:
    if args.simulated:
        if args.assets < 2 or args.lives < 1 or args.regimes < 1:
            raise ConfigError("--assets must be >= 2, --lives and --regimes >= 1")
        runs = simulated_runs(args.assets, args.lives, args.seed, args.regimes)
        source = f"simulator(assets={args.assets}, lives={args.lives}, regimes={args.regimes})"
        return runs, None, source
    train, test, rul = cmapss_paths(args.data, args.subset)
    tests = (
        read_cmapss_test(test, rul) if resolve(test).exists() and resolve(rul).exists() else None
    )
    return read_cmapss(train), tests, f"C-MAPSS {args.subset} ({train.name})"


def run(args: argparse.Namespace) -> int:
    """Train, score and save; prints the final metrics as JSON."""
    if (args.out / METADATA).exists() and not args.force:
        raise ConfigError(f"{args.out} already holds a model artifact (use --force to replace)")
    if args.threads < 1 or args.jobs < 1:
        raise ConfigError("--threads and --jobs must be at least 1")
    if not args.cap > 0:
        raise ConfigError("--cap must be positive")
    if args.folds < 1:
        raise ConfigError("--folds must be at least 1")
    if not 0 <= args.trend <= 1:
        raise ConfigError("--trend must be in [0, 1]")
    if args.age_scale < 0:
        raise ConfigError("--age-scale must be 0 (no age channel) or positive")
    if args.events is not None and args.history is None:
        raise ConfigError("--events goes with --history")
    torch.set_num_threads(args.threads)
    lives = _history(args) if args.history is not None else None
    if lives is not None:
        runs, tests = lives.runs, None
        source = "history " + ", ".join(p.name for p in args.history)
    else:
        runs, tests, source = _load(args)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
        layers=args.layers, patience=args.patience, val_share=args.val_share, seed=args.seed,
        device=args.device, cap=args.cap, trend=args.trend, age_scale=args.age_scale,
        folds=args.folds,
    )  # fmt: skip
    if lives is not None:
        config = dataclasses.replace(
            config, sensors=lives.columns.sensors, settings=lives.columns.settings
        )
    started = time.perf_counter()
    unit = lives.unit if lives is not None else "cycles"
    result = train_rul(
        runs, config, progress=not args.quiet, data_source=source, rul_unit=unit, jobs=args.jobs
    )
    seconds = time.perf_counter() - started
    meta = dataclasses.replace(result.metadata, asset_type=args.asset_type)
    if lives is not None:
        meta.training["history"] = {**lives.report(), "kept": lives.columns.kept}
    if tests is not None:
        predictor = RulPredictor(result.model, meta, "cpu")
        scores = evaluate(predictor, tests).metrics()
        meta.metrics.update({f"test_{k}": round(v, 4) for k, v in scores.items()})
    stored = save_artifact(args.out, result.model, meta)
    report = {
        "version": stored.version,
        "artifact": str(args.out),
        "train_seconds": round(seconds, 1),
        "epochs_run": meta.training["epochs_run"],
        "rul_unit": stored.rul_unit,
        "out_of_fold": out_of_fold(stored.metrics, len(runs)),
        **stored.metrics,
    }
    print(json.dumps(report))
    return 0


def out_of_fold(metrics: dict[str, float], n_assets: int) -> dict[str, Any]:
    """The held-out forecasts' figures under the keys of ``pmaint evaluate rul --json``.

    ``coverage`` is the raw band's, before it is calibrated on these same forecasts.

    >>> m = {"val_cut_rmse": 12.0, "val_cut_score": 250.0, "val_cut_coverage": 0.7,
    ...      "val_cut_out_of_domain_share": 0.02}
    >>> out_of_fold(m, 100)["n_assets"]
    100
    """
    return {
        "rmse": metrics["val_cut_rmse"],
        "score": metrics["val_cut_score"],
        "coverage": metrics["val_cut_coverage"],
        "n_assets": n_assets,
        "out_of_domain_share": metrics["val_cut_out_of_domain_share"],
    }
