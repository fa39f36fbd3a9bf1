"""Detectors by kind, the alarm policy by kind, NAB scoring, labelled intervals, policy files."""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import numpy as np
import pytest

from models import state_codec
from models.detectors.alarm import KindAlarm
from models.detectors.correlation import CorrelationDetector
from models.detectors.novelty import NoveltyDetector
from models.detectors.seasonal import SeasonalDetector
from models.errors import ConfigError
from models.intervals import label_runs, score_intervals
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig
from models.nab_score import normalised, scaled_sigmoid, score_series
from models.policy import DetectorPolicy

PLAIN = (type(None), bool, int, float, str, bytes, np.ndarray, np.generic)


def plain_state(obj: Any, depth: int = 0) -> bool:
    """Only the types the checkpoint codec accepts, in classes defined under ``models.``."""
    assert depth < 12
    if isinstance(obj, PLAIN):
        return True
    if isinstance(obj, list | tuple | deque):
        return all(plain_state(v, depth + 1) for v in obj)
    if isinstance(obj, dict):
        return all(plain_state(k, depth + 1) and plain_state(v, depth + 1) for k, v in obj.items())
    if type(obj).__module__.startswith("models."):
        return all(plain_state(v, depth + 1) for v in vars(obj).values())
    return False


def noisy(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [10.0 + rng.gauss(0.0, 0.5) for _ in range(n)]


def test_novelty_detectors_each_see_their_kind() -> None:
    d = NoveltyDetector(min_count=50)
    assert d.score_one({"s": 1.0}) == {}  # works before any learning
    for v in noisy(600):
        d.learn_one({"s": v})
    before = d._state.copy()
    assert "spike" in d.score_one({"s": 14.0}) and "shift" in d.score_one({"s": 14.0})
    assert (d._state == before).all()  # scoring learns nothing
    assert d.score_one({"s": 10.2}) == {}
    # a level shift alarms once: the range takes the new level in
    seen = []
    for v in [x + 8.0 for x in noisy(50, seed=2)]:
        seen.append("shift" in d.score_one({"s": v}))
        d.learn_one({"s": v})
    assert seen[0] and sum(seen) <= 3
    # noise growing: the variance detector (the other detectors may or may not see it)
    v2 = NoveltyDetector(min_count=50)
    for v in noisy(600, seed=3):
        v2.learn_one({"s": v})
    rng = random.Random(4)
    found = []
    for _ in range(30):
        x = {"s": 10.0 + rng.gauss(0.0, 3.0)}
        found += list(v2.score_one(x))
        v2.learn_one(x)
    assert "variance" in found


def test_young_range_needs_a_larger_shift() -> None:
    """Until ``shift_settle`` records, a shift must leave the range by more (up to 3x)."""
    values = noisy(60)
    width = max(values) - min(values)
    jump = {"s": max(values) + 0.1 * width}  # twice the shift margin (0.05) above the range
    settled, young = NoveltyDetector(min_count=50, shift_settle=0), NoveltyDetector(min_count=50)
    for v in values:
        settled.learn_one({"s": v})
        young.learn_one({"s": v})
    assert "shift" in settled.score_one(jump) and "shift" not in young.score_one(jump)
    far = {"s": max(values) + 0.2 * width}  # four times: young ranges see it too
    assert "shift" in young.score_one(far)


def test_seasonal_detector_sees_a_broken_daily_cycle_only_where_one_exists() -> None:
    rng = random.Random(7)
    d = SeasonalDetector()
    found: list[tuple[int, tuple[str, ...]]] = []
    for i in range(10 * 288):  # ten days of 5-minute records
        t = 300.0 * i
        cycle = 10.0 + 5.0 * math.sin(2 * math.pi * t / 86400)
        broken = i >= 9 * 288 and 100 <= i % 288 < 200  # day 10: the afternoon stays flat
        x = {"daily": 10.0 if broken else cycle + rng.gauss(0, 0.2), "noise": rng.gauss(0, 1)}
        if i % 500 == 0:
            x = {"noise": x["noise"], "daily": x["daily"]}  # another order: same rows
        found += [(i, f["seasonal"][1]) for f in [d.score_learn_one(x, t)] if f]
    assert found and all(sensors == ("daily",) for _, sensors in found)
    assert all(i >= 9 * 288 + 100 for i, _ in found)  # nothing before the break
    assert found[0][0] < 9 * 288 + 150  # seen within its first half
    assert plain_state(d)


@pytest.mark.parametrize("sensors", [1, 6])
def test_novelty_score_learn_one_equals_score_then_learn(sensors: int) -> None:
    """The fast path (one feature pass, full excess only off-range) changes no finding."""
    rng = random.Random(3)
    fast, slow = NoveltyDetector(min_count=50), NoveltyDetector(min_count=50)
    seen = 0
    for i in range(3000):
        x = {f"s{k}": math.sin(i / (20 + k)) + rng.gauss(0, 0.1) for k in range(sensors)}
        if i % 400 == 399:
            x["s0"] += 5.0  # spikes and shifts, both ways
        if i % 400 == 199:
            x["s0"] -= 5.0
        if i == 1500:
            x = {"s9": 1.0, **x}  # a new sensor, out of row order
        if i % 97 == 0 and sensors > 1:
            del x["s1"]  # a missing sensor
        expected = slow.score_one(x)
        slow.learn_one(x)
        assert fast.score_learn_one(x) == expected
        seen += bool(expected)
    assert seen >= 7
    np.testing.assert_array_equal(fast._state, slow._state)


def test_correlation_detector_sees_sensors_that_stop_moving_together() -> None:
    d = CorrelationDetector(min_count=100)
    rng = random.Random(5)
    for i in range(800):
        a = math.sin(i / 9) + rng.gauss(0, 0.05)
        d.learn_one({"s1": a, "s2": 2 * a, "s3": -a, "s4": rng.gauss(0, 1)})
    assert d.score_one({"s1": 1.0, "s2": 2.0, "s3": -1.0, "s4": 0.3}) == {}
    excess, sensors = d.score_one({"s1": 1.0, "s2": -2.0, "s3": -1.0, "s4": 0.3})["correlation"]
    assert excess > 1.0 and sensors[0] == "s2"
    assert d.score_one({"s1": 1.0, "s2": 2.0}) == {}  # too few sensors: silent


def test_correlation_detector_t2_sees_sensors_together_further_than_ever() -> None:
    """T²: the sensors keep their correlation but go further than they ever went."""
    d = CorrelationDetector(min_count=100)
    rng = random.Random(5)
    for i in range(800):
        a = math.sin(i / 9)
        noise = [rng.gauss(0, 0.05) for _ in range(4)]
        x = (a, 2 * a, -a, 0.0)
        d.learn_one({f"s{k + 1}": x[k] + noise[k] for k in range(4)})
    assert d.score_one({"s1": 0.9, "s2": 1.8, "s3": -0.9, "s4": 0.0}) == {}
    far = {"s1": 4.0, "s2": 8.0, "s3": -4.0, "s4": 0.0}
    excess, sensors = d.score_one(far)["correlation"]
    assert excess > 1.0 and set(sensors) == {"s1", "s2", "s3"} and sensors[0] == "s2"
    d._t2_max = 0.0  # without T² the record is not seen: the sensors still agree
    assert d.score_one(far) == {}


def test_alarm_policy_by_kind() -> None:
    a = KindAlarm(debounce=3, hold=2)
    assert a.update({"spike": (2.5, ("s1",))}, 10.0)  # a spike opens at once
    assert (a.kind, a.since, a.magnitude, a.sensors) == ("spike", 10.0, 2.5, ("s1",))
    assert a.update({}, 11.0) and a.update({}, 12.0) and not a.update({}, 13.0)
    dev = {"deviation": (1.2, ("s2",))}
    assert [a.update(dev, t) for t in (20.0, 21.0, 22.0)] == [False, False, True]
    assert (a.kind, a.since) == ("deviation", 20.0)  # since the run began


def test_deviation_no_larger_than_before_is_weak() -> None:
    a = KindAlarm(debounce=2, hold=0, weak_debounce=5, deviation_history=1.0)
    run = [a.update({"deviation": (3.0, ())}, float(t)) for t in range(3)]
    assert run == [False, True, True]  # the asset's first sustained run
    assert a.since == 0.0  # since the run began
    a.update({}, 3.0)
    again = [a.update({"deviation": (2.5, ())}, 4.0 + t) for t in range(5)]
    assert again == [False] * 4 + [True]  # at most the earlier peak: must last weak_debounce
    assert a.since == 4.0
    a.update({}, 9.0)
    larger = [a.update({"deviation": (3.5, ())}, 10.0 + t) for t in range(2)]
    assert larger == [False, True]


def test_variance_history_forgets_slowly() -> None:
    a = KindAlarm(hold=0, history={"variance": 1.0}, decay=0.9)
    assert a.update({"variance": (2.0, ("s",))}, 0.0)  # the first: alarms
    assert not a.update({"variance": (1.5, ("s",))}, 1.0)  # smaller than 2.0 x 0.9
    assert a.update({"shift": (1.2, ())}, 2.0)  # other kinds are not filtered
    for t in range(3, 20):  # 17 quiet records: 2.0 x 0.9**19 is far below 1.5
        a.update({}, float(t))
    assert a.update({"variance": (1.5, ("s",))}, 20.0)


def test_alarm_checkpoint_from_before_the_history_restores() -> None:
    a = KindAlarm(debounce=2, hold=0)
    for name in ("weak_debounce", "deviation_history", "history", "decay"):
        del a.__dict__[name]
    del a.__dict__["_peaks"], a.__dict__["_n"], a.__dict__["_run_peak"]
    old = state_codec.decode(state_codec.encode(a))
    assert isinstance(old, KindAlarm)
    assert [old.update({"deviation": (1.1, ())}, float(t)) for t in range(2)] == [False, True]
    assert old.update({"variance": (1.0, ())}, 2.0) and old._peaks == {}


def test_monitor_reports_kind_since_and_sensors() -> None:
    m = AssetMonitor(MonitorConfig(warm_up=100, novelty_warm_up=100, min_count=10))
    for i, v in enumerate(noisy(400)):
        r = m.update({"a": v, "b": 5.0 + (i % 3) * 0.01}, None, 60.0 * i)
    assert not r.alarm
    r = m.update({"a": 40.0, "b": 5.01}, None, 60.0 * 400)
    assert r.alarm and r.kind in ("spike", "shift") and r.since == 60.0 * 400
    assert r.top_sensors[0][0] == "a"
    # the new detectors' state is checkpointable by a generic attribute codec
    assert all(plain_state(d) for d in (m._novelty, m._correlation, m._alarm, m._seasonal))
    del m.__dict__["_seasonal"]  # a checkpoint from before the seasonal detector restores
    old = AssetMonitor.from_bytes(m.to_bytes())
    assert old._seasonal is None and old.update({"a": 10.0, "b": 5.0}, None, 6e4).records_seen


def test_lasting_fault_does_not_raise_the_threshold() -> None:
    m = AssetMonitor(MonitorConfig(warm_up=200))
    for i, v in enumerate(noisy(600)):
        m.update({"s": v}, None, float(i))
    normal = m.update({"s": 10.0}, None, 600.0).threshold
    for i in range(601, 2000):  # 1400 records far off: a lasting fault
        r = m.update({"s": 10.0 + 30.0 * (i % 2)}, None, float(i))
    assert r.threshold <= 2.0 * 2.5 + 1e-9  # capped at threshold_cap x floor
    assert normal <= r.threshold


def test_nab_score_bounds_and_rules() -> None:
    wins = [(100.0, 200.0)]
    assert scaled_sigmoid(-1.0) > 0.98 and scaled_sigmoid(0.0) == 0.0
    null, perfect = score_series([], wins), score_series([100.0], wins)
    assert normalised([null]) == 0.0 and normalised([perfect]) == pytest.approx(100.0)
    early, late = score_series([110.0], wins), score_series([190.0], wins)
    assert early.raw > late.raw > null.raw
    assert score_series([110.0, 150.0], wins).raw == early.raw  # only the earliest counts
    assert score_series([110.0, 50.0], wins).raw == pytest.approx(early.raw - 0.11)
    near, far = score_series([110.0, 210.0], wins), score_series([110.0, 600.0], wins)
    assert early.raw > near.raw > far.raw  # a false positive right after a window costs less
    assert score_series([110.0], wins, probation_end=120.0).raw == null.raw


def test_intervals_point_and_event_figures() -> None:
    times = [float(t) for t in range(10)]
    labels = [t in (3, 4, 5) for t in range(10)]
    runs = label_runs("p1", times, labels)
    assert runs == [("p1", 3.0, 5.0)]
    states = {"p1": [(t, t in (4.0, 5.0, 6.0)) for t in times]}
    r = score_intervals(states, {"p1": [4.0, 8.0]}, runs)
    assert (r.events_detected, r.events_total, r.false_alarms) == (1, 1, 1)
    assert r.point_f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert r.point_far == pytest.approx(1 / 7) and r.point_mar == pytest.approx(1 / 3)
    # another asset's alert inside p1's interval is a false alarm, not a detection
    r2 = score_intervals({"p1": [], "p2": []}, {"p2": [4.0]}, runs)
    assert (r2.events_detected, r2.false_alarms) == (0, 1)


def test_policy_file_rules_and_errors() -> None:
    text = """
[defaults]
hold = 5

[[rule]]
assets = "pump-*"
spike_margin = 0.3

[[rule]]
type = "web-server"
detectors = ["spike", "shift"]
"""
    p = DetectorPolicy.from_toml(text)
    assert p.config_for("pump-1", "web-server").spike_margin == 0.3  # first match wins
    assert p.config_for("pump-1", None).hold == 5  # defaults under every rule
    assert p.config_for("web-9", "web-server").detectors == ("spike", "shift")
    assert p.config_for("fan-1", None) == MonitorConfig(hold=5)
    for bad, match in (
        ("[[rule]]\nassets = 'x'\nnope = 1\n", "unknown settings"),
        ("[[rule]]\nhold = 1\n", "needs 'assets'"),
        ("[other]\n", "unknown tables"),
        ("[types]\n'x-*' = 1\n", "entries are"),
        ("[[rule]]\nassets = 'x'\ndetectors = ['psychic']\n", "unknown detectors"),
        ("not toml = = 1", "not TOML"),
    ):
        with pytest.raises(ConfigError, match=match):
            DetectorPolicy.from_toml(bad)
