"""The flatline detector: a sensor repeating one value for longer than it ever did."""

from __future__ import annotations

import random

import pytest

from models.detectors.flatline import FlatlineDetector
from models.errors import ConfigError
from models.monitor import AssetMonitor
from models.monitor_config import DETECTORS, MonitorConfig
from tests.models.test_detectors import plain_state


def idling(n: int, rng: random.Random) -> list[float]:
    """A sensor that idles at 0 for 20 records out of every 100, moving otherwise."""
    return [0.0 if i % 100 < 20 else 5.0 + rng.gauss(0.0, 1.0) for i in range(n)]


def test_a_run_longer_than_any_before_is_reported_once() -> None:
    rng = random.Random(0)
    d = FlatlineDetector(ratio=1.25, min_run=10, min_changes=300)
    usual = [d.score_learn_one({"s": v, "t": rng.random()}) for v in idling(3000, rng)]
    assert not any(usual)  # idling as long as it always did is no finding
    stuck = [d.score_learn_one({"s": 0.0, "t": rng.random()}) for _ in range(60)]
    hits = [(i, f["flatline"]) for i, f in enumerate(stuck) if f]
    # the new idle run crosses 1.25 x the usual 20 records at its 26th record
    assert [(i, names) for i, (_, names) in hits] == [(25, ("s",))]
    assert hits[0][1][0] == pytest.approx(26 / 25)


def test_young_and_constant_sensors_are_not_scored() -> None:
    rng = random.Random(1)
    d = FlatlineDetector(ratio=1.0, min_run=5, min_changes=100)
    # 50 changes of value, then a long run: too few changes to trust the longest run
    found = [d.score_learn_one({"s": v, "c": 1.0}) for v in idling(60, rng) + [7.0] * 200]
    assert not any(found)  # and "c", never changing, is a constant, not a stuck sensor
    assert plain_state(d)


def test_sensors_in_any_order_or_missing_give_the_same_findings() -> None:
    rng = random.Random(2)
    a, b = FlatlineDetector(min_run=4, min_changes=20), FlatlineDetector(min_run=4, min_changes=20)
    values = idling(800, rng) + [0.0] * 40
    found_a, found_b = [], []
    for i, v in enumerate(values):
        found_a.append(a.score_learn_one({"s": v, "u": float(i % 7)}))
        x = {"u": float(i % 7), "s": v} if i % 3 else {"s": v}  # "u" missing now and then
        found_b.append(b.score_learn_one(x))
    assert [f for f in found_a if f] == [f for f in found_b if f] == [{"flatline": (1.04, ("s",))}]


def test_monitor_alarms_with_kind_flatline_and_checkpoints_it() -> None:
    rng = random.Random(3)
    cfg = MonitorConfig(warm_up=300, detectors=("flatline",), flatline_min_run=10)
    m = AssetMonitor(cfg)
    for i, v in enumerate(idling(2000, rng)):
        m.update({"s": v}, None, 300.0 * i)
    restored = AssetMonitor.from_bytes(m.to_bytes())
    kinds_a, kinds_b = [], []
    for i in range(2000, 2040):
        kinds_a.append(m.update({"s": 0.0}, None, 300.0 * i).kind)
        kinds_b.append(restored.update({"s": 0.0}, None, 300.0 * i).kind)
    assert "flatline" in kinds_a and kinds_a == kinds_b
    del m.__dict__["_flatline"]  # a checkpoint from before the flatline detector restores
    old = AssetMonitor.from_bytes(m.to_bytes())
    assert old._flatline is None and old.update({"s": 1.0}, None, 300.0 * 3000).records_seen


def test_bad_settings_are_refused() -> None:
    assert "flatline" in DETECTORS
    with pytest.raises(ValueError, match="min_run"):
        FlatlineDetector(min_run=1)
    with pytest.raises(ConfigError, match="flatline_min_run"):
        MonitorConfig(flatline_min_run=1)
