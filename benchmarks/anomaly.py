"""Per-asset anomaly monitoring throughput across a fleet; prints one JSON line.

    python -m benchmarks.anomaly [--assets 1000] [--warm-up 40] [--records 20] [--detectors A,B]

Simulated records (three operating regimes, 10% of the assets with injected faults) are fed
round-robin, one :class:`models.monitor.AssetMonitor` per asset with the service's defaults
except a warm-up of ``--warm-up`` records. After every asset has seen its warm-up records
(not timed), ``--records`` more per asset are timed through ``AssetMonitor.update`` (score,
threshold, explanation, drift, learn). The baseline, timed in the same run on the same
records, is river's textbook pipeline ``StandardScaler() | HalfSpaceTrees()``: ``score_one``
then ``learn_one`` per record (one pipeline: its per-record cost does not depend on the number
of assets; one per asset would not fit in memory at this fleet size).

``old_monitor_records_per_s`` times, in the same run on the same records (alternating chunks
of 500 records), the monitor with only the slow-deviation detector (``detectors=
("deviation",)``: the monitor before the detectors by kind); ``cost_vs_old_monitor`` is the
default detector set's (or ``--detectors``') per-record cost over it.

``anomaly_monitor_batch_records_per_s`` times :meth:`AssetMonitor.update_run` (a batch's
records grouped by asset, ``--run`` records per asset and batch) against ``update`` record by
record on the same batches in the same run (alternating slices of 100 assets, two fleets warmed
alike).

Extra fields: ``bytes_per_asset`` is the Python heap a restored monitor holds after warm-up
(tracemalloc over ``AssetMonitor.from_bytes`` of every asset), ``checkpoint_bytes`` the sum of
all assets' :meth:`AssetMonitor.to_bytes` checkpoints.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from dataclasses import replace

from benchmarks.common import emit
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig
from models.simulator import FleetSimulator

Row = tuple[str, dict[str, float], dict[str, float], float]


def _records(assets: int, per_asset: int) -> list[Row]:
    sim = FleetSimulator(assets=assets, seed=1, fault_share=0.1)
    return [
        (r.asset_id, r.sensors, r.settings, r.ts_ms / 1000.0)
        for r in sim.records(assets * per_asset)
    ]


def _warm_monitors(
    config: MonitorConfig, assets: list[str], warm: list[Row]
) -> dict[str, AssetMonitor]:
    monitors = {asset: AssetMonitor(config) for asset in assets}
    for asset, sensors, settings, ts in warm:
        monitors[asset].update(sensors, settings, ts)
    return monitors


def _monitor_rates(rows: list[Row], *fleets: dict[str, AssetMonitor]) -> list[float]:
    """Records/s of each fleet on ``rows``, timed in alternating chunks of 500 records so that
    every fleet meets the same load of a shared machine."""
    spent = [0.0] * len(fleets)
    for at in range(0, len(rows), 500):
        chunk = rows[at : at + 500]
        for i, monitors in enumerate(fleets):
            start = time.perf_counter()
            for asset, sensors, settings, ts in chunk:
                monitors[asset].update(sensors, settings, ts)
            spent[i] += time.perf_counter() - start
    return [len(rows) / s for s in spent]


def _batch_rates(
    rows: list[Row], per_asset: int, one: dict[str, AssetMonitor], runs: dict[str, AssetMonitor]
) -> tuple[float, float]:
    """Records/s of ``update`` record by record (fleet ``one``) and of ``update_run`` over each
    batch's records grouped by asset (fleet ``runs``); batches of ``per_asset`` records per
    asset, timed alternately by slices of 100 assets (assets are independent) so that both
    meet the same load of a shared machine."""
    spent = [0.0, 0.0]
    size = len(one) * per_asset
    for at in range(0, len(rows), size):
        grouped: dict[str, list[Row]] = {}
        for row in rows[at : at + size]:
            grouped.setdefault(row[0], []).append(row)
        assets = list(grouped)
        for first in range(0, len(assets), 100):
            part = [grouped[a] for a in assets[first : first + 100]]
            in_order = sorted((r for run in part for r in run), key=lambda r: r[3])
            start = time.perf_counter()
            for asset, sensors, settings, ts in in_order:
                one[asset].update(sensors, settings, ts)
            spent[0] += time.perf_counter() - start
            start = time.perf_counter()
            for run in part:
                runs[run[0][0]].update_run(
                    [r[1] for r in run], [r[2] for r in run], [r[3] for r in run]
                )
            spent[1] += time.perf_counter() - start
    return len(rows) / spent[0], len(rows) / spent[1]


def _river_rate(warm: list[Row], rows: list[Row]) -> float:
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.StandardScaler(), anomaly.HalfSpaceTrees(seed=0))
    for _, sensors, settings, _ in warm[-2000:]:
        model.learn_one({**sensors, **settings})
    start = time.perf_counter()
    for _, sensors, settings, _ in rows:
        x = {**sensors, **settings}
        model.score_one(x)
        model.learn_one(x)
    return len(rows) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=40, help="untimed records per asset")
    parser.add_argument("--records", type=int, default=20, help="timed records per asset")
    parser.add_argument("--run", type=int, default=5, help="records per asset and batch")
    parser.add_argument(
        "--detectors", help="detectors that alarm, comma-separated (default: the defaults)"
    )
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks` passes its args to all
    rows = _records(args.assets, args.warm_up + args.records)
    split = args.assets * args.warm_up
    warm, timed = rows[:split], rows[split:]
    config = replace(MonitorConfig(), warm_up=args.warm_up)
    if args.detectors:
        config = replace(config, detectors=tuple(args.detectors.split(",")))
    assets = [asset for asset, *_ in rows[: args.assets]]
    old_monitors = _warm_monitors(replace(config, detectors=("deviation",)), assets, warm)
    monitors = _warm_monitors(config, assets, warm)
    ours, old = _monitor_rates(timed, monitors, old_monitors)
    baseline = _river_rate(warm, timed)
    one, batched = _batch_rates(
        timed, args.run, _warm_monitors(config, assets, warm), _warm_monitors(config, assets, warm)
    )
    blobs = [m.to_bytes() for m in monitors.values()]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    restored = [AssetMonitor.from_bytes(b) for b in blobs]
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(restored) == args.assets
    emit(
        "anomaly_monitor_records_per_s",
        ours,
        "records/s",
        baseline,
        baseline_name="river StandardScaler | HalfSpaceTrees, score_one + learn_one",
        assets=args.assets,
        warm_up_records_per_asset=args.warm_up,
        timed_records=len(timed),
        old_monitor_records_per_s=round(old, 3),
        cost_vs_old_monitor=round(old / ours, 3),
        detectors=list(config.detectors),
        bytes_per_asset=round(heap / args.assets),
        checkpoint_bytes=sum(map(len, blobs)),
        checkpoint_bytes_per_asset=round(sum(map(len, blobs)) / args.assets),
    )
    emit(
        "anomaly_monitor_batch_records_per_s",
        batched,
        "records/s",
        one,
        baseline_name="AssetMonitor.update record by record, same batches, same run",
        assets=args.assets,
        records_per_asset_and_batch=args.run,
        timed_records=len(timed),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
