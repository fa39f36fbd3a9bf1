"""The compiled CUSUM step of the drift detector gives exactly what its per-sensor lists gave.

:func:`list_cusum_shifts` is the step as it was before its state became a table (a list of
four floats per sensor, updated in Python). The sensors that fire and their shifts must be
equal to the last bit, on streams with shifts, NaN and infinite deviations, sensors that come
late, leave, change order or are reset. A checkpoint of the lists restores into the table and
continues identically.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping

from models import state_codec
from models.drift import SensorDriftDetector
from models.run_values import keyed_row

Lists = dict[str, list[float]]


def list_cusum_shifts(
    table: Lists, z: Mapping[str, float], k: float, limit: float
) -> list[tuple[str, float]]:
    """The CUSUM step over per-sensor lists, as the detector ran it before."""
    fired = []
    for sensor, value in z.items():
        st = table.get(sensor)
        if st is None:
            st = table[sensor] = [0.0, 0.0, 0.0, 0.0]
        elif st[0] == 0.0 and st[2] == 0.0 and -k <= value <= k:
            continue
        up = st[0] + value - k
        st[0] = up = up if up > 0.0 else 0.0
        st[1] = st[1] + 1.0 if up > 0.0 else 0.0
        down = st[2] - value - k
        st[2] = down = down if down > 0.0 else 0.0
        st[3] = st[3] + 1.0 if down > 0.0 else 0.0
        if up > limit:
            shift = k + up / st[1]
        elif down > limit:
            shift = -(k + down / st[3])
        else:
            continue
        st[:] = [0.0, 0.0, 0.0, 0.0]
        fired.append((sensor, shift))
    return fired


def stream(seed: int, n: int = 3000) -> Iterator[dict[str, float]]:
    """Deviations of 21 sensors: noise, shifts up and down, NaN and infinite values, a late
    sensor, one that leaves, records in another key order or with few sensors."""
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(21)]
    for t in range(n):
        z = {k: rng.gauss(0.0, 1.0 + i % 3) for i, k in enumerate(names)}
        if 1000 < t < 1600:
            z["s2"] += 3.0
            z["s7"] -= 2.5
        if t % 211 == 3:
            z["s4"] = math.nan
        if t % 307 == 5:
            z["s5"] = math.inf if t % 2 else -math.inf
        if t > 700:
            z["late"] = rng.gauss(1.5, 1.0)
        if t > 2200:
            z.pop("s9")
        if t % 40 == 7:
            z = dict(reversed(list(z.items())))
        if t % 93 == 1:
            z = dict(list(z.items())[:3])
        yield z


def test_compiled_cusum_equals_the_lists() -> None:
    firings = 0
    for seed in (1, 2, 3):
        det, lists = SensorDriftDetector(slack=0.5, limit=8.0), {}
        for t, z in enumerate(stream(seed)):
            got = det._cusum_shifts(*keyed_row(z))
            assert repr(got) == repr(list_cusum_shifts(lists, z, 0.5, 8.0)), (seed, t)
            firings += len(got)
            if t % 500 == 499:
                det.reset(["s2", "late"])
                for s in ("s2", "late"):
                    lists.pop(s, None)
        table = det._table()
        assert table.names == tuple(lists)
        assert table.stats.tolist() == list(lists.values())
    assert firings > 100  # the streams do drift


def test_a_checkpoint_of_lists_restores_and_continues_identically() -> None:
    rows = list(stream(4, 1200))
    det, old = SensorDriftDetector(), SensorDriftDetector()
    lists: dict[str, list[float]] = {}
    for t, z in enumerate(rows[:600]):
        det.update(z, 60.0 * t)
        list_cusum_shifts(lists, z, old.slack, old.limit)
    old._cusum = lists  # a detector as checkpoints before the table hold it
    old._last_fired = dict(det._last_fired)
    restored = state_codec.decode(state_codec.encode(old))
    assert isinstance(restored, SensorDriftDetector)
    for t, z in enumerate(rows[600:], 600):
        assert restored.update(z, 60.0 * t) == det.update(z, 60.0 * t)
    assert restored._table().stats.tobytes() == det._table().stats.tobytes()
