"""A fleet larger than memory: resident bytes per asset under an eviction budget, and a worker's
restart-to-ready time with many checkpointed assets.

``fleet_bytes_per_asset``: ``ASSETS`` (1,000,000) assets, one frame-borne record each, through the
worker's own path without Kafka (:class:`TelemetryProcessor` decode and routing,
:class:`ModelPipeline`, :meth:`TelemetryAgent.save_states` checkpointing evicted assets into
RocksDB opened with the worker table's options) with ``PMAINT_ASSET_BUDGET`` = ``BUDGET``: growth
of the resident set over the run / assets. Baseline: the same per asset with no budget on
``UNBOUNDED`` assets (what every asset costs when all stay in memory).

``restart_to_ready_s``: a real ``pmaint worker`` on Tansu takes ``RESTART_ASSETS`` (200,000)
assets, one record each, with a budget that evicts (so every asset is checkpointed); it is
stopped and started again on the same data dir (the helm chart's persistent volume), and the
time from start to ``/ready`` answering 200 is the figure. Baseline: the same worker's first
start on an empty topic.

``--quick`` runs a tenth of each size.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from benchmarks.common import emit, produce_frames
from benchmarks.memory import rss_bytes

ASSETS, BUDGET, UNBOUNDED = 1_000_000, 20_000, 50_000
RESTART_ASSETS, RESTART_BUDGET = 200_000, 20_000
FRAME = 500


def frames(assets: int, prefix: str, partitions: int) -> Any:
    """Frames of one partition's assets, one record each (10 sensors), as consumed messages."""
    import orjson

    from streams.core.processor import Inbound
    from streams.core.routing import partition_for

    now_ms = int(time.time() * 1000)
    pending: dict[int, list[dict[str, object]]] = {}
    offsets = dict.fromkeys(range(partitions), 0)
    for i in range(assets):
        asset_id = f"{prefix}{i:07d}"
        part = partition_for(asset_id, partitions)
        sensors = {f"s{j}": 100.0 + j + (i % 7) * 0.1 for j in range(10)}
        buf = pending.setdefault(part, [])
        buf.append({"asset_id": asset_id, "ts": now_ms - 60_000, "sensors": sensors})
        if len(buf) == FRAME or i == assets - 1:
            for p, records in list(pending.items()):
                if len(records) == FRAME or i == assets - 1:
                    value = orjson.dumps({"records": records})
                    yield Inbound("pm.telemetry", p, offsets[p], value)
                    offsets[p] += 1
                    pending[p] = []


class _Table(dict[str, bytes]):
    """Checkpoints written through to RocksDB, nothing kept (the table's store, without faust)."""

    def __init__(self, db: Any) -> None:
        super().__init__()
        self.db = db

    def __setitem__(self, key: str, value: bytes) -> None:
        self.db.put(key.encode(), value)


def fleet_child(assets: int, budget: int) -> dict[str, float]:
    """Feed ``assets`` assets through the worker's path in this process; RSS growth."""
    from faust.stores.rocksdb import RocksDBOptions

    from streams.agents import TelemetryAgent
    from streams.app import TABLE_STORE_OPTIONS
    from streams.core.fleet import Fleet
    from streams.core.metrics import Metrics
    from streams.core.pipeline import ModelPipeline, PipelineConfig
    from streams.core.processor import TelemetryProcessor
    from streams.core.schema import Limits
    from streams.publishing import Sinks

    pipeline = ModelPipeline(PipelineConfig())
    fleet = Fleet(budget=budget, next_look=pipeline.engine.next_look)  # as the worker's
    processor = TelemetryProcessor(Limits(), 4, fleet, Metrics())
    options = RocksDBOptions(**TABLE_STORE_OPTIONS, use_rocksdict=True)  # as the worker's table
    store = options.open(Path(tempfile.mkdtemp(prefix="pmaint-bench-")))
    table = _Table(store)
    sinks = Sinks(None, None, None, table)  # type: ignore[arg-type]  # publish is not used
    agent = TelemetryAgent(processor, pipeline, sinks, rewind=None)  # type: ignore[arg-type]

    async def feed(n: int, prefix: str) -> None:
        messages = frames(n, prefix, 4)  # made as consumed: the input is not state
        while chunk := list(islice(messages, 10)):  # 10 frames of 500, as the agent's parts
            result = processor.process(chunk)
            if result.dead:
                raise RuntimeError(f"dead letters: {result.dead[0][0].reason}")
            out = await agent.run_models(result)
            agent.save_states(out)
            agent.hand_on_checkpoints()
            await agent.drain()

    asyncio.run(feed(2_000, "warm-"))
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    asyncio.run(feed(assets, "a"))
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    if budget and len(fleet) > budget:
        raise RuntimeError(f"fleet holds {len(fleet)} assets over a budget of {budget}")
    store.close()
    return {
        "rss_per_asset": grown / assets,
        "in_memory": float(len(fleet)),
        "checkpoints": float(processor.metrics.checkpoints._value.get()),
        "records_per_s": assets / elapsed,
    }


