"""Resident bytes per asset of a worker's per-asset state, with 10,000 assets.

``value``: the real :class:`~streams.core.fleet.Fleet` fed through the real
:class:`~streams.core.pipeline.ModelPipeline` (anomaly monitor with its per-regime statistics, drift
detector and adaptive threshold, the RUL ``AssetWindow`` of a tiny trained LSTM, the alert
engine's per-asset tracks, the sparkline history), ``RECORDS_PER_ASSET`` simulated records per
asset over three operating regimes. Baseline: the same records through the bare ``Fleet``
(``AssetState`` bookkeeping only, no models), same run.

Each variant runs in a child process of its own under ``tracemalloc``: bytes Python allocated
and still holds after the feed (the figure); ``rss_per_asset`` is the growth of the resident set
in the same child less tracemalloc's own tables (a cross-check that includes allocator
overhead and numpy/torch buffers). Records are generated round by round and dropped, so only
what the state keeps is counted.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from benchmarks.common import emit

ASSETS = 10_000
RECORDS_PER_ASSET = (
    6  # per-asset bytes reach ~90% of their 40-record level by 6 (1,000-asset check)
)
WARM_ASSETS = 50  # fed before measuring: first-use allocations (caches, interned names)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def predictor() -> Any:
    from models.rul.data import simulated_runs
    from models.rul.serve import RulPredictor
    from models.rul.train import TrainConfig, train_rul

    cfg = TrainConfig(epochs=1, hidden=8, layers=1, folds=1, device="cpu")
    result = train_rul(simulated_runs(assets=4, lives=1), cfg)
    return RulPredictor(result.model, result.metadata, "cpu")


def child(variant: str, traced: bool) -> dict[str, float]:
    """Feed the fleet in this process; bytes held per asset after the feed."""
    from models.simulator import FleetSimulator
    from streams.core.fleet import Fleet
    from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
    from streams.core.schema import Telemetry
    from streams.core.served_models import ServingModels

    full = variant == "full"
    pipeline = ModelPipeline(PipelineConfig(), ServingModels.single(predictor())) if full else None
    fleet = Fleet()
    site, line = "site-1", "line-1"

    def feed(sim: FleetSimulator, n: int, prefix: str) -> None:
        for rec in sim.records(n):
            record = Telemetry(
                f"{prefix}{rec.asset_id}", rec.ts_ms, rec.sensors, rec.cycle, rec.settings,
                site, line,
            )  # fmt: skip
            state = fleet.observe(record, 0)
            if pipeline is not None and state is not None:
                out = Outputs()
                pipeline.observe(state, record, out)
                if out.failed:
                    raise RuntimeError(f"pipeline failed: {out.failed[0][1]}")

    feed(FleetSimulator(assets=WARM_ASSETS, seed=2), WARM_ASSETS * RECORDS_PER_ASSET, "warm-")
    sim = FleetSimulator(assets=ASSETS, seed=1)
    gc.collect()
    if traced:
        tracemalloc.start()
    before_rss = rss_bytes()
    before = tracemalloc.get_traced_memory()[0] if traced else 0
    started = time.perf_counter()
    feed(sim, ASSETS * RECORDS_PER_ASSET, "")
    elapsed = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before if traced else 0
    overhead = tracemalloc.get_tracemalloc_memory() if traced else 0
    grown = rss_bytes() - before_rss - overhead
    if len(fleet) != ASSETS + WARM_ASSETS:
        raise RuntimeError(f"fleet holds {len(fleet)} assets")
    state = fleet.assets[sim._assets[0].asset_id]
    if pipeline is not None and (state.monitor is None or state.window is None):
        raise RuntimeError("the pipeline did not build the asset's models")
    return {
        "traced": held / ASSETS,
        "rss": grown / ASSETS,
        "records_per_s": ASSETS * RECORDS_PER_ASSET / elapsed,
        "window_bytes": float(state.window.nbytes) if state.window is not None else 0.0,
    }


def run_child(variant: str, traced: bool) -> dict[str, float]:
    args = [sys.executable, "-m", "benchmarks.memory", "--child", variant]
    proc = subprocess.run(
        args + (["--traced"] if traced else []), capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"memory child {variant} failed: {proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if "--child" in sys.argv:
        variant = sys.argv[sys.argv.index("--child") + 1]
        print(json.dumps(child(variant, "--traced" in sys.argv)), flush=True)
        return 0
    bare, full = run_child("bare", True), run_child("full", True)
    emit(
        "memory_per_asset", full["traced"], "bytes/asset", bare["traced"],
        baseline_name="bare AssetState bookkeeping, no models",
        method="tracemalloc, bytes held after the feed", assets=ASSETS,
        records_per_asset=RECORDS_PER_ASSET,
        rss_per_asset=round(full["rss"], 1), rss_baseline=round(bare["rss"], 1),
        rul_window_bytes=full["window_bytes"],
        fed_records_per_s_traced=round(full["records_per_s"], 1),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
