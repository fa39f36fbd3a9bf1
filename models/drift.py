"""Per-asset drift detection on standardised sensor deviations, with de-duplication.

The detector watches each sensor's signed standardised deviation (see
:meth:`models.regime_scaler.RegimeScaler.contributions`): because it is already normalised per
operating regime, a regime switch is not a drift, while a level shift of one sensor is. Two
change detectors are available per sensor: a two-sided CUSUM (default: four floats of state per
sensor, and a direct shift estimate) and river's ``ADWIN``.

A detector usually fires more than once for one change (a shift that stays is detected again
after every reset). Firings of a sensor in the same direction within ``merge_s`` seconds of its
previous firing are merged into the change already reported, and firings of several sensors on
one record make one event, so a single level shift yields a single :class:`DriftEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import drift as river_drift

from models.detectors.scaler_kernels import cusum_step
from models.run_values import keyed_row
from models.sensor_table import SensorTable

_ADWIN: Any = river_drift.ADWIN


@dataclass(frozen=True)
class DriftEvent:
    """Sensors whose level changed, with the estimated shift in standard deviations.

    Examples
    --------
    >>> e = DriftEvent(at=60.0, sensors=(("s11", 3.2), ("s7", -1.5)))
    >>> e.describe()
    's11 drifted up (+3.2 sd), s7 drifted down (-1.5 sd)'
    """

    at: float
    sensors: tuple[tuple[str, float], ...]

    @property
    def directions(self) -> tuple[tuple[str, str], ...]:
        """``(sensor, "up" | "down")`` per drifted sensor."""
        return tuple((s, "up" if v > 0 else "down") for s, v in self.sensors)

    def describe(self) -> str:
        """One human line."""
        return ", ".join(
            f"{s} drifted {'up' if v > 0 else 'down'} ({v:+.1f} sd)" for s, v in self.sensors
        )


class SensorDriftDetector:
    """Per-sensor change detection with a merge window.

    Parameters
    ----------
    method
        ``"cusum"`` (two-sided CUSUM on the deviations) or ``"adwin"`` (river's ADWIN).
    slack
        CUSUM allowance ``k``: shifts below it (in sd) are ignored.
    limit
        CUSUM decision limit ``h``.
    delta
        ADWIN confidence.
    min_shift
        Firings whose estimated shift is smaller (in sd) are dropped.
    merge_s
        Firings of a sensor in the same direction within this many seconds of its previous
        firing are the same change.

    Examples
    --------
    >>> d = SensorDriftDetector()
    >>> events = [d.update({"s1": 0.0 if t < 50 else 4.0}, now=60.0 * t) for t in range(200)]
    >>> [(e.at, e.directions) for e in events if e]
    [(3300.0, (('s1', 'up'),))]
    """

    def __init__(
        self,
        *,
        method: str = "cusum",
        slack: float = 1.0,
        limit: float = 15.0,
        delta: float = 0.002,
        min_shift: float = 1.0,
        merge_s: float = 6 * 3600.0,
    ) -> None:
        if method not in ("cusum", "adwin"):
            raise ValueError(f"method must be 'cusum' or 'adwin', not {method!r}")
        self.method = method
        self.slack = slack
        self.limit = limit
        self.delta = delta
        self.min_shift = min_shift
        self.merge_s = merge_s
        # per sensor: g_up, n_up, g_down, n_down (a dict of lists in older checkpoints)
        self._cusum: SensorTable | dict[str, list[float]] = SensorTable(4)
        self._adwin: dict[str, Any] = {}
        self._last_fired: dict[str, tuple[float, float]] = {}  # sensor -> (time, sign)

    def _cusum_shifts(
        self, keys: tuple[str, ...], values: NDArray[np.float64]
    ) -> list[tuple[str, float]]:
        """One two-sided CUSUM step of every sensor (``keys``, their deviations ``values``;
        compiled: :func:`~models.detectors.scaler_kernels.cusum_step`): the sensors that fired, with
        their estimated shift (their statistics start again)."""
        table = self._table()
        rows = table.rows_for(keys, grow=True)
        fired, shifts = np.empty(len(keys), dtype=np.int64), np.empty(len(keys))
        n = cusum_step(table.stats, values, rows, self.slack, self.limit, fired, shifts)
        if not n:
            return []
        return [(keys[i], s) for i, s in zip(fired[:n].tolist(), shifts[:n].tolist(), strict=True)]

    def _table(self) -> SensorTable:
        """The CUSUM state (a checkpoint written before it was a table holds per-sensor lists:
        taken over here)."""
        table = self._cusum
        if isinstance(table, dict):
            table = self._cusum = SensorTable.of(table, 4)
        return table

    def _adwin_shifts(
        self, keys: tuple[str, ...], values: NDArray[np.float64]
    ) -> list[tuple[str, float]]:
        """One ADWIN step of every sensor: the sensors that fired, with their shift."""
        fired = []
        for sensor, value in zip(keys, values.tolist(), strict=True):
            shift = self._step_adwin(sensor, value)
            if shift is not None:
                fired.append((sensor, shift))
        return fired

    def _step_adwin(self, sensor: str, z: float) -> float | None:
        det = self._adwin.get(sensor)
        if det is None:
            det = self._adwin[sensor] = _ADWIN(delta=self.delta)
        before = float(det.estimation)
        det.update(z)
        return float(det.estimation) - before if det.drift_detected else None

    def update(self, z: Mapping[str, float], now: float) -> DriftEvent | None:
        """Learn one record of signed deviations at event time ``now`` (seconds).

        Returns a :class:`DriftEvent` for newly changed sensors, ``None`` otherwise.
        """
        return self.update_row(*keyed_row(z), now)

    def update_row(
        self, keys: tuple[str, ...], values: NDArray[np.float64], now: float
    ) -> DriftEvent | None:
        """:meth:`update` of the deviations ``values`` of the sensors ``keys``, in their order."""
        fired: list[tuple[str, float]] = []
        if self.method == "cusum":
            shifts = self._cusum_shifts(keys, values)
        else:
            shifts = self._adwin_shifts(keys, values)
        for sensor, shift in shifts:
            if abs(shift) < self.min_shift:
                continue
            sign = 1.0 if shift > 0 else -1.0
            last = self._last_fired.get(sensor)
            self._last_fired[sensor] = (now, sign)
            if last is None or last[1] != sign or now - last[0] > self.merge_s:
                fired.append((sensor, round(shift, 3)))
        if not fired:
            return None
        fired.sort(key=lambda kv: (-abs(kv[1]), kv[0]))
        return DriftEvent(at=now, sensors=tuple(fired))

    def reset(self, sensors: list[str]) -> None:
        """Forget the change statistics of ``sensors`` (after their baseline was relearned)."""
        self._table().drop(sensors)
        for s in sensors:
            self._adwin.pop(s, None)
