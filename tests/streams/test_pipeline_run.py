"""A chunk's records grouped by asset (``ModelPipeline.observe_run``) give, per asset and in
record order, exactly the outputs and checkpoints of record-by-record ``observe``."""

from __future__ import annotations

import random
from collections import defaultdict

from models.monitor_config import MonitorConfig
from models.simulator import FleetSimulator
from streams.core.fleet import AssetState
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.schema import Telemetry

CONFIG = PipelineConfig(monitor=MonitorConfig(warm_up=60, min_count=10, novelty_warm_up=80))


def records() -> list[Telemetry]:
    sim = FleetSimulator(assets=5, seed=7, regimes=3, fault_share=1.0, fault_rate=0.02)
    out = []
    for n, r in enumerate(sim.records(5 * 300)):
        sensors = dict(r.sensors)
        if n % 41 == 0:
            del sensors["s3"]
        if n > 600 and n % 293 == 17:  # a value no model can take: this record fails alone
            sensors["s2"] = None  # type: ignore[assignment]
        out.append(Telemetry(r.asset_id, r.ts_ms, sensors, r.cycle, r.settings, site="A"))
    return out


def replay(grouped: bool) -> tuple[dict[str, list[str]], dict[str, bytes], int]:
    """Outputs per asset (``repr``, in order), checkpoints, anomalous records."""
    pipeline = ModelPipeline(CONFIG)
    states: dict[str, AssetState] = {}
    per_asset: dict[str, list[str]] = defaultdict(list)
    rng = random.Random(4)
    rows = records()
    anomalies = at = 0
    while at < len(rows):
        size = rng.choice((1, 5, 60, 250))
        chunk = rows[at : at + size]
        at += size
        out = Outputs()
        runs: dict[str, tuple[AssetState, list[Telemetry]]] = {}
        for r in chunk:
            state = states.setdefault(r.asset_id, AssetState(r.asset_id, 0, r.ts_ms))
            state.observe(r)
            runs.setdefault(r.asset_id, (state, []))[1].append(r)
        for state, run in runs.values():
            if grouped:
                anomalies += pipeline.observe_run(state, run, out)
            else:
                for r in run:
                    failed = len(out.failed)
                    pipeline.observe(state, r, out)
                    scored = len(out.failed) == failed and state.last is not None
                    anomalies += scored and state.last.is_anomaly
        for point in out.points:
            per_asset[point.tags["asset_id"]].append(repr(point))
        for event in out.alerts:
            per_asset[event.asset_id].append(repr(event))
        for record, reason in out.failed:
            per_asset[record.asset_id].append(f"failed {record.ts_ms} {reason}")
    checkpoints = {a: pipeline.checkpoint(s) or b"" for a, s in states.items()}
    return dict(per_asset), checkpoints, anomalies


def test_grouped_runs_give_the_outputs_and_checkpoints_of_record_by_record() -> None:
    expected, saved, anomalies = replay(grouped=False)
    got, saved_grouped, anomalies_grouped = replay(grouped=True)
    failed = [line for lines in expected.values() for line in lines if line.startswith("failed")]
    assert len(failed) >= 3  # the records with a None value (dead-lettered, not a crash)
    assert anomalies > 0 and anomalies == anomalies_grouped
    assert any("AlertEvent" in line for lines in expected.values() for line in lines)
    assert got.keys() == expected.keys()
    for asset, lines in expected.items():
        assert got[asset] == lines, asset
    assert saved == saved_grouped
