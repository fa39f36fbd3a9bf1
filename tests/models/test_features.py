from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import DataError
from models.features import (
    INFORMATIVE_SENSORS,
    Normalizer,
    find_regimes,
    last_window,
    pad_front,
    sliding_windows,
)
from models.rul.data import Run, fit_normalizer, simulated_runs


def test_fourteen_informative_sensors() -> None:
    assert len(INFORMATIVE_SENSORS) == 14
    assert INFORMATIVE_SENSORS[0] == "s2"
    assert INFORMATIVE_SENSORS[-1] == "s21"


def test_fd001_is_one_regime(fd001_train: list[Run]) -> None:
    settings = np.concatenate([r.settings for r in fd001_train])
    assert find_regimes(settings).shape == (1, 3)


def test_six_operating_points_are_found() -> None:
    rng = np.random.default_rng(3)
    points = np.array(
        [[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100],
         [42, 0.84, 100]], dtype=float,
    )  # fmt: skip
    s = points[rng.integers(6, size=5000)] + rng.normal(0, 0.003, (5000, 3))
    centroids = find_regimes(s)
    assert centroids.shape == (6, 3)
    assert np.allclose(np.sort(centroids[:, 0]), points[:, 0], atol=0.01)


def test_simulator_regimes_are_found_and_scaled_away() -> None:
    runs = simulated_runs(assets=4, lives=1, seed=2, regimes=3)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    assert norm.n_regimes == 3
    raw = np.concatenate([r.select(INFORMATIVE_SENSORS) for r in runs])
    settings = np.concatenate([r.settings for r in runs])
    scaled = norm.transform(raw, settings)
    assert scaled.min() >= 0.0
    assert scaled.max() <= 1.0
    # a single global min-max would leave the regime offsets as the main signal
    global_scaled = (raw - raw.min(0)) / (raw.max(0) - raw.min(0))
    regime = norm.regime(settings)
    between = [np.std([global_scaled[regime == r].mean(0) for r in range(3)], axis=0)]
    between_scaled = [np.std([scaled[regime == r].mean(0) for r in range(3)], axis=0)]
    assert float(np.mean(between_scaled)) < 0.5 * float(np.mean(between))


def test_normalizer_json_round_trip_and_validation(fd001_train: list[Run]) -> None:
    norm = fit_normalizer(fd001_train, INFORMATIVE_SENSORS)
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    x = fd001_train[0].select(INFORMATIVE_SENSORS)
    assert np.array_equal(again.transform(x), norm.transform(x))
    bad = norm.to_dict() | {"lo": [[0.0]]}
    with pytest.raises(DataError, match="inconsistent shapes"):
        Normalizer.from_dict(bad)
    with pytest.raises(DataError, match="invalid scaling"):
        Normalizer.from_dict({"sensors": ["s2"]})


def test_training_rows_scale_into_unit_range(fd001_train: list[Run]) -> None:
    norm = fit_normalizer(fd001_train, INFORMATIVE_SENSORS)
    x = norm.transform(np.concatenate([r.select(INFORMATIVE_SENSORS) for r in fd001_train]))
    assert x.dtype == np.float32
    assert x.min() == 0.0
    assert x.max() == 1.0


def test_transform_one_matches_batch_and_reports_missing() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=5)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    run = runs[0]
    sensors = {f"s{i + 1}": float(v) for i, v in enumerate(run.sensors[10])}
    settings = {f"setting{i + 1}": float(v) for i, v in enumerate(run.settings[10])}
    one = norm.transform_one(sensors, settings)
    batch = norm.transform(run.select(INFORMATIVE_SENSORS), run.settings)[10]
    assert np.array_equal(one, batch)
    with pytest.raises(DataError, match="'s7'"):
        norm.transform_one({k: v for k, v in sensors.items() if k != "s7"}, settings)
    with pytest.raises(DataError, match="settings are required"):
        norm.transform_one(sensors)


@pytest.mark.parametrize("regimes", [1, 3])
def test_transform_one_is_the_batch_scaling_to_the_bit(regimes: int) -> None:
    runs = simulated_runs(assets=3, lives=1, seed=11, regimes=regimes)
    norm = fit_normalizer(runs, INFORMATIVE_SENSORS)
    assert norm.n_regimes == regimes
    rng = np.random.default_rng(4)
    raw = np.concatenate([r.sensors for r in runs])
    settings = np.concatenate([r.settings for r in runs])
    raw = raw * rng.choice([1.0, 1.0, 1.5, -2.0, 1e300], size=raw.shape)  # clipped, overflowing
    raw[::7, 3] = -0.0
    for row, srow in zip(raw, settings, strict=True):
        sensors = {f"s{i + 1}": float(v) for i, v in enumerate(row)}
        setting = {f"setting{i + 1}": float(v) for i, v in enumerate(srow)}
        batch = norm.transform(row[None, [int(n[1:]) - 1 for n in norm.sensors]], srow[None])[0]
        assert norm.transform_one(sensors, setting).tobytes() == batch.tobytes()


def test_transform_one_names_a_non_finite_sensor() -> None:
    norm = Normalizer.fit([[0.0, 0.0], [1.0, 1.0]], np.zeros((2, 3)), ("a", "b"))
    with pytest.raises(DataError, match="non-finite sensor 'b'"):
        norm.transform_one({"a": 1.0, "b": float("nan")})
    assert norm.transform_one({"a": 1e308, "b": 1e308}).tolist() == [2.0, 2.0]  # sum overflows


def test_out_of_range_values_are_clipped() -> None:
    norm = Normalizer.fit([[0.0], [1.0]], np.zeros((2, 3)), ("s2",))
    assert norm.transform([[1e9], [-1e9]]).ravel().tolist() == [2.0, -1.0]


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 80), window=st.integers(1, 40))
def test_windows_shapes_and_last_window(length: int, window: int) -> None:
    x = np.arange(length * 2, dtype=np.float32).reshape(length, 2)
    w = sliding_windows(x, window)
    assert w.shape == (max(length - window + 1, 1), window, 2)
    assert np.array_equal(w[-1], last_window(x, window))
    assert np.array_equal(w[-1][-1], x[-1])  # every window ends at a real row
    if length < window:
        assert np.array_equal(w[0][: window - length], np.repeat(x[:1], window - length, 0))


def test_pad_front_rejects_empty() -> None:
    with pytest.raises(DataError):
        pad_front(np.zeros((0, 3), dtype=np.float32), 5)
