"""Drift detection: one event per change, with the right sensor and direction."""

from __future__ import annotations

import pickle
import random

import pytest

from models.drift import DriftEvent, SensorDriftDetector


def deviations(n: int, shift_at: int | None, shift: float, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        z = {f"s{k}": rng.gauss(0, 1) for k in range(1, 6)}
        if shift_at is not None and i >= shift_at:
            z["s3"] += shift
        out.append(z)
    return out


@pytest.mark.parametrize("method", ["cusum", "adwin"])
def test_one_level_shift_fires_once(method: str) -> None:
    det = SensorDriftDetector(method=method)
    events = [det.update(z, 60.0 * i) for i, z in enumerate(deviations(3000, 1000, -4.0))]
    fired = [(i, e) for i, e in enumerate(events) if e is not None]
    assert len(fired) == 1, fired
    i, event = fired[0]
    assert 1000 <= i < 1100
    assert event.sensors[0][0] == "s3"
    assert event.directions[0] == ("s3", "down")
    assert event.sensors[0][1] < -2.0


@pytest.mark.parametrize("method", ["cusum", "adwin"])
def test_no_drift_on_stationary_noise(method: str) -> None:
    det = SensorDriftDetector(method=method)
    assert all(det.update(z, 60.0 * i) is None for i, z in enumerate(deviations(5000, None, 0)))


def test_two_changes_far_apart_fire_twice() -> None:
    det = SensorDriftDetector(merge_s=3600.0)
    data = deviations(3000, 500, 4.0)
    for z in data[2000:]:
        z["s3"] -= 8.0  # back down, below the original level
    fired = [e for i, z in enumerate(data) if (e := det.update(z, 60.0 * i)) is not None]
    assert [e.directions[0] for e in fired] == [("s3", "up"), ("s3", "down")]


def test_reset_forgets_sensor_and_state_pickles() -> None:
    det = SensorDriftDetector()
    for i, z in enumerate(deviations(100, None, 0)):
        det.update(z, float(i))
    clone = pickle.loads(pickle.dumps(det))
    probe = deviations(200, 0, 3.0, seed=9)
    a = [det.update(z, 1000.0 + i) for i, z in enumerate(probe)]
    b = [clone.update(z, 1000.0 + i) for i, z in enumerate(probe)]
    assert a == b
    det.reset(["s3"])
    assert "s3" not in det._table().names


def test_bad_method() -> None:
    with pytest.raises(ValueError, match="method"):
        SensorDriftDetector(method="ddm")


def test_event_text() -> None:
    assert DriftEvent(1.0, (("s2", -2.0),)).describe() == "s2 drifted down (-2.0 sd)"
