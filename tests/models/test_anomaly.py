"""Contract and behaviour tests of the per-asset anomaly scorers."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from models.anomaly import DeviationScorer, HalfSpaceScorer, aggregate, top_contributors
from models.regime_scaler import RegimeScaler
from models.regimes import OperatingRegimes
from models.threshold import AdaptiveThreshold

Scorer = DeviationScorer | HalfSpaceScorer
FACTORIES = {
    "deviation": lambda: DeviationScorer(min_count=10),
    "deviation-mean": lambda: DeviationScorer(how="mean", min_count=10),
    "hst": lambda: HalfSpaceScorer(seed=7, min_count=10, window_size=50),
}


def stream(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        regime = i % 2
        out.append(
            {
                "setting1": 0.2 + 0.5 * regime,
                "s1": 100.0 + 50.0 * regime + rng.gauss(0, 1),
                "s2": 10.0 + rng.gauss(0, 0.1),
                "s3": -5.0 + rng.gauss(0, 2),
            }
        )
    return out


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> object:
    return FACTORIES[request.param]


def test_scores_before_any_learning(make) -> None:  # type: ignore[no-untyped-def]
    scorer = make()
    assert scorer.score_one(stream(1)[0]) == 0.0
    assert scorer.contributions(stream(1)[0]) == {}


def test_score_one_does_not_learn(make) -> None:  # type: ignore[no-untyped-def]
    scorer = make()
    for x in stream(300):
        scorer.learn_one(x)
    before = pickle.dumps(scorer)
    probe = stream(20, seed=5)
    first = [scorer.score_one(x) for x in probe]
    assert pickle.dumps(scorer) == before
    assert [scorer.score_one(x) for x in probe] == first


def test_pickle_restores_identical_scores(make) -> None:  # type: ignore[no-untyped-def]
    scorer = make()
    for x in stream(300):
        scorer.learn_one(x)
    clone = pickle.loads(pickle.dumps(scorer))
    for x in stream(200, seed=3):
        assert clone.score_one(x) == scorer.score_one(x)
        clone.learn_one(x)
        scorer.learn_one(x)


def test_repeats_with_fixed_seed(make) -> None:  # type: ignore[no-untyped-def]
    def run() -> list[float]:
        scorer = make()
        scores = []
        for x in stream(400):
            scores.append(scorer.score_one(x))
            scorer.learn_one(x)
        return scores

    assert run() == run()


def test_memory_is_bounded(make) -> None:  # type: ignore[no-untyped-def]
    scorer = make()
    data = stream(4000)
    for x in data[:1000]:
        scorer.learn_one(x)
    size_1000 = len(pickle.dumps(scorer))
    for x in data[1000:]:
        scorer.learn_one(x)
    assert len(pickle.dumps(scorer)) <= size_1000 * 1.05


def test_outlier_scores_higher_and_is_explained(make) -> None:  # type: ignore[no-untyped-def]
    scorer = make()
    data = stream(1000)
    for x in data:
        scorer.learn_one(x)
    normal = dict(data[-2])
    outlier = dict(normal, s2=normal["s2"] + 2.0)  # 20 sd up
    assert scorer.score_one(outlier) > scorer.score_one(normal)
    top = top_contributors(scorer.contributions(outlier), 1)
    assert top[0][0] == "s2"
    assert top[0][1] > 10


def test_regimes_are_scaled_separately() -> None:
    scorer = DeviationScorer(min_count=10)
    for x in stream(1000):
        scorer.learn_one(x)
    # s1 differs by 50 between the regimes: both levels are normal in their own regime
    low, high = stream(2)
    assert scorer.score_one(low) < 4
    assert scorer.score_one(high) < 4
    swapped = dict(low, setting1=high["setting1"])
    assert scorer.score_one(swapped) > 19


def test_unknown_regime_is_not_scored() -> None:
    scaler = RegimeScaler(min_count=1)
    scaler.learn_one({"setting1": 1.0, "s1": 1.0})
    assert scaler.contributions({"setting1": 50.0, "s1": 9.0}) == {}


def test_regimes_bounded() -> None:
    r = OperatingRegimes(max_regimes=3)
    ids = {r.learn_one({"setting1": float(i)}) for i in range(1, 50)}
    assert r.n_regimes == 3
    assert ids == {0, 1, 2}


def test_forget_drops_baseline() -> None:
    scaler = RegimeScaler(min_count=2)
    for v in (1.0, 2.0, 3.0):
        scaler.learn_one({"s1": v, "s2": v})
    scaler.forget(["s1"])
    assert set(scaler.contributions({"s1": 1.0, "s2": 1.0})) == {"s2"}


def test_aggregate_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        aggregate({"a": 1.0}, "median")
    with pytest.raises(ValueError, match="how"):
        DeviationScorer(how="median")


def test_threshold_adapts_to_the_assets_own_scores() -> None:
    quiet, noisy = AdaptiveThreshold(q=0.99, floor=0.0), AdaptiveThreshold(q=0.99, floor=0.0)
    rng = random.Random(1)
    for _ in range(5000):
        quiet.update(abs(rng.gauss(0, 1)))
        noisy.update(abs(rng.gauss(0, 5)))
    assert 2.2 < quiet.get() < 3.0
    assert 11 < noisy.get() < 15
    floored = copy.deepcopy(quiet)
    floored.floor = 10.0
    assert floored.get() == 10.0
    assert AdaptiveThreshold(floor=3.0).get() == 3.0


def test_learning_another_record_than_the_scored_one_uses_its_own_regime() -> None:
    scaler = RegimeScaler(min_count=1)
    scored = {"setting1": 1.0, "s1": 1.0}
    scaler.contributions(scored)
    scaler.learn_one({"setting1": 50.0, "s1": 9.0})  # not the scored object: located afresh
    scaler.learn_one(scored)  # the scored object, no longer the last one located
    assert scaler.regime_of(scored) != scaler.regime_of({"setting1": 50.0})
    assert set(pickle.loads(pickle.dumps(scaler)).__dict__) == set(scaler.__dict__) - {"_located"}
