"""Batched vs per-window RUL inference throughput; prints one JSON line.

    python -m benchmarks.rul_inference [--model DIR] [--device auto|cpu|cuda] [--batch 256]

Without ``--model`` a freshly initialised network of the default architecture is used (speed
does not depend on the weights). Both rates are measured in the same run on the same device.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.features import INFORMATIVE_SENSORS, WINDOW, Normalizer
from models.rul.artifact import Architecture, ArtifactMetadata
from models.rul.device import resolve_device
from models.rul.serve import RulPredictor


def _predictor(model_dir: str | None, device: str) -> RulPredictor:
    if model_dir:
        return RulPredictor.load(model_dir, device)
    torch.manual_seed(0)
    f = len(INFORMATIVE_SENSORS)
    norm = Normalizer.fit(np.vstack([np.zeros(f), np.ones(f)]), np.zeros((2, 3)))
    arch = Architecture(f)
    meta = ArtifactMetadata(norm, WINDOW, 125.0, arch, 0, "", version="untrained")
    return RulPredictor(arch.build(), meta, resolve_device(device))


def _rate(step: Callable[[], Any], per_step: int, seconds: float) -> float:
    """Windows per second of ``step`` over about ``seconds`` (after a warm-up)."""
    for _ in range(3):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n * per_step / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="artifact directory (default: untrained network)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks` passes its args to all
    torch.set_num_threads(args.threads)
    predictor = _predictor(args.model, args.device)
    rng = np.random.default_rng(0)
    shape = (args.batch, predictor.window, predictor.n_features)
    windows = rng.random(shape, dtype=np.float32)
    one = windows[:1]
    batched = _rate(lambda: predictor.predict(windows), args.batch, args.seconds)
    single = _rate(lambda: predictor.predict(one), 1, args.seconds)
    line = {
        "name": "rul_inference_windows_per_s",
        "value": round(batched, 1),
        "unit": "windows/s",
        "baseline": round(single, 1),
        "baseline_name": "batch 1 (one forward pass per window)",
        "ratio": round(batched / single, 2),
        "batch": args.batch,
        "window": predictor.window,
        "features": predictor.n_features,
        "device": str(predictor.device),
        "threads": torch.get_num_threads(),
        "model_version": predictor.version,
        "torch": torch.__version__,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
