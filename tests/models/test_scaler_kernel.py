"""The compiled running statistics of the regime scaler give exactly what its per-sensor lists
gave.

:class:`ListScalerReference` is the scaler as it was before its statistics became arrays (a
list ``[n, mean, variance]`` per sensor and regime, updated in Python). Deviations, scores of
every aggregate and the top sensors must be equal to the last bit, on streams with NaN and
infinite values, sensors that come late, leave, or change order, and forgotten sensors. A
checkpoint of the lists restores into the array scaler and continues identically.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

from models import state_codec
from models.anomaly import DeviationScorer, aggregate, top_contributors
from models.regime_scaler import RegimeScaler

Row = dict[str, float]


class ListScalerReference:
    """The scaler's per-sensor list statistics and their Python updates (one regime)."""

    def __init__(self, scaler: RegimeScaler) -> None:
        self.window, self.min_count = scaler.window, scaler.min_count
        self.clip, self.resolution = scaler.clip, scaler.resolution
        self.stats: dict[str, list[float]] = {}

    def learn(self, sensors: Row) -> None:
        least = 1.0 / self.window
        for k, v in sensors.items():
            st = self.stats.get(k)
            if st is None:
                self.stats[k] = [1.0, v, 0.0]
                continue
            st[0] = n = st[0] + 1.0
            a = max(1.0 / n, least)
            mean = st[1]
            d = v - mean
            st[1], st[2] = mean + a * d, (1.0 - a) * (st[2] + a * d * d)

    def deviations(self, sensors: Row) -> Row:
        out: Row = {}
        for k, v in sensors.items():
            st = self.stats.get(k)
            if st is None or st[0] < self.min_count:
                continue
            _, mean, var = st
            sd = math.sqrt(var) + self.resolution * abs(mean) + 1e-9
            q = (v - mean) / sd
            q = q if q < self.clip else self.clip  # NaN: clip
            out[k] = q if q > -self.clip else -self.clip
        return out

    def forget(self, sensors: list[str]) -> None:
        for k in sensors:
            self.stats.pop(k, None)


def stream(seed: int, n: int = 600) -> Iterator[Row]:
    """21 noisy sensors with shifts, NaN and inf values, a late sensor, a sensor that leaves,
    records in another key order, and a record of fewer sensors."""
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(21)]
    for t in range(n):
        row = {k: 10.0 * i + rng.gauss(0, 1 + i % 3) + (8.0 if t > 400 and i < 3 else 0.0)
               for i, k in enumerate(names)}  # fmt: skip
        if t % 97 == 5:
            row["s4"] = math.nan
        if t % 131 == 7:
            row["s5"] = math.inf if t % 2 else -math.inf
        if t > 250:
            row["late"] = rng.random()
        if t > 450:
            row.pop("s9")
        if t % 50 == 3:
            row = dict(reversed(list(row.items())))
        if t % 77 == 11:
            row = dict(list(row.items())[:4])
        yield row


def explained(scorer: DeviationScorer, row: dict[str, float]) -> tuple[object, ...]:
    """The scorer's score, deviations by sensor and top three deviations of ``row``."""
    e = scorer.explain(row, 0, 3)
    return e.score, e.as_dict(), e.top


@pytest.mark.parametrize("how", ["mean", "rms", "max", "top2"])
@pytest.mark.parametrize("seed", [1, 2])
def test_array_statistics_equal_the_lists(how: str, seed: int) -> None:
    scorer = DeviationScorer(how=how, min_count=20, window=300)
    reference = ListScalerReference(scorer)
    for t, row in enumerate(stream(seed)):
        score, z, top = explained(scorer, row)
        expected = reference.deviations(row)
        assert repr(z) == repr(expected)  # to the last bit, in the record's order
        assert repr(score) == repr(aggregate(expected, how) if expected else 0.0)
        assert top == top_contributors(expected, 3)
        assert (score, z) == scorer.score_located(row, 0)
        if t % 200 == 150:  # a drift: these sensors start afresh
            scorer.forget(["s1", "late"])
            reference.forget(["s1", "late"])
        scorer.learn_located(row, {}, 0)
        reference.learn(row)


def test_a_checkpoint_of_lists_restores_and_continues_identically() -> None:
    rows = list(stream(3))
    scorer, reference = DeviationScorer(min_count=20), DeviationScorer(min_count=20)
    lists = ListScalerReference(scorer)
    for row in rows[:300]:
        scorer.learn_located(row, {}, 0)
        lists.learn(row)
    old = reference.__dict__  # a scaler as checkpoints before the arrays hold it
    del old["_tables"]
    old["_stats"] = {0: lists.stats}
    restored = state_codec.decode(state_codec.encode(reference))
    assert isinstance(restored, DeviationScorer)
    for row in rows[300:]:
        assert repr(explained(restored, row)) == repr(explained(scorer, row))
        restored.learn_located(row, {}, 0)
        scorer.learn_located(row, {}, 0)
    assert "_stats" not in restored.__dict__
    tables, expected = restored._tables or {}, scorer._tables or {}
    assert tables.keys() == expected.keys() == {0}
    assert tables[0].names == expected[0].names
    assert tables[0].stats.tobytes() == expected[0].stats.tobytes()


def test_statistics_are_kept_per_regime() -> None:
    scaler = RegimeScaler(min_count=2)
    for v in (1.0, 2.0, 3.0):
        scaler.learn_one({"setting1": 0.0, "s1": v})
        scaler.learn_one({"setting1": 5.0, "s1": 100.0 * v})
    low = scaler.contributions({"setting1": 0.0, "s1": 5.0})["s1"]
    high = scaler.contributions({"setting1": 5.0, "s1": 500.0})["s1"]
    assert low > 3.0 and high > 3.0
    assert scaler.contributions({"setting1": 2.5, "s1": 5.0}) == {}  # no such regime
