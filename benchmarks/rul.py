"""RUL inference: the fused ensemble forward, the worker's RUL service, a forward pass beside the
event loop; three lines.

    python -m benchmarks.rul [--model DIR] [--device cpu|auto|cuda] [--batch 1024] [--calls 8]

``rul_fused_windows_per_s``: :meth:`RulPredictor.predict` over batches of ``--batch`` windows
with the ensemble's members stacked into one forward pass (:mod:`models.rul.fused`), against
the same predictor running the members one after another (the baseline). ``--device`` defaults
to ``cpu``, the issue's measurement; on a GPU run it with ``--device cuda``.

``rul_service_windows_per_s``: the worker-facing :class:`~streams.rul_service.RulService` (one
``predict_many`` call per batch of ``--batch`` windows, the forward pass on the service's
thread, one ``RulForecast`` per window), against the predictor's ``predict`` on the same
batches called directly (the best the service could reach). It replaces the former
``rul_batcher_windows_per_s`` line: the micro-batcher it measured is gone.

``rul_forward_beside_python_ms`` (CPU only): the median time of one forecast of 16 windows (a
part's worth in the worker) on a thread while the calling thread runs Python, as the event loop
does while it scores the next part: the predictor as served (its forward pass one TorchScript
call, :func:`~models.rul.serve.gil_free`) against the same model run eagerly (the baseline),
whose every layer waits for the GIL again.

All rates come from the same run on the same device, from interleaved samples (fastest of each
kept), with every forward pass on one thread. Without ``--model`` a freshly initialised network
of the default architecture (``TrainConfig()``, five members) is used (speed does not depend on
the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
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
from models.rul.fused import FusedEnsemble
from models.rul.network import QuantileEnsemble
from models.rul.serve import Forecaster, RulPredictor
from models.rul.train import TrainConfig
from streams.rul_service import RulService


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


async def _measure(
    members: RulPredictor, batches: list[NDArray[np.float32]], seconds: float
) -> dict[str, float]:
    """Seconds of the fastest sample of each way over all of ``batches``, interleaved, so a
    busy shared machine that pauses one sample does not decide the comparison."""
    assert isinstance(members.model, QuantileEnsemble)
    fused = RulPredictor(FusedEnsemble(members.model), members.metadata, members.device)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rul-forward")

    def on_pool(predictor: RulPredictor) -> Callable[[], Any]:
        return lambda: pool.submit(lambda: [predictor.predict(b) for b in batches]).result()

    ways: dict[str, Callable[[], Any]] = {"members": on_pool(members), "fused": on_pool(fused)}
    best = dict.fromkeys([*ways, "service"], float("inf"))
    rounds = 0
    async with RulService(pool) as service:

        async def serve() -> None:
            for b in batches:
                await service.predict_many(members, list(b))

        await serve()  # warm-up
        deadline = time.perf_counter() + seconds
        while rounds < 3 or time.perf_counter() < deadline:
            for name, step in ways.items():
                best[name] = min(best[name], _timed(step))
            _sync()
            start = time.perf_counter()
            await serve()
            _sync()
            best["service"] = min(best["service"], time.perf_counter() - start)
            rounds += 1
    pool.shutdown()
    return {**best, "rounds": rounds}


def beside_python(predictor: RulPredictor, windows: NDArray[np.float32], seconds: float) -> float:
    """Median ms of ``predictor.predict(windows)`` on a thread while this thread runs Python
    (dict building, like the event loop's scoring), sampled for about ``seconds``."""
    times: list[float] = []
    done = threading.Event()

    def forecast() -> None:
        deadline = time.perf_counter() + seconds
        while len(times) < 3 or time.perf_counter() < deadline:
            start = time.perf_counter()
            predictor.predict(windows)
            times.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=forecast, name="rul-forward")
    thread.start()
    while not done.is_set():
        {i: i * 2 for i in range(1000)}
    thread.join()
    return float(np.median(times)) * 1000


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="artifact directory (default: untrained network)")
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--batch", type=int, default=1024, help="windows per forward pass")
    parser.add_argument("--calls", type=int, default=4, help="batches per sample")
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling time in all")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks` passes its args to all
    torch.set_num_threads(args.threads)
    predictor = _predictor(args.model, args.device)
    shape = (args.calls, args.batch, predictor.window, predictor.n_features)
    batches = list(np.random.default_rng(0).random(shape, dtype=np.float32))
    r = asyncio.run(_measure(predictor, batches, args.seconds))
    n = args.calls * args.batch
    rate = {k: n / r[k] for k in ("members", "fused", "service")}
    common = {
        "batch": args.batch,
        "calls": args.calls,
        "rounds": int(r["rounds"]),
        "members": predictor.metadata.architecture.members,
        "window": predictor.window,
        "features": predictor.n_features,
        "device": str(predictor.device),
        "threads": torch.get_num_threads(),
        "model_version": predictor.version,
        "torch": torch.__version__,
        "load_1min": round(os.getloadavg()[0], 2),
    }
    emit(
        "rul_fused_windows_per_s",
        rate["fused"],
        "windows/s",
        rate["members"],
        baseline_name=f"members one after another, batch {args.batch}",
        **common,
    )
    emit(
        "rul_service_windows_per_s",
        rate["service"],
        "windows/s",
        rate["members"],
        baseline_name=f"RulPredictor.predict called directly, batch {args.batch}",
        **common,
    )
    if predictor.device.type == "cpu":
        eager = RulPredictor(predictor.model, predictor.metadata, predictor.device)
        eager._forward = Forecaster(eager.model).eval()  # what the predictor ran before
        windows = batches[0][:16]
        seconds = min(10.0, args.seconds / 2)
        emit(
            "rul_forward_beside_python_ms",
            beside_python(predictor, windows, seconds),
            "ms",
            beside_python(eager, windows, seconds),
            baseline_name="the same model run eagerly, 16 windows, beside a busy Python thread",
            **common | {"batch": 16, "calls": 1},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
