"""The compiled step of the correlation detector gives exactly what its numpy step gave.

:class:`NumpyCorrelationReference` is the detector as it was before the compiled step (numpy
products and reductions on each record): findings (excess to the last bit, sensors in order)
after every record and the state at the end of each stream (bytes) must be equal, on streams of
correlated sensors whose correlation breaks, that go further than ever, change their order and
their set, with too few sensors at times, and NaN or inf in records that are scored only.
A checkpoint written by the reference restores into the compiled detector and continues
identically.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from models import state_codec
from models.detectors import correlation
from models.detectors.correlation import CorrelationDetector
from models.detectors.correlation_kernels import _top_by_size, correlation_step

Findings = dict[str, tuple[float, tuple[str, ...]]]
STATE = ("_names", "_n", "_mean", "_cov", "_basis", "_max", "_t2_max", "_inverse_variance")
STATE_AND_ORDER = (*STATE, "_keys", "_order")


class NumpyCorrelationReference(CorrelationDetector):
    """The detector as it was before the compiled step: its numpy steps (``_split``,
    ``_judge``, ``_learn``, kept unchanged for where the compiled step is missing) on each
    record, called as they were."""

    def _vector(self, z: Mapping[str, float]) -> NDArray[np.float64] | None:
        if not self._known(tuple(z)):
            return None
        return np.fromiter(z.values(), float, len(z))[self._order]

    def score_one(self, z: Mapping[str, float]) -> Findings:
        v = self._vector(z)
        return {} if v is None else self._judge(self._split(v))

    def learn_one(self, z: Mapping[str, float]) -> None:
        v = self._vector(z)
        if v is not None:
            self._learn(v, self._split(v))

    def score_learn_one(self, z: Mapping[str, float], score: bool = True) -> Findings:
        v = self._vector(z)
        if v is None:
            return {}
        parts = self._split(v)
        found = self._judge(parts) if score else {}
        self._learn(v, parts)
        return found


def stream(sensors: int, records: int, seed: int, shuffle: bool) -> list[dict[str, float]]:
    """Sensors driven by three shared factors; from 60 % on some stop following theirs (a
    broken correlation), from 80 % all go further than ever together (T²). With ``shuffle``,
    records in a shuffled sensor order at times."""
    rng = random.Random(seed)
    loads = [[rng.gauss(0.0, 1.0) for _ in range(3)] for _ in range(sensors)]
    names = [f"s{k:02d}" for k in range(sensors)]
    out = []
    for i in range(records):
        factors = [math.sin(i / 9), math.cos(i / 23), rng.gauss(0.0, 0.3)]
        scale = 4.0 if i > 0.8 * records and i % 50 < 5 else 1.0
        x = {}
        for k, name in enumerate(names):
            v = scale * sum(w * f for w, f in zip(loads[k], factors, strict=True))
            if i > 0.6 * records and k % 5 == 1 and i % 40 < 8:
                v = 2.0 - v
            x[name] = v + rng.gauss(0.0, 0.1)
        if shuffle and i % 7 < 2:
            items = list(x.items())
            rng.shuffle(items)
            x = dict(items)
        out.append(x)
    return out


def the_state(d: CorrelationDetector) -> list[Any]:
    """The state, arrays as bytes (dtype and shape with them)."""
    out = []
    for name in STATE_AND_ORDER:
        value = getattr(d, name)
        if isinstance(value, np.ndarray):
            value = (value.dtype.str, value.shape, value.tobytes())
        out.append(value)
    return out


def run_both(settings: dict[str, Any], records: list[dict[str, float]]) -> tuple[Any, Any]:
    """Each record into both (scored from time to time, now and then only scored or only
    learned); their findings compared record for record."""
    ref, d = NumpyCorrelationReference(**settings), CorrelationDetector(**settings)
    hits = 0
    for i, x in enumerate(records):
        if i % 97 == 13:
            assert repr(d.score_one(x)) == repr(ref.score_one(x)), i
        if i % 89 == 5:
            d.learn_one(x)
            ref.learn_one(x)
            continue
        found = d.score_learn_one(x, score=i % 300 > 20)
        assert repr(found) == repr(ref.score_learn_one(x, score=i % 300 > 20)), i
        hits += bool(found)
    return (ref, d), hits


SETTINGS = [
    {},
    {"min_count": 60, "refresh": 17, "margin": 0.05},
    {"min_count": 40, "refresh": 10, "explained": 0.5, "alpha": 0.05, "decay": 0.999},
    {"min_count": 40, "refresh": 25, "explained": 0.999},  # components: all sensors but one
    {"min_count": 40, "refresh": 20, "explained": 0.2, "min_sensors": 2},  # one component
]


@pytest.mark.skipif(correlation_step is None, reason="numpy's BLAS not found")
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize(("sensors", "shuffle"), [(2, False), (3, True), (21, False), (21, True)])
def test_findings_and_state_equal_the_numpy_step(
    settings: dict[str, Any], sensors: int, shuffle: bool
) -> None:
    (ref, d), hits = run_both(settings, stream(sensors, 1500, sensors + shuffle, shuffle))
    assert hits > 0 or sensors < d.min_sensors
    assert the_state(d) == the_state(ref)


@pytest.mark.skipif(correlation_step is None, reason="numpy's BLAS not found")
def test_sensor_set_changes_and_too_few_sensors() -> None:
    records = stream(8, 1500, 3, shuffle=True)
    for i, x in enumerate(records):
        if 500 <= i < 900:  # one sensor gone: another set, the detector starts again
            del x["s03"]
        elif i >= 900:  # ... and a new one
            x["t"] = x["s01"] - x["s02"]
        if i % 211 == 0:  # too few sensors: skipped
            records[i] = dict(list(x.items())[:2])
    (ref, d), hits = run_both({"min_count": 50, "refresh": 20}, records)
    assert hits > 0 and d._names[-1] == "t"
    assert the_state(d) == the_state(ref)


@pytest.mark.skipif(correlation_step is None, reason="numpy's BLAS not found")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_scoring_a_record_with_nan_or_inf(bad: float) -> None:
    """Such a record spoils both statistics (NaN): nothing found. (Learning one would spoil
    the covariance: its next decomposition fails.)"""
    records = stream(6, 600, 4, shuffle=False)
    (ref, d), _ = run_both({"min_count": 50, "refresh": 20}, records)
    found = []
    for k in range(6):
        for other in range(6):
            x = dict(records[-1]) | {f"s0{other}": bad, f"s0{k}": bad}
            found.append(d.score_one(x))
            assert repr(found[-1]) == repr(ref.score_one(x))
    assert not any(found) and len(found) == 36
    assert the_state(d) == the_state(ref)


@pytest.mark.skipif(correlation_step is None, reason="numpy's BLAS not found")
def test_a_checkpoint_of_the_numpy_step_continues_identically() -> None:
    records = stream(21, 1500, 9, shuffle=True)
    ref = NumpyCorrelationReference(min_count=100, refresh=30)
    for x in records[:703]:
        ref.score_learn_one(x)
    d = CorrelationDetector()
    vars(d).update(state_codec.decode(state_codec.encode(vars(ref))))  # the state written
    found = [d.score_learn_one(x) for x in records[703:]]
    assert found == [ref.score_learn_one(x) for x in records[703:]] and any(found)
    assert the_state(d) == the_state(ref)


def test_the_numpy_step_where_the_compiled_one_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(correlation, "correlation_step", None)
    (ref, d), hits = run_both({"min_count": 60, "refresh": 17}, stream(7, 1200, 2, shuffle=True))
    assert hits > 0 and the_state(d) == the_state(ref)


def test_the_sensors_named_are_those_a_stable_sort_by_size_names() -> None:
    rng = np.random.default_rng(5)
    for trial in range(3000):
        by = rng.choice([0.0, -0.0, 1.0, -1.0, 2.5, -3.0, math.nan, math.inf], size=1 + trial % 9)
        by[rng.random(by.shape) < 0.5] = rng.normal()  # ties
        expected = np.argsort(-np.abs(by), kind="stable")[:3].tolist()
        assert [i for i in _top_by_size(by) if i >= 0] == expected, by
