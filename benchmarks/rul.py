"""RUL inference throughput: raw forward at batch 1 and 256, and the worker's batcher; one line.

    python -m benchmarks.rul [--model DIR] [--device auto|cpu|cuda] [--windows 4096] [--tasks 1024]

The headline is the :class:`~streams.rul_batcher.RulBatcher` rate while ``--tasks`` concurrent
asyncio tasks each await ``predict`` for their share of ``--windows`` windows (as the worker's
agents do), against the raw ``RulPredictor.predict`` rate at ``--batch`` (the best the batcher
could reach); the batch-1 rate (one forward pass per window) is an extra field. All three are
measured in the same run on the same device, from interleaved samples (fastest of each kept),
with every forward pass on the batcher's thread. ``--max-batch`` and ``--max-wait-ms`` default to
the worker's ``PMAINT_RUL_BATCH_MAX`` and ``PMAINT_RUL_BATCH_WAIT_MS``. The batcher's asyncio
cost per request (about 7 us on a 2-core CPU) is small next to a window's forward time through
the default five-member ensemble, and its larger batches make up for it. Without ``--model`` a
freshly initialised network of the default architecture (``TrainConfig()``) is used (speed does
not depend on the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from benchmarks.common import emit
from models.features import INFORMATIVE_SENSORS, Normalizer
from models.rul.artifact import ArtifactMetadata
from models.rul.device import DEVICES, resolve_device
from models.rul.serve import RulPredictor
from models.rul.train import TrainConfig
from streams.rul_batcher import RulBatcher
from streams.settings import Settings


def _predictor(model_dir: str | None, device: str) -> RulPredictor:
    if model_dir:
        return RulPredictor.load(model_dir, device)
    return untrained_predictor(device)


def untrained_predictor(device: str) -> RulPredictor:
    """A freshly initialised network of the default architecture and ensemble (inference speed
    does not depend on the weights)."""
    torch.manual_seed(0)
    f = len(INFORMATIVE_SENSORS)
    norm = Normalizer.fit(np.vstack([np.zeros(f), np.ones(f)]), np.zeros((2, 3)))
    cfg = TrainConfig()  # the default model: its inputs and ensemble
    spec = cfg.inputs(norm)
    arch = cfg.architecture(len(spec.names))
    meta = ArtifactMetadata(
        norm, cfg.window, cfg.cap, arch, 0, "", version="untrained", trend=cfg.trend,
        age_scale=cfg.age_scale,
    )  # fmt: skip
    return RulPredictor(arch.build(), meta, resolve_device(device))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(step: Callable[[], Any]) -> float:
    _sync()
    start = time.perf_counter()
    step()
    _sync()
    return time.perf_counter() - start


async def _batcher_round(batcher: RulBatcher, windows: NDArray[np.float32], tasks: int) -> None:
    """``tasks`` concurrent callers, each awaiting ``predict`` for its share of ``windows``."""

    async def caller(k: int) -> None:
        for i in range(k, len(windows), tasks):
            await batcher.predict(f"asset-{i}", windows[i])

    await asyncio.gather(*(caller(k) for k in range(tasks)))


async def _measure(
    predictor: RulPredictor, windows: NDArray[np.float32], args: argparse.Namespace
) -> dict[str, float]:
    """Windows/s of the three ways, from interleaved samples over the same ``windows``.

    Each sample serves all of ``windows`` (batch 1: ``--batch`` of them); samples of the three
    alternate, and each rate is taken from its fastest sample, so a busy shared machine that
    pauses one sample does not decide the comparison. Every forward pass runs on one thread, the
    batcher's, as in the worker: on a CPU, passes from two threads would bring two OpenMP thread
    teams that slow each other down and the comparison would measure that instead.
    """
    b = args.batch
    chunks = [windows[i : i + b] for i in range(0, len(windows), b)]
    singles = [windows[i : i + 1] for i in range(b)]
    best = {"raw": float("inf"), "batch1": float("inf"), "batcher": float("inf")}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rul-forward")

    def on_pool(step: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: pool.submit(step).result()

    raw = on_pool(lambda: [predictor.predict(c) for c in chunks])
    single = on_pool(lambda: [predictor.predict(w) for w in singles])
    async with RulBatcher(
        predictor, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, executor=pool
    ) as batcher:
        await _batcher_round(batcher, windows, args.tasks)  # warm-up
        _timed(raw)
        deadline = time.perf_counter() + args.seconds
        rounds = 0
        while rounds < 3 or time.perf_counter() < deadline:
            best["raw"] = min(best["raw"], _timed(raw))
            best["batch1"] = min(best["batch1"], _timed(single))
            _sync()
            start = time.perf_counter()
            await _batcher_round(batcher, windows, args.tasks)
            _sync()
            best["batcher"] = min(best["batcher"], time.perf_counter() - start)
            rounds += 1
        stats = batcher.stats
    pool.shutdown()
    return {
        "raw": len(windows) / best["raw"],
        "batch1": b / best["batch1"],
        "batcher": len(windows) / best["batcher"],
        "mean_batch": stats.mean_batch,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="artifact directory (default: untrained network)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--batch", type=int, default=256, help="raw batched forward size")
    parser.add_argument("--windows", type=int, default=4096, help="windows per batcher round")
    parser.add_argument("--tasks", type=int, default=1024, help="concurrent predict callers")
    fields = Settings.model_fields
    parser.add_argument(
        "--max-batch", type=int, default=fields["rul_batch_max"].default, help="batcher max_batch"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=fields["rul_batch_wait_ms"].default,
        help="batcher max_wait_ms",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="sampling time in all")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks` passes its args to all
    torch.set_num_threads(args.threads)
    predictor = _predictor(args.model, args.device)
    windows = np.random.default_rng(0).random(
        (args.windows, predictor.window, predictor.n_features), dtype=np.float32
    )
    r = asyncio.run(_measure(predictor, windows, args))
    raw, single, served, mean_batch = r["raw"], r["batch1"], r["batcher"], r["mean_batch"]
    emit(
        "rul_batcher_windows_per_s",
        served,
        "windows/s",
        raw,
        baseline_name=f"raw forward, batch {args.batch}",
        batch1_windows_per_s=round(single, 1),
        batcher_vs_batch1=round(served / single, 2),
        raw_vs_batch1=round(raw / single, 2),
        rounds=int(r["rounds"]),
        windows=args.windows,
        tasks=args.tasks,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        mean_batch=round(mean_batch, 1),
        window=predictor.window,
        features=predictor.n_features,
        device=str(predictor.device),
        threads=torch.get_num_threads(),
        model_version=predictor.version,
        torch=torch.__version__,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
