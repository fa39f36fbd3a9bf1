"""The compiled novelty kernel gives exactly what the detector's numpy path gives.

Record for record: findings (excess to the last bit, sensors in order) and the state after
each run (bytes). Then the whole monitor, kernel on and off, on the rows of
``test_monitor_run`` (regimes, faults, missing and appearing sensors, NaN).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.detectors.correlation import CorrelationDetector
from models.detectors.novelty import NoveltyDetector
from models.detectors.novelty_run import NoveltyRun
from models.run_values import RunValues
from tests.models.test_monitor_run import cmapss_rows, fleet_rows, in_runs, interleave, nab_rows

SETTINGS = {  # the monitor's defaults, a settled variant, and wide margins (few findings)
    "default": {"min_count": 50},
    "settled": {"min_count": 50, "shift_settle": 0},
    "narrow": {"min_count": 20, "spike_margin": 0.05, "shift_margin": 0.0, "decay": 0.99},
}


def series(sensors: int, records: int, seed: int) -> list[dict[str, float]]:
    """Noisy sensors with level shifts, spikes, a noise burst, ties and NaN."""
    rng = random.Random(seed)
    out = []
    for i in range(records):
        x = {}
        for s in range(sensors):
            v = 10.0 * s + rng.gauss(0.0, 1.0 + s)
            v += 30.0 if s == sensors // 2 and i > records // 2 else 0.0  # a level shift
            v += 20.0 * (1 + i // 100) if rng.random() < 0.01 else 0.0  # growing spikes
            v *= 5.0 if 500 < i < 540 and s == 2 else 1.0  # more noise
            x[f"s{s}"] = float(round(v)) if s == 3 else v  # ties (rounded)
        if i == records - 100:  # NaN: the sensor's ranges stay NaN from here on
            x[f"s{sensors - 1}"] = float("nan")
        out.append(x)
    return out


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # a margin of 0
@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("sensors", [1, 4, 9])
def test_kernel_findings_and_state_equal_the_record_path(setting: str, sensors: int) -> None:
    kwargs = SETTINGS[setting]
    path, kernel = NoveltyDetector(**kwargs), NoveltyDetector(**kwargs)  # type: ignore[arg-type]
    records = series(sensors, 1500, seed=sensors)
    rng = random.Random(sensors)
    found_any = 0
    at = 0
    while at < len(records):
        chunk = records[at : at + rng.choice((1, 3, 50, 200))]
        first_scored = rng.choice((0, 0, 2))
        expected = [path.score_learn_one(x, score=i >= first_scored) for i, x in enumerate(chunk)]
        plan = NoveltyRun.plan(kernel, RunValues.of(chunk), first_scored)
        if plan is None:  # a new detector: its first record starts the sensors
            assert at == 0
            got = [kernel.score_learn_one(x, score=i >= first_scored) for i, x in enumerate(chunk)]
        else:
            assert plan.size == len(chunk)
            got = [plan.take(i) for i in range(len(chunk))]
        assert repr(got) == repr(expected), f"records {at}.."
        assert path._state.tobytes() == kernel._state.tobytes(), f"records {at}.."
        found_any += sum(map(bool, got))
        at += len(chunk)
    assert found_any >= 5  # the series reach findings of every setting


def test_unusual_records_end_the_planned_block() -> None:
    d = NoveltyDetector(min_count=5)
    for x in series(3, 20, seed=1):
        d.learn_one(x)
    usual = series(3, 4, seed=2)
    reordered = dict(reversed(list(usual[0].items())))
    assert NoveltyRun.plan(d, RunValues.of([reordered, *usual]), 0) is None
    plan = NoveltyRun.plan(d, RunValues.of([*usual[:2], reordered, usual[3]]), 0)
    assert plan is not None and plan.size == 2
    bad = {**usual[0], "s1": "x"}
    assert NoveltyRun.plan(d, RunValues.of([bad]), 0) is None


def test_rewind_keeps_only_the_records_taken() -> None:
    records = series(5, 400, seed=4)
    d, one = NoveltyDetector(min_count=50), NoveltyDetector(min_count=50)
    for x in records[:300]:
        d.score_learn_one(x)
        one.score_learn_one(x)
    plan = NoveltyRun.plan(d, RunValues.of(records[300:]), 0)
    assert plan is not None and plan.size == 100
    for i in range(37):
        assert repr(plan.take(i)) == repr(one.score_learn_one(records[300 + i]))
    assert d._state.tobytes() != one._state.tobytes()  # planned ahead ...
    plan.rewind()
    assert d._state.tobytes() == one._state.tobytes()  # ... back to the records taken


def test_a_run_waits_until_every_sensor_has_started() -> None:
    d = NoveltyDetector(min_count=5)
    assert d.run_sensors() == ()  # no sensor yet
    d.learn_one({"s1": 1.0, "s2": 2.0})
    assert d.run_sensors() == ("s1", "s2")
    d.forget(["s2"])  # s2 starts again at its next value: no compiled run until then
    assert d.run_sensors() == ()
    assert NoveltyRun.plan(d, RunValues.of([{"s1": 1.5, "s2": 2.5}]), 0) is None
    d.learn_one({"s1": 1.5, "s2": 2.5})
    assert d.run_sensors() == ("s1", "s2")


def test_a_snapshot_restores_the_state_a_run_learned_over() -> None:
    records = series(3, 200, seed=5)
    d = NoveltyDetector(min_count=20)
    for x in records[:100]:
        d.learn_one(x)
    saved, before = d.snapshot(), d._state.tobytes()
    values = np.array([list(x.values()) for x in records[100:]])
    peak, top, hit = d.learn_run(values, 0)
    assert peak.shape == (100, 3) and top.shape == (100, 3, 3) and hit.shape == (100,)
    assert d._state.tobytes() != before
    d.restore(saved)
    assert d._state.tobytes() == before


def test_monitor_results_equal_with_the_kernel_off(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = interleave([fleet_rows(), nab_rows(), cmapss_rows()], seed=3)
    with_kernel, monitors = in_runs(rows, seed=4)
    monkeypatch.setattr(NoveltyRun, "plan", classmethod(lambda *_: None))
    without, plain = in_runs(rows, seed=4)
    assert with_kernel == without
    for asset, m in monitors.items():
        assert m.to_bytes() == plain[asset].to_bytes(), asset


def test_covariance_kernel_equals_the_numpy_products() -> None:
    """``CorrelationDetector``'s covariance, learned in the compiled kernel, to the last bit
    of ``(1 - a) * (cov + a * outer(d, d))`` computed by numpy (the products it replaced)."""
    rng = np.random.default_rng(3)
    d = CorrelationDetector(refresh=25)
    mean, cov = np.zeros(6), np.zeros((6, 6))
    for n in range(1, 400):
        x = rng.normal(size=6) * (1.0 + 50.0 * (n > 300))
        x[1] = x[0] + 0.01 * x[1]
        d.learn_one({f"s{i}": float(v) for i, v in enumerate(x)})
        a = max(1.0 / n, d.alpha)
        delta = x - mean
        mean = mean + a * delta
        outer = delta[:, None] * delta
        outer *= a
        outer += cov
        outer *= 1.0 - a
        cov = outer
        assert d._mean.tobytes() == mean.tobytes() and d._cov.tobytes() == cov.tobytes(), n
