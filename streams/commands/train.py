"""``pmaint train``: train the RUL forecaster and write a model artifact."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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
from models.rul.serve import RulPredictor, evaluate
from models.rul.train import TrainConfig, train_rul

EXAMPLES = """examples:
  pmaint train --data ~/CMAPSSData --subset FD001 --out artifacts/rul-fd001
  pmaint train --data ~/CMAPSSData --subset FD001 --out artifacts/rul-fd001 --folds 3 --seed 7
  pmaint train --simulated --assets 40 --lives 3 --out artifacts/rul-sim --device cpu

With --data, test_<subset>.txt and RUL_<subset>.txt next to the training file (when present)
are scored too and their metrics stored in the artifact."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``pmaint train``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, metavar="DIR", help="CMAPSSData directory")
    src.add_argument("--simulated", action="store_true", help="train on the fleet simulator")
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
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sim = parser.add_argument_group("simulator (with --simulated)")
    sim.add_argument("--assets", type=int, default=40, help="simulated assets")
    sim.add_argument("--lives", type=int, default=3, help="run-to-failure lives per asset")
    sim.add_argument("--regimes", type=int, default=3, help="operating regimes")


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
    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    if not args.cap > 0:
        raise ConfigError("--cap must be positive")
    if args.folds < 1:
        raise ConfigError("--folds must be at least 1")
    if not 0 <= args.trend <= 1:
        raise ConfigError("--trend must be in [0, 1]")
    if args.age_scale < 0:
        raise ConfigError("--age-scale must be 0 (no age channel) or positive")
    torch.set_num_threads(args.threads)
    runs, tests, source = _load(args)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
        layers=args.layers, patience=args.patience, val_share=args.val_share, seed=args.seed,
        device=args.device, cap=args.cap, trend=args.trend, age_scale=args.age_scale,
        folds=args.folds,
    )  # fmt: skip
    started = time.perf_counter()
    result = train_rul(runs, config, progress=not args.quiet, data_source=source)
    seconds = time.perf_counter() - started
    meta = result.metadata
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
        **stored.metrics,
    }
    print(json.dumps(report))
    return 0
