"""The compiled nearest-regime search gives exactly what the Python loop over the centres gave:
the same regime and the same distance to the last bit, for settings with NaN and infinite
values, centres with other settings, and settings in another order."""

from __future__ import annotations

import math
import random

from models.anomaly import OperatingRegimes

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
