"""The compiled nearest-regime search gives exactly what the Python loop over the centres gave:
the same regime and the same distance to the last bit, for settings with NaN and infinite
values, centres with other settings, and settings in another order."""

from __future__ import annotations

import math
import random

from models.regimes import OperatingRegimes

Settings = dict[str, float]


def loop_nearest(regimes: OperatingRegimes, settings: Settings) -> tuple[int | None, float]:
    """The nearest centre as the Python loop found it (before the compiled pass)."""
    best, best_d = None, math.inf
    tolerance = regimes.tolerance
    for i, centre in enumerate(regimes._centres):
        if centre.keys() == settings.keys():
            d = 0.0
            for k, c in centre.items():
                e = abs(settings[k] - c) / (tolerance * max(1.0, abs(c)))
                d = e if e > d else d
        else:
            keys = centre.keys() | settings.keys()
            d = max(
                (
                    abs(settings.get(k, 0.0) - centre.get(k, 0.0))
                    / (tolerance * max(1.0, abs(centre.get(k, 0.0))))
                    for k in keys
                ),
                default=0.0,
            )
        if d < best_d:
            best, best_d = i, d
    return best, best_d


def settings_stream(seed: int, n: int = 4000) -> list[Settings]:
    rng = random.Random(seed)
    points = [(rng.random(), rng.random() * 3, float(rng.randint(0, 100))) for _ in range(24)]
    out = []
    for t in range(n):
        a, b, c = rng.choice(points)
        x = {"setting1": a + rng.gauss(0, 0.01), "setting2": b, "setting3": c}
        if t % 97 == 3:
            x["setting2"] = math.nan
        if t % 131 == 7:
            x["setting1"] = math.inf
        if t % 50 == 9:
            x = dict(reversed(list(x.items())))
        out.append(x)
    return out


def test_compiled_nearest_equals_the_loop() -> None:
    for seed in (1, 2):
        regimes = OperatingRegimes(max_regimes=16)
        for x in settings_stream(seed):
            got = regimes._nearest(x)
            assert repr(got) == repr(loop_nearest(regimes, x))
            regimes.learn_one(x)
        assert regimes.n_regimes == 16


def test_centres_of_other_settings_take_the_loop() -> None:
    regimes = OperatingRegimes()
    regimes.learn_one({"setting1": 0.2, "setting2": 5.0})
    regimes.learn_one({"setting1": 0.9})
    for x in ({"setting1": 0.2, "setting2": 5.1}, {"setting1": 0.9}, {"setting2": 5.0}):
        assert repr(regimes._nearest(x)) == repr(loop_nearest(regimes, x))
    assert regimes.predict_one({"setting1": 0.9}) == 1


def test_a_run_of_settings_gets_each_rows_regime() -> None:
    """``predict_many`` (one compiled call for a run of the same settings in one order, row by
    row otherwise) gives each row what ``predict_one`` gives it: NaN and infinite values, rows
    in another order, rows of other settings, a run of one row."""
    for seed in (3, 4):
        regimes = OperatingRegimes(max_regimes=12)
        stream = settings_stream(seed, 2000)
        for x in stream[:300]:
            regimes.learn_one(x)
        rng = random.Random(seed)
        usual = [x for x in stream[300:] if tuple(x) == ("setting1", "setting2", "setting3")]
        known = sum(r is not None for r in regimes.predict_many(usual))
        assert 0 < known < len(usual)  # some rows match a regime, some match none
        for start in range(0, 600, 25):
            run = usual[start : start + rng.choice((1, 2, 12, 40))]
            if rng.random() < 0.3:
                run = [*run, rng.choice(stream)]  # perhaps another order
            if rng.random() < 0.1:
                run = [{"setting1": 0.5}, *run]  # other settings
            assert regimes.predict_many(run) == [regimes.predict_one(x) for x in run]
