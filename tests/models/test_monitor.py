"""The per-asset facade: learning policy, explanation, drift, checkpoints."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator

import pytest

from models.errors import ArtifactError, ConfigError
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig
from models.monitor_run import MonitorResult
from models.simulator import FleetSimulator, SimRecord


def replay(
    sim: FleetSimulator, n: int, config: MonitorConfig | None = None
) -> Iterator[tuple[SimRecord, MonitorResult]]:
    monitors: dict[str, AssetMonitor] = {}
    for rec in sim.records(n):
        m = monitors.setdefault(rec.asset_id, AssetMonitor(config))
        yield rec, m.update(rec.sensors, rec.settings, rec.ts_ms / 1000.0)


def test_flags_overlap_injected_spikes_far_better_than_chance() -> None:
    sim = FleetSimulator(assets=4, seed=3, fault_share=1.0, fault_rate=0.01)
    rows = [(rec.fault, res) for rec, res in replay(sim, 8000) if not res.warming_up]
    flagged = [fault for fault, res in rows if res.is_anomaly]
    faulty_share = sum(f is not None for f, _ in rows) / len(rows)
    precision = sum(f is not None for f in flagged) / len(flagged)
    spikes = [res.is_anomaly for fault, res in rows if fault == "spike"]
    normal = [res.is_anomaly for fault, res in rows if fault is None]
    assert len(flagged) > 100
    assert precision > 0.95 > faulty_share * 2  # chance would be the faulty share
    # a single-record spike is flagged far more often than a normal record
    assert sum(spikes) / len(spikes) > 0.1 > 20 * sum(normal) / len(normal)


def test_regime_switches_are_not_alarms() -> None:
    sim = FleetSimulator(assets=3, seed=5, regimes=4, fault_share=0.0)
    results = [res for _, res in replay(sim, 6000) if not res.warming_up]
    assert sum(r.is_anomaly for r in results) / len(results) < 0.02  # reached: 0.008
    run = longest = 0
    for r in results:
        run = run + 1 if r.is_anomaly else 0
        longest = max(longest, run)
    assert longest <= 2  # reached: 1; an alert needs 12 in a row


def test_warm_up_never_alarms_and_counts() -> None:
    m = AssetMonitor(MonitorConfig(warm_up=100, min_count=5))
    rng = random.Random(0)
    for i in range(100):
        r = m.update({"s1": rng.gauss(0, 1) * (50 if i > 50 else 1)}, None, float(i))
        assert r.warming_up
        assert not r.is_anomaly
    assert r.records_seen == 100
    assert not m.update({"s1": 0.0}, None, 100.0).warming_up


def shifted(n: int, shift_at: int, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [
        {
            "s1": 50.0 + rng.gauss(0, 1),
            "s2": 20.0 + rng.gauss(0, 0.5) + (5.0 if i >= shift_at else 0.0),
            "s3": 7.0 + rng.gauss(0, 0.2),
        }
        for i in range(n)
    ]


def test_level_shift_alarms_explains_drifts_once_and_is_relearned() -> None:
    m = AssetMonitor(MonitorConfig(max_skipped=100))
    results = [m.update(x, None, 60.0 * i) for i, x in enumerate(shifted(3000, 1500))]
    after = results[1500:1510]
    assert all(r.is_anomaly and not r.learned for r in after)
    assert all(r.top_sensors[0][0] == "s2" and r.top_sensors[0][1] > 5 for r in after)
    drifts = [r.drift for r in results if r.drift is not None]
    assert len(drifts) == 1
    assert drifts[0].directions[0] == ("s2", "up")
    assert not any(r.is_anomaly for r in results[1800:])  # the new level became normal
    # before the shift only the quantile's share of single records is above threshold
    assert sum(r.is_anomaly for r in results[400:1500]) < 0.015 * 1100


def test_learning_flagged_records_is_configurable() -> None:
    m = AssetMonitor(MonitorConfig(learn_flagged=True))
    results = [m.update(x, None, 60.0 * i) for i, x in enumerate(shifted(2000, 1500))]
    assert results[1500].is_anomaly
    assert results[1500].learned


def test_checkpoint_roundtrip_is_exact_and_small() -> None:
    sim = FleetSimulator(assets=1, seed=2, fault_share=1.0)
    recs = list(sim.records(1500))
    m = AssetMonitor()
    for r in recs[:1000]:
        m.update(r.sensors, r.settings, r.ts_ms / 1000)
    blob = m.to_bytes()
    assert len(blob) < 17_500  # 21 sensors; daily profiles, level ring ~2 KB each, patterns ~5 KB
    clone = AssetMonitor.from_bytes(blob)
    for r in recs[1000:]:
        args = (r.sensors, r.settings, r.ts_ms / 1000)
        assert clone.update(*args) == m.update(*args)


def test_restored_monitors_share_names_and_settings_within_the_memory_budget() -> None:
    sim = FleetSimulator(assets=10, seed=4, fault_share=0.0)
    config = MonitorConfig(warm_up=100)
    monitors: dict[str, AssetMonitor] = {}
    for r in sim.records(10 * 400):
        monitor = monitors.setdefault(r.asset_id, AssetMonitor(config))
        monitor.update(r.sensors, r.settings, r.ts_ms / 1000)
    blobs = [m.to_bytes() for m in monitors.values()]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    restored = [AssetMonitor.from_bytes(b) for b in blobs]
    per_asset = (tracemalloc.get_traced_memory()[0] - before) / len(restored)
    tracemalloc.stop()
    a, b = restored[:2]
    assert a.config is b.config and a._novelty._names is b._novelty._names
    assert per_asset < 50_000  # issue 14: at most 50 KB per asset (every default detector warm)


def test_deterministic_hst_with_seed() -> None:
    cfg = MonitorConfig(detector="hst", seed=4, warm_up=10)
    data = shifted(600, 400)
    runs = [[AssetMonitor(cfg)] for _ in range(2)]
    scores = [[run[0].update(x, None, float(i)).score for i, x in enumerate(data)] for run in runs]
    assert scores[0] == scores[1]
    assert max(scores[0][400:]) > max(scores[0][100:400])


def test_bad_checkpoints_and_config() -> None:
    with pytest.raises(ArtifactError):
        AssetMonitor.from_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError):
        AssetMonitor.from_bytes(AssetMonitor().to_bytes()[:-5])
    with pytest.raises(ConfigError):
        MonitorConfig(detector="lof")
    with pytest.raises(ConfigError):
        MonitorConfig(quantile=1.5)
