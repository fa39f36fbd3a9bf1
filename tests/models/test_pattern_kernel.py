"""The compiled segment close of the pattern detector gives exactly what its numpy steps gave.

:class:`ListPatternReference` is the detector as it was before the compiled close (per-sensor
lists, numpy on each segment): findings (excess to the last bit, sensors in order) and the
state at the end of each stream (bytes) must be equal, on streams with NaN, missing sensors,
fewer and more sensors than are watched. A checkpoint of the reference's state (the lists, as
such checkpoints hold them) restores into the compiled detector and continues identically.
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
from models.detectors.pattern import PatternDetector

Findings = dict[str, tuple[float, tuple[str, ...]]]
LIST_ROWS = ("_last", "_spread", "_score", "_lo", "_hi", "_sum", "_count")
COUNTERS = ("_pos", "_segments", "_kept", "_queries")


class ListPatternReference:
    """The pattern detector's numpy steps and list state, as checkpoints before the compiled
    close hold it (the default settings' subset the tests vary)."""

    def __init__(self, **settings: Any) -> None:
        d = PatternDetector(**settings)
        self.margin, self.decay, self.length, self.points = d.margin, d.decay, d.length, d.points
        self.reservoir, self.max_sensors, self.warm_up = d.reservoir, d.max_sensors, d.warm_up
        self.smooth = d.smooth
        self._names: tuple[str, ...] = ()
        self._ticks = self._pos = self._segments = self._kept = self._queries = 0

    def score_learn_one(self, x: Mapping[str, float], score: bool = True) -> Findings:
        if not self._names:
            self._start(x)
        for i, name in enumerate(self._names):
            v = x.get(name)
            if v is not None and not math.isnan(v):
                self._sum[i] += v
                self._count[i] += 1.0
        self._ticks += 1
        if self._ticks < self.length // self.points:
            return {}
        return self._close(score)

    def _start(self, x: Mapping[str, float]) -> None:
        self._names = names = tuple(x)[: self.max_sensors]
        n, k, p = len(names), self.reservoir, self.points
        for row in LIST_ROWS:
            setattr(self, row, [0.0] * n)
        self._ring = np.zeros((n, 4 * p))
        self._past = np.zeros((n, k, p), dtype=np.float32)
        self._used = np.zeros((n, k))

    def _close(self, score: bool) -> Findings:
        p, n = self.points, len(self._names)
        zipped = zip(self._sum, self._count, self._last, strict=True)
        self._last = last = [s / c if c > 0.0 else m for s, c, m in zipped]
        self._sum, self._count, self._ticks = [0.0] * n, [0.0] * n, 0
        pos = self._pos
        self._ring[:, pos] = self._ring[:, pos + 2 * p] = last
        self._pos = (pos + 1) % (2 * p)
        self._segments += 1
        if self._segments < p:
            return {}
        window = self._ring[:, pos + 1 : pos + 1 + 2 * p]
        spread = window[:, p:].std(axis=1).tolist()
        old = self._spread
        self._spread = [
            s if o == 0.0 else o * 0.98 + s * 0.02 for o, s in zip(old, spread, strict=True)
        ]
        scale = 1.0 / np.array([max(s, 1e-12) for s in self._spread])
        found: Findings = {}
        if self._kept:
            found = self._query(window[:, p:] * scale[:, None], score)
        if self._segments >= 2 * p:
            rows = np.arange(n)
            slot = self._kept if self._kept < self.reservoir else self._used.argmin(axis=1)
            self._kept += self._kept < self.reservoir
            self._past[rows, slot] = window[:, :p] * scale[:, None]
            self._used[rows, slot] = self._segments
        return found

    def _query(self, query: NDArray[np.float64], score: bool) -> Findings:
        diff = self._past[:, : self._kept, :] - query[:, None, :]
        d2 = (diff * diff).mean(axis=2)
        nearest, rows = d2.argmin(axis=1), np.arange(len(self._names))
        self._used[rows, nearest] = self._segments
        if self._kept < self.reservoir:
            return {}
        dist = [math.sqrt(d) for d in d2[rows, nearest].tolist()]
        if self._queries:
            dist = [s + self.smooth * (d - s) for s, d in zip(self._score, dist, strict=True)]
        self._score, found = dist, {}
        lo, hi = (list(dist), list(dist)) if self._queries == 0 else (self._lo, self._hi)
        if self._queries and score and self._queries >= self.warm_up:
            excess = [
                (d - h) / (self.margin * (h - w) + 1e-12)
                for d, w, h in zip(dist, lo, hi, strict=True)
            ]
            hits = sorted((i for i, e in enumerate(excess) if e > 1.0), key=lambda i: -excess[i])
            if hits:
                found = {"pattern": (excess[hits[0]], tuple(self._names[i] for i in hits[:3]))}
        self._queries += 1
        keep = self.decay ** (self.length // self.points)
        self._lo, self._hi = [], []
        for w, h, d in zip(lo, hi, dist, strict=True):
            low, high = min(w, d), max(h, d)
            centre = 0.5 * (low + high)
            self._lo.append(centre + (low - centre) * keep)
            self._hi.append(centre + (high - centre) * keep)
        return found


def stream(sensors: int, records: int, seed: int, gaps: bool) -> list[dict[str, float]]:
    """Load cycles per sensor (shifted), some turning into a plateau, louder noise late; with
    ``gaps``, NaN and missing values and sensors in a shuffled order."""
    rng = random.Random(seed)
    out = []
    for i in range(records):
        x = {}
        for k in range(sensors):
            phase = (i + 7 * k) % 64
            v = 10.0 * k + 4.0 * (phase / 16 if phase < 16 else float(phase < 40))
            v += rng.gauss(0.0, 0.05 if i < 0.7 * records else 0.4)
            if i > 0.8 * records and k % 2 == 0:
                v = 14.0 + rng.gauss(0.0, 0.05)
            if gaps and rng.random() < 0.1:
                v = math.nan
            if not (gaps and rng.random() < 0.15):
                x[f"s{k}"] = v
        if gaps:
            items = list(x.items())
            rng.shuffle(items)
            x = dict(items)
        out.append(x)
    return out


SETTINGS = [
    {"margin": 0.3},  # the monitor's length and points
    {"length": 16, "reservoir": 8, "warm_up": 5, "margin": 0.2, "smooth": 0.5},
    {"length": 12, "points": 4, "reservoir": 5, "warm_up": 3, "margin": 0.1, "decay": 0.999},
    {"length": 32, "points": 16, "reservoir": 6, "warm_up": 0, "max_sensors": 21},
]


def the_state(d: PatternDetector | ListPatternReference) -> dict[str, bytes]:
    """The state as bytes: per-sensor rows and counters as the compiled detector holds them."""
    if isinstance(d, PatternDetector):
        rows, counters = d._state, d._counters
    else:
        rows = np.array([getattr(d, r) for r in LIST_ROWS]).reshape(7, len(d._names))
        counters = np.array([getattr(d, c) for c in COUNTERS], dtype=np.int64)
    arrays = {"rows": rows, "counters": counters, "ring": d._ring, "past": d._past}
    return {k: v.tobytes() for k, v in (arrays | {"used": d._used}).items()}


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize(("sensors", "gaps"), [(1, False), (3, True), (21, False), (21, True)])
def test_findings_and_state_equal_the_numpy_steps(
    settings: dict[str, Any], sensors: int, gaps: bool
) -> None:
    ref, d = ListPatternReference(**settings), PatternDetector(**settings)
    records = stream(sensors, 2400, sensors + 7 * gaps, gaps)
    for i, x in enumerate(records):
        score = i % 600 > 50
        assert repr(d.score_learn_one(x, score)) == repr(ref.score_learn_one(x, score)), i
    assert d._ticks == ref._ticks == 0 and d.queries > 0
    assert the_state(d) == the_state(ref)


def test_a_checkpoint_with_the_list_state_continues_identically() -> None:
    ref = ListPatternReference(**SETTINGS[0])
    records = stream(3, 2400, 5, gaps=True)
    for x in records[:1203]:  # mid-segment: the running sums are carried over
        ref.score_learn_one(x)
    assert ref._ticks and ref._kept == ref.reservoir
    d = PatternDetector.__new__(PatternDetector)  # restored as the checkpoint codec does
    for name, value in state_codec.decode(state_codec.encode(vars(ref))).items():
        object.__setattr__(d, name, value)
    found = [d.score_learn_one(x) for x in records[1203:]]
    assert found == [ref.score_learn_one(x) for x in records[1203:]] and any(found)
    assert the_state(d) == the_state(ref)
    assert "_lo" not in vars(d) and isinstance(d._values, list)  # the new state from now on
    assert state_codec.decode(state_codec.encode(d))._state.tobytes() == d._state.tobytes()
