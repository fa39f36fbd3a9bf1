"""A fleet with injected faults gives a few alert lifecycles, not an alert per record.

The simulator's records run through the worker's own per-record model work
(:class:`ModelPipeline`: anomaly monitor, drift detector, stuck-sensor check, alert engine),
without Kafka, so the alert events are exactly the ones a worker would publish.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

from models.monitor_config import MonitorConfig
from models.simulator import FleetSimulator
from streams.core.alerts import AlertEvent
from streams.core.fleet import AssetState
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.schema import Telemetry

ASSETS, PER_ASSET = 4, 1000


def run_fleet() -> tuple[list[AlertEvent], int, int, int]:
    """Alert events, anomalous records, faulty records, fault episodes."""
    sim = FleetSimulator(assets=ASSETS, seed=7, fault_share=1.0, fault_rate=0.01)
    pipeline = ModelPipeline(PipelineConfig(monitor=MonitorConfig(warm_up=100)))
    states: dict[str, AssetState] = {}
    out = Outputs()
    anomalous = faulty = episodes = 0
    running: dict[str, str | None] = {}
    for r in sim.records(ASSETS * PER_ASSET):
        state = states.setdefault(r.asset_id, AssetState(r.asset_id, 0, r.ts_ms))
        record = Telemetry(r.asset_id, r.ts_ms, r.sensors, r.cycle, r.settings)
        state.observe(record)
        pipeline.observe(state, record, out)
        anomalous += state.last is not None and state.last.is_anomaly
        faulty += r.fault is not None
        episodes += r.fault is not None and running.get(r.asset_id) != r.fault
        running[r.asset_id] = r.fault
    assert not out.failed
    return out.alerts, anomalous, faulty, episodes


def test_fault_episodes_give_one_lifecycle_each() -> None:
    events, anomalous, faulty, episodes = run_fleet()
    by_id: dict[str, list[AlertEvent]] = defaultdict(list)
    by_track: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in events:
        if e.alert_id not in by_id:
            by_track[(e.asset_id, e.kind)].append(e.alert_id)
        by_id[e.alert_id].append(e)

    # every alert: one open first, updates, at most one resolved and only at the end
    for alert, lifecycle in by_id.items():
        states = [e.state for e in lifecycle]
        assert states[0] == "open", (alert, states)
        assert states.count("open") == 1 and states.count("resolved") <= 1, (alert, states)
        assert "resolved" not in states[:-1], (alert, states)
        assert len({(e.asset_id, e.kind) for e in lifecycle}) == 1
        times = [e.ts for e in lifecycle]
        assert times == sorted(times), (alert, times)

    # per (asset, kind) the alerts follow one another: each resolved before the next opens
    for track, ids in by_track.items():
        for earlier, later in pairwise(ids):
            assert by_id[earlier][-1].state == "resolved", track
            assert by_id[earlier][-1].ts <= by_id[later][0].ts, track

    kinds = Counter(e.kind for e in events)
    opens = Counter(e.state for e in events)["open"]
    assert {"anomaly", "drift", "data_quality"} <= set(kinds), kinds
    assert opens == len(by_id)
    # a few events per fault episode, not one per record
    assert opens <= episodes, (opens, episodes)
    assert kinds["anomaly"] * 4 <= anomalous, (kinds, anomalous)
    assert len(events) * 5 <= faulty, (len(events), faulty)
