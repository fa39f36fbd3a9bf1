"""Novelty of a sensor's level, forecast residual and short-term spread: spikes, shifts, variance.

Each sensor keeps a one-step forecast (an exponentially weighted level), the spread of its
recent forecast residuals, and a slowly forgetting range ``[lo, hi]`` of three features:

* ``spike``: the forecast residual ``x - forecast`` (a sudden jump away from the short-horizon
  forecast);
* ``shift``: the value itself (a level moving outside everything the asset has shown lately);
* ``variance``: the recent residual standard deviation (only its upper side: noise growing).

A feature is novel when it leaves its range by more than ``margin`` times the range's width.
The range then takes the new value in at once, so a change alarms once, not for as long as it
lasts; ranges contract towards their centre by ``decay`` per record so that, after a long quiet
time, the normal band tightens again. Margins are relative to each sensor's own range: the
detector needs no scale and no per-series setting.

State is a dict of sensor -> list of floats (plain data: it checkpoints with any codec), and
every update is elementwise, so an asset's records can be scored as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

KINDS = ("spike", "shift", "variance")
# per-sensor state slots
_N, _LEVEL, _VAR, _LO_X, _HI_X, _LO_R, _HI_R, _LO_S, _HI_S = range(9)


class NoveltyDetector:
    """Spike, shift and variance novelty per sensor (River-style ``learn_one``/``score_one``).

    Parameters
    ----------
    spike_margin, shift_margin, variance_margin
        How far (in widths of the feature's range) a feature must leave its range to count.
    decay
        Per-record contraction of every range towards its centre (1: never forget).
    forecast_alpha
        Weight of the newest value in the one-step level forecast.
    spread_alpha
        Weight of the newest squared residual in the short-term spread.
    min_count
        Records of a sensor before it is scored.

    Examples
    --------
    >>> d = NoveltyDetector(min_count=5)
    >>> for i in range(100):
    ...     d.learn_one({"s1": 10.0 + (i % 5) * 0.1})
    >>> d.score_one({"s1": 10.2})
    {}
    >>> found = d.score_one({"s1": 25.0})
    >>> sorted(found), found["shift"][1]
    (['shift', 'spike'], ('s1',))
    """

    def __init__(
        self,
        *,
        spike_margin: float = 0.4,
        shift_margin: float = 0.05,
        variance_margin: float = 0.1,
        decay: float = 0.9999,
        forecast_alpha: float = 0.5,
        spread_alpha: float = 0.1,
        min_count: int = 30,
    ) -> None:
        self.spike_margin = spike_margin
        self.shift_margin = shift_margin
        self.variance_margin = variance_margin
        self.decay = decay
        self.forecast_alpha = forecast_alpha
        self.spread_alpha = spread_alpha
        self.min_count = min_count
        self._sensors: dict[str, list[float]] = {}

    def score_one(self, x: Mapping[str, float]) -> dict[str, tuple[float, tuple[str, ...]]]:
        """Novel kinds of ``x``: kind -> (largest excess, its sensors by excess), excess > 1.

        The excess is how far the feature left its range, divided by the kind's margin times
        the range width: above 1 is novel. Learns nothing.
        """
        found: dict[str, list[tuple[float, str]]] = {}
        margins = (self.spike_margin, self.shift_margin, self.variance_margin)
        for name, v in x.items():
            st = self._sensors.get(name)
            if st is None or st[_N] < self.min_count:
                continue
            r = v - st[_LEVEL]
            excess = (
                _outside(r, st[_LO_R], st[_HI_R]),
                _outside(v, st[_LO_X], st[_HI_X]),
                _above(math.sqrt(st[_VAR]), st[_LO_S], st[_HI_S]),
            )
            for kind, e, margin in zip(KINDS, excess, margins, strict=True):
                if e > margin:
                    found.setdefault(kind, []).append((e / margin, name))
        out = {}
        for kind, hits in found.items():
            hits.sort(reverse=True)
            out[kind] = (hits[0][0], tuple(name for _, name in hits[:3]))
        return out

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Take ``x`` into every sensor's forecast, spread and ranges."""
        a, b, keep = self.forecast_alpha, self.spread_alpha, self.decay
        for name, v in x.items():
            st = self._sensors.get(name)
            if st is None:
                self._sensors[name] = [1.0, v, 0.0, v, v, 0.0, 0.0, 0.0, 0.0]
                continue
            r = v - st[_LEVEL]
            s = math.sqrt(st[_VAR])
            st[_N] += 1.0
            st[_VAR] += b * (r * r - st[_VAR])
            st[_LEVEL] += a * r
            for lo, hi, value in ((_LO_X, _HI_X, v), (_LO_R, _HI_R, r), (_LO_S, _HI_S, s)):
                low, high = min(st[lo], value), max(st[hi], value)
                centre = 0.5 * (low + high)
                st[lo], st[hi] = centre + (low - centre) * keep, centre + (high - centre) * keep

    def forget(self, sensors: list[str]) -> None:
        """Drop what was learned about ``sensors``."""
        for name in sensors:
            self._sensors.pop(name, None)


def _width(lo: float, hi: float) -> float:
    return hi - lo + 1e-4 * max(abs(lo), abs(hi)) + 1e-9


def _outside(v: float, lo: float, hi: float) -> float:
    """How far ``v`` lies outside ``[lo, hi]``, in widths of the range (0 inside).

    >>> round(_outside(12.0, 0.0, 10.0), 3), _outside(5.0, 0.0, 10.0)
    (0.2, 0.0)
    """
    return max(v - hi, lo - v, 0.0) / _width(lo, hi)


def _above(v: float, lo: float, hi: float) -> float:
    """How far ``v`` lies above ``hi``, in widths of ``[lo, hi]`` (0 below)."""
    return max(v - hi, 0.0) / _width(lo, hi)
