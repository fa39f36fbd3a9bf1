"""The pattern (subsequence discord) detector: what it sees, what it ignores, what it keeps."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from models.detectors.pattern import PatternDetector
from models.errors import ConfigError
from models.monitor import AssetMonitor
from models.monitor_config import DETECTORS, MonitorConfig
from tests.models.test_detectors import plain_state


def cycle(i: int, rng: random.Random) -> float:
    """A load cycle of 64 records (a ramp up, a plateau, a drop) with a little noise."""
    phase = i % 64
    level = phase / 16 if phase < 16 else (1.0 if phase < 40 else 0.0)
    return 10.0 + 4.0 * level + rng.gauss(0.0, 0.05)


def test_a_cycle_that_loses_its_course_is_seen_and_its_normal_course_is_not() -> None:
    rng = random.Random(3)
    d = PatternDetector(length=32, points=8, warm_up=30)
    normal = [d.score_learn_one({"s": cycle(i, rng)}) for i in range(4000)]
    assert not any(normal[1500:])  # the learned cycle: silent
    # the plateau stays on (every value within the range the sensor has always shown)
    broken = [d.score_learn_one({"s": 14.0 + rng.gauss(0.0, 0.05)}) for _ in range(64)]
    hits = [f["pattern"] for f in broken if f]
    assert hits and hits[0][0] > 1.0 and hits[0][1] == ("s",)


def test_missing_and_nan_values_do_not_poison_the_state() -> None:
    rng = random.Random(1)
    d = PatternDetector(length=16, points=8, reservoir=8, warm_up=5)
    for i in range(600):
        x = {"a": cycle(i, rng), "b": cycle(i + 7, rng)}
        if i % 5 == 0:
            x["a"] = math.nan
        if i % 3 == 0:
            del x["b"]
        d.score_learn_one(x)
    assert np.isfinite(d._past).all() and np.isfinite(d._state).all()
    assert d.queries > 0


def test_state_is_bounded_and_plain() -> None:
    d = PatternDetector(length=16, points=8, reservoir=8, max_sensors=2)
    for i in range(2000):
        d.score_learn_one({f"s{k}": float((i * (k + 1)) % 13) for k in range(6)})
    assert d._names == ("s0", "s1")  # only the first sensors are watched
    assert d._past.shape == (2, 8, 8) and d._past.dtype == np.float32
    assert plain_state(d)


def test_constructor_and_config_refuse_bad_lengths() -> None:
    with pytest.raises(ValueError, match="multiple of points"):
        PatternDetector(length=20, points=8)
    with pytest.raises(ConfigError, match="pattern_length"):
        MonitorConfig(pattern_length=20)
    with pytest.raises(ConfigError, match="pattern_reservoir"):
        MonitorConfig(pattern_reservoir=0)
    assert "pattern" in DETECTORS and "pattern" in MonitorConfig().detectors


def test_monitor_keeps_the_configured_reservoir() -> None:
    cfg = MonitorConfig(detectors=("pattern",), pattern_reservoir=96, pattern_length=16)
    m = AssetMonitor(cfg)
    for i in range(1000):
        m.update({"s": float(i % 7), "t": float(i % 5)}, None, 300.0 * i)
    assert m._pattern is not None and m._pattern._past.shape == (2, 96, 8)
    assert m._pattern.kept == 96  # filled: 2 records a segment, 500 segments


def test_monitor_alarms_with_kind_pattern_and_checkpoints_it() -> None:
    rng = random.Random(2)
    cfg = MonitorConfig(warm_up=300, detectors=("pattern",), pattern_length=32)
    m = AssetMonitor(cfg)
    for i in range(3000):
        m.update({"s": cycle(i, rng)}, None, 300.0 * i)
    restored = AssetMonitor.from_bytes(m.to_bytes())
    kinds_a, kinds_b = [], []
    for i in range(3000, 3064):
        x = {"s": 14.0 + rng.gauss(0.0, 0.05)}
        kinds_a.append(m.update(x, None, 300.0 * i).kind)
        kinds_b.append(restored.update(x, None, 300.0 * i).kind)
    assert "pattern" in kinds_a and kinds_a == kinds_b
    del m.__dict__["_pattern"]  # a checkpoint from before the pattern detector restores
    old = AssetMonitor.from_bytes(m.to_bytes())
    assert old._pattern is None and old.update({"s": 10.0}, None, 300.0 * 4000).records_seen


def test_pattern_findings_judged_against_the_assets_history() -> None:
    assert AssetMonitor(MonitorConfig())._alarm.history == {"variance": 1.0, "pattern": 1.0}
    assert "pattern" not in AssetMonitor(MonitorConfig(pattern_history=0.0))._alarm.history
    with pytest.raises(ConfigError, match="history"):
        MonitorConfig(pattern_history=-1.0)