def run_fleet_child(assets: int, budget: int) -> dict[str, float]:
    args = [sys.executable, "-m", "benchmarks.fleet_state", "--child", str(assets), str(budget)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"fleet child failed: {proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def restart_to_ready(assets: int, budget: int) -> tuple[float, float, float]:
    """(restart seconds, first start seconds, checkpoints written) of a real worker."""
    from streams.harness import start_tansu, start_worker, wait_until, worker_env

    workdir = Path(tempfile.mkdtemp(prefix="pmaint-restart-"))
    (workdir / "tansu").mkdir()
    tansu = start_tansu(workdir / "tansu")
    try:
        env = worker_env(
            tansu.extra["bootstrap"], "bench", asset_budget=str(budget),
            checkpoint_interval_s="1",
        )  # fmt: skip
        data_dir = workdir / "data"
        started = time.monotonic()
        worker = start_worker(env, workdir, ready_timeout=120, data_dir=data_dir)
        first = time.monotonic() - started
        produce_frames(
            tansu.extra["bootstrap"], env["PMAINT_TOPIC_TELEMETRY"], assets, FRAME, assets
        )

        def saved() -> bool:
            done = worker.metric("pmaint_records_total", outcome="ok") >= assets
            return done and worker.metric("pmaint_checkpoints_total") >= assets

        wait_until(saved, 1800, "every asset checkpointed")
        checkpoints = worker.metric("pmaint_checkpoints_total")
        time.sleep(3)  # the changelog sends and a commit go through
        worker.kill()
        started = time.monotonic()
        worker = start_worker(env, workdir, ready_timeout=300, data_dir=data_dir)
        restart = time.monotonic() - started
        worker.kill()
        return restart, first, checkpoints
    finally:
        tansu.stop()


def main() -> int:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        assets, budget = int(sys.argv[i + 1]), int(sys.argv[i + 2])
        print(json.dumps(fleet_child(assets, budget)), flush=True)
        return 0
    scale = 10 if "--quick" in sys.argv else 1
    bounded = run_fleet_child(ASSETS // scale, BUDGET // scale)
    unbounded = run_fleet_child(UNBOUNDED // scale, 0)
    emit(
        "fleet_bytes_per_asset", bounded["rss_per_asset"], "bytes/asset",
        unbounded["rss_per_asset"], baseline_name="no budget, every asset in memory",
        method="RSS growth over the feed / assets", assets=ASSETS // scale,
        budget=BUDGET // scale, in_memory=bounded["in_memory"],
        checkpoints=bounded["checkpoints"], records_per_s=round(bounded["records_per_s"], 1),
        baseline_assets=UNBOUNDED // scale,
    )  # fmt: skip
    restart, first, checkpoints = restart_to_ready(RESTART_ASSETS // scale, RESTART_BUDGET // scale)
    emit(
        "restart_to_ready_s", restart, "s", first,
        baseline_name="first start, empty topics", assets=RESTART_ASSETS // scale,
        checkpoints=checkpoints, goal_s=10, cpus=os.cpu_count(),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
