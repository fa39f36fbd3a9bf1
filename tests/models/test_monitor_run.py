"""A run of records through ``AssetMonitor.update_run`` gives exactly what ``update`` gives.

Several assets (simulated fleet with operating regimes and faults, NAB machine_temperature,
C-MAPSS engines), with missing sensors, a sensor appearing later, NaN values, settings named
without the regime prefix, a sensor named like a setting and out-of-order timestamps, go once
record by record and once in runs of random length; every result field of every record and the
checkpoint after must be identical (``repr``: floats to the last bit, NaN equal to NaN).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import replace

import pytest

from models.anomaly_eval import read_cmapss, read_nab_series
from models.datafiles import REFERENCE_DATA
from models.errors import PmaintError
from models.monitor import AssetMonitor
from models.monitor_config import DETECTORS, MonitorConfig
from models.monitor_run import RunFailedError
from models.simulator import FleetSimulator

Row = tuple[str, dict[str, float], dict[str, float] | None, float]
BASE = MonitorConfig(warm_up=60, min_count=10, novelty_warm_up=80, max_skipped=25)
CONFIGS = {  # asset -> settings: the variants of the learning policy and of the detectors
    "asset-000": BASE,
    "asset-001": replace(
        BASE,
        relearn_on_drift=True,
        learn_flagged=True,
        detectors=DETECTORS,
        pattern_length=16,
        flatline_min_run=2,
        flatline_changes=10,
    ),
    "asset-002": replace(BASE, drift_method="adwin", aggregate="rms"),
    "asset-003": replace(BASE, detector="hst", detectors=("spike", "deviation")),
    "nab": replace(BASE, relearn_on_drift=True, detectors=DETECTORS, flatline_min_run=3),
}


def fleet_rows() -> list[Row]:
    sim = FleetSimulator(assets=4, seed=11, regimes=3, fault_share=1.0, fault_rate=0.02)
    rng = random.Random(5)
    rows: list[Row] = []
    for n, r in enumerate(sim.records(4 * 320)):
        sensors = dict(r.sensors)
        settings: dict[str, float] | None = dict(r.settings)
        if n % 37 == 0:  # a sensor missing
            del sensors[rng.choice(sorted(sensors))]
        if n > 700:  # a sensor appearing
            sensors["s99"] = 3.0 + rng.gauss(0.0, 0.1)
        if n % 211 == 5:
            sensors["s4"] = math.nan
        if r.asset_id == "asset-001":  # settings without the regime prefix
            settings = {k.removeprefix("setting"): v for k, v in r.settings.items()}
        if r.asset_id == "asset-002" and n % 3 == 0:
            settings = None  # no settings at all
        if r.asset_id == "asset-003":
            sensors["setting_extra"] = 1.0  # a sensor named like a setting
        rows.append((r.asset_id, sensors, settings, r.ts_ms / 1000.0))
    return rows


def nab_rows() -> list[Row]:
    times, values = read_nab_series(
        REFERENCE_DATA / "nab" / "machine_temperature_system_failure.csv"
    )
    rows: list[Row] = [("nab", {"value": v}, None, t) for t, v in zip(times, values, strict=True)]
    rows = rows[2000:3200]
    for i in range(100, len(rows) - 1, 97):  # out-of-order event times
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    return rows


def cmapss_rows() -> list[Row]:
    engines = read_cmapss(REFERENCE_DATA / "cmapss" / "train_FD001.txt", units=2)
    return [
        (f"unit-{unit}", sensors, settings, 60.0 * cycle)
        for unit, rows in engines.items()
        for cycle, settings, sensors in rows
    ]


def interleave(groups: list[list[Row]], seed: int) -> list[Row]:
    rng = random.Random(seed)
    queues = [list(g) for g in groups]
    out: list[Row] = []
    while any(queues):
        q = rng.choice([q for q in queues if q])
        out.append(q.pop(0))
    return out


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return interleave([fleet_rows(), nab_rows(), cmapss_rows()], seed=3)


def config_of(asset: str) -> MonitorConfig:
    return CONFIGS.get(asset, BASE)


def record_by_record(rows: list[Row]) -> tuple[dict[str, list[str]], dict[str, AssetMonitor]]:
    monitors: dict[str, AssetMonitor] = {}
    results: dict[str, list[str]] = {}
    for asset, sensors, settings, ts in rows:
        m = monitors.setdefault(asset, AssetMonitor(config_of(asset)))
        results.setdefault(asset, []).append(repr(m.update(sensors, settings, ts)))
    return results, monitors


def in_runs(rows: list[Row], seed: int) -> tuple[dict[str, list[str]], dict[str, AssetMonitor]]:
    """Chunks of random size, grouped by asset in record order, as the worker does."""
    rng = random.Random(seed)
    monitors: dict[str, AssetMonitor] = {}
    results: dict[str, list[str]] = {}
    at = 0
    while at < len(rows):
        size = rng.choice((1, 2, 7, 40, 300))
        runs: dict[str, list[Row]] = {}
        for row in rows[at : at + size]:
            runs.setdefault(row[0], []).append(row)
        at += size
        for asset, run in runs.items():
            m = monitors.setdefault(asset, AssetMonitor(config_of(asset)))
            out = m.update_run([r[1] for r in run], [r[2] for r in run], [r[3] for r in run])
            assert len(out) == len(run)
            results.setdefault(asset, []).extend(repr(out.result(i)) for i in range(len(out)))
    return results, monitors


def test_runs_give_the_same_results_and_state_as_record_by_record(rows: list[Row]) -> None:
    expected, monitors = record_by_record(rows)
    assert {"nab", "unit-1", "unit-2", "asset-000", "asset-003"} <= set(expected)
    # the rows reach what they should: alarms, drift, warm-up over, regimes
    flat = "".join(r for results in expected.values() for r in results)
    assert "is_anomaly=True" in flat and "alarm=True" in flat and "DriftEvent" in flat
    for seed in (1, 2):
        got, run_monitors = in_runs(rows, seed)
        assert got.keys() == expected.keys()
        for asset, results in expected.items():
            assert len(got[asset]) == len(results)
            for i, (a, b) in enumerate(zip(results, got[asset], strict=True)):
                assert a == b, f"{asset} record {i}"
            assert monitors[asset].to_bytes() == run_monitors[asset].to_bytes(), asset


def test_a_failing_record_stops_the_run_there_with_the_results_before_it() -> None:
    m = AssetMonitor(BASE)
    one = AssetMonitor(BASE)
    good: Mapping[str, float] = {"s1": 1.0, "s2": 2.0}
    bad: Mapping[str, float] = {"s1": None, "s2": 2.0}  # type: ignore[dict-item]
    for i in range(30):
        m.update(good, None, float(i))
        one.update(good, None, float(i))
    with pytest.raises(RunFailedError) as failed:
        m.update_run([good, good, bad, good], [None] * 4, [30.0, 31.0, 32.0, 33.0])
    assert failed.value.index == 2 and len(failed.value.done) == 2
    assert isinstance(failed.value.__cause__, TypeError)
    assert isinstance(failed.value, PmaintError)
    one.update(good, None, 30.0)
    one.update(good, None, 31.0)
    with pytest.raises(TypeError):  # update raises the record's own error
        one.update(bad, None, 32.0)
    assert m.to_bytes() == one.to_bytes()


def test_runs_of_unequal_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        AssetMonitor(BASE).update_run([{"s1": 1.0}], [None, None], [0.0])


def test_caches_are_not_state_a_restored_monitor_goes_on_exactly_alike() -> None:
    """The arrays and tables the detectors make once to go faster (novelty margins, regime
    tolerances) stay out of the checkpoint: it has the bytes of a monitor that never made them,
    and a monitor restored from it goes on exactly as the one that kept running."""
    own = [r for r in fleet_rows() if r[0] == "asset-000"]
    m = AssetMonitor(BASE)
    for _, sensors, settings, ts in own[:200]:
        m.update(sensors, settings, ts)
    assert m._novelty._margin_row is not None and m._scorer._regimes._grid is not None
    saved = m.to_bytes()
    restored = AssetMonitor.from_bytes(saved)
    assert "_margin_row" not in vars(restored._novelty)
    assert "_grid" not in vars(restored._scorer._regimes)
    assert restored.to_bytes() == saved
    for _, sensors, settings, ts in own[200:]:
        assert repr(m.update(sensors, settings, ts)) == repr(restored.update(sensors, settings, ts))
    assert m.to_bytes() == restored.to_bytes()
