"""The level detector (a smoothed level's novelty): what it sees, ignores and keeps."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from models.detectors.level import LevelDetector
from models.errors import ConfigError
from models.monitor import AssetMonitor
from models.monitor_config import DETECTORS, MonitorConfig
from tests.models.test_detectors import plain_state


def spiky(i: int, rng: random.Random) -> float:
    """Noise around 10 with a large spike every 500 records (the value range reaches 40)."""
    return 10.0 + rng.gauss(0.0, 0.5) + (30.0 if i % 500 == 250 else 0.0)


def test_a_plateau_inside_the_value_range_is_seen_and_spikes_are_not() -> None:
    rng = random.Random(4)
    d = LevelDetector(warm_up=300, settle=0)
    normal = [d.score_learn_one({"s": spiky(i, rng)}) for i in range(5000)]
    assert not any(normal[1000:])  # single spikes barely move the smoothed level
    plateau = [d.score_learn_one({"s": 14.0 + rng.gauss(0.0, 0.5)}) for _ in range(100)]
    hits = [f["level"] for f in plateau if f]
    assert hits and hits[0][0] > 1.0 and hits[0][1] == ("s",)


def test_a_young_range_needs_a_larger_move() -> None:
    rng = random.Random(5)
    settled, young = LevelDetector(settle=0), LevelDetector(settle=1500, boost=5.0)
    for _ in range(600):
        x = {"s": 10.0 + rng.gauss(0.0, 0.5)}
        settled.score_learn_one(x)
        young.score_learn_one(x)
    step = [{"s": 10.5 + rng.gauss(0.0, 0.5)} for _ in range(100)]
    assert any(settled.score_learn_one(x) for x in step)
    assert not any(young.score_learn_one(x) for x in step)


def test_missing_new_and_nan_values_do_not_poison_the_state() -> None:
    rng = random.Random(1)
    d = LevelDetector(warm_up=50, settle=0)
    for i in range(2000):
        x = {"a": spiky(i, rng), "b": spiky(i + 3, rng)}
        if i % 5 == 0:
            x["a"] = math.nan
        if i % 3 == 0:
            del x["b"]
        if i >= 1000:
            x["c"] = 1.0  # a sensor that appears later
        d.score_learn_one(x)
    assert d._names == ("a", "b", "c")
    assert np.isfinite(d._state).all() and np.isfinite(d._ring).all()
    assert d._state[0].tolist() == [1600.0, 1333.0, 1000.0]  # records seen per sensor
    assert plain_state(d)


def test_constructor_and_config_refuse_a_lag_off_its_step() -> None:
    with pytest.raises(ValueError, match="multiple of step"):
        LevelDetector(lag=50, step=12)
    with pytest.raises(ConfigError, match="level_step"):
        MonitorConfig(level_step=5)


def test_monitor_alarms_with_kind_level_and_checkpoints_it() -> None:
    rng = random.Random(2)
    m = AssetMonitor(MonitorConfig(detectors=("level",), level_settle=0))
    assert {"level", "flatline"} <= set(MonitorConfig().detectors) <= set(DETECTORS)
    for i in range(3000):
        m.update({"s": spiky(i, rng)}, None, 300.0 * i)
    restored = AssetMonitor.from_bytes(m.to_bytes())
    plateau = [(300.0 * i, {"s": 14.0 + rng.gauss(0.0, 0.5)}) for i in range(3000, 3100)]
    kinds = [m.update(x, None, t).kind for t, x in plateau]
    assert "level" in kinds and kinds == [restored.update(x, None, t).kind for t, x in plateau]
    del m.__dict__["_level"]  # a checkpoint from before the level detector restores without it
    assert AssetMonitor.from_bytes(m.to_bytes())._level is None
