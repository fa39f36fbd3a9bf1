"""Regime-aware scaling: each sensor's signed deviation from its running normal in the record's
operating regime.

Every asset learns its own normal from its own stream. Sensor values are standardised against
running statistics kept per operating regime (:class:`models.regimes.OperatingRegimes`), so a
machine that switches between load points is not scored against the wrong baseline. The
scorers (:mod:`models.anomaly`) build on it. Operating settings travel in the same ``x`` as the
sensors, under keys starting with ``regime_prefix``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from models.detectors.scaler_kernels import scaler_deviations, scaler_learn
from models.regimes import Features, OperatingRegimes
from models.run_values import real_values
from models.sensor_table import SensorTable
from models.state_codec import HasCaches


class RegimeScaler(HasCaches):
    """Running per-regime, per-sensor mean and variance; signed standardised deviations.

    Statistics are exponentially weighted with memory ``window`` (a plain running mean until
    ``window`` records were seen), so a slowly changing normal is followed. A sensor is scored
    in a regime only after ``min_count`` records of it in that regime. The scale is the running
    standard deviation plus ``resolution`` times the sensor's level: telemetry carries about four
    significant digits, so a near-constant sensor flipping by one step is not a deviation of
    many sd (on C-MAPSS FD001 this doubled the engines alarmed before failure).

    Parameters
    ----------
    window
        Memory of the running statistics, in records of one regime.
    min_count
        Records needed before a sensor contributes.
    clip
        Deviations are clipped to ``[-clip, clip]``.
    resolution
        Relative resolution added to the scale (see above).
    regime_prefix
        Keys of ``x`` starting with this prefix are operating settings, not sensors.
    regime_tolerance, max_regimes
        Passed to :class:`OperatingRegimes`.

    Examples
    --------
    >>> s = RegimeScaler(min_count=2)
    >>> for v in (1.0, 2.0, 3.0):
    ...     s.learn_one({"s1": v})
    >>> s.contributions({"s1": 5.0})
    {'s1': 3.669...}
    """

    def __init__(
        self,
        *,
        window: int = 5000,
        min_count: int = 30,
        clip: float = 20.0,
        resolution: float = 5e-4,
        regime_prefix: str = "setting",
        regime_tolerance: float = 0.05,
        max_regimes: int = 16,
    ) -> None:
        self.window = window
        self.min_count = min_count
        self.clip = clip
        self.resolution = resolution
        self.regime_prefix = regime_prefix
        self.regime_tolerance = regime_tolerance
        self.max_regimes = max_regimes
        self._regimes = OperatingRegimes(regime_tolerance, max_regimes)
        self._tables = {}  # per regime

    # The last scored ``x``, split and located, for a ``learn_one`` of the same object to reuse
    # (``x`` must not change in between). Not part of the state: never pickled.
    _located: tuple[Features, dict[str, float], dict[str, float], int | None] | None = None
    CACHES = ("_located",)
    _tables: dict[int, SensorTable] | None = None  # (None: a checkpoint of per-sensor lists)

    def _locate(self, x: Features) -> tuple[dict[str, float], dict[str, float], int | None]:
        sensors, settings = self.split(x)
        regime = self._regimes.predict_one(settings) if settings else 0
        self._located = (x, sensors, settings, regime)
        return sensors, settings, regime

    def split(self, x: Features) -> tuple[dict[str, float], dict[str, float]]:
        """Split ``x`` into ``(sensors, settings)``."""
        sensors: dict[str, float] = {}
        settings: dict[str, float] = {}
        for k, v in x.items():
            (settings if k.startswith(self.regime_prefix) else sensors)[k] = v
        return sensors, settings

    def regimes_of(self, settings: Sequence[Features]) -> list[int | None]:
        """The regime of each settings mapping of a run (empty: regime 0), as :meth:`regime_of`
        would give it now (nothing learned)."""
        if len(settings) == 1:  # the usual run of one record
            x = settings[0]
            return [self._regimes.predict_one(x) if x else 0]
        given = [i for i, x in enumerate(settings) if x]
        out: list[int | None] = [0] * len(settings)
        for i, regime in zip(
            given, self._regimes.predict_many([settings[i] for i in given]), strict=True
        ):
            out[i] = regime
        return out

    @property
    def n_regimes(self) -> int:
        """Operating regimes learned so far."""
        return self._regimes.n_regimes

    def regime_of(self, x: Features) -> int | None:
        """The regime ``x`` belongs to, ``None`` if it is new (nothing learned)."""
        _, settings = self.split(x)
        return self._regimes.predict_one(settings) if settings else 0

    def learn_one(self, x: Features) -> None:
        """Update the statistics of ``x``'s regime."""
        located, self._located = self._located, None
        if located is not None and located[0] is x:
            _, sensors, settings, regime = located
        else:
            sensors, settings = self.split(x)
            regime = None if settings else 0
        self.learn_located(sensors, settings, regime)

    def learn_located(
        self,
        sensors: Features,
        settings: Features,
        regime: int | None,
        values: NDArray[np.float64] | None = None,
    ) -> None:
        """:meth:`learn_one` of a record already split and located (``regime``: as
        :meth:`regimes_of` gives it, ``None`` for a new one; ``values``: those of ``sensors``
        in its order, when already read)."""
        if regime is None:
            regime = self._regimes.learn_one(settings)
        tables = self._regime_tables()
        table = tables.get(regime)
        if table is None:
            table = tables[regime] = SensorTable(3)
        rows = table.rows_for(sensors, grow=True)
        if values is None:
            values = real_values(sensors.values())
        scaler_learn(table.stats, values, rows, 1.0 / self.window)

    def contributions(self, x: Features) -> dict[str, float]:
        """Signed standardised deviation of each scored sensor of ``x`` (learns nothing)."""
        sensors, _, regime = self._locate(x)
        return self.deviations(sensors, regime)

    def deviations(self, sensors: Features, regime: int | None) -> dict[str, float]:
        """:meth:`contributions` of a record's sensors already split off and located."""
        deviations = self._deviation_array(sensors, regime)
        if deviations is None:
            return {}
        return deviations_by_sensor(sensors, deviations[0].tolist(), deviations[1])

    def _deviation_array(
        self, sensors: Features, regime: int | None, values: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], int] | None:
        """The deviation of each of ``sensors`` in its order (NaN: not scored) and how many
        are scored; ``None`` when nothing of ``regime`` was learned (``values``: those of
        ``sensors``, when already read)."""
        tables = self._regime_tables()
        table = tables.get(regime) if regime is not None else None
        if table is None or not table.names or not sensors:
            return None
        if values is None:
            values = real_values(sensors.values())
        z = np.empty(len(values))
        scored = scaler_deviations(
            table.stats, values, table.rows_for(sensors), self.clip, self.resolution,
            self.min_count, z,
        )  # fmt: skip
        return z, scored

    def forget(self, sensors: Features | list[str], x: Features | None = None) -> None:
        """Drop the statistics of ``sensors`` (in ``x``'s regime, or in all regimes)."""
        regime = self.regime_of(x) if x is not None else None
        tables = self._regime_tables()
        for r, table in tables.items():
            if regime is None or r == regime:
                table.drop(sensors)

    def _regime_tables(self) -> dict[int, SensorTable]:
        """The statistics per regime; a checkpoint written before they were tables holds
        per-sensor lists (``_stats``), taken over here."""
        tables = self._tables
        if tables is None:
            lists: dict[int, dict[str, list[float]]] = self.__dict__.pop("_stats", {})
            tables = self._tables = {r: SensorTable.of(t, 3) for r, t in lists.items()}
        return tables


def deviations_by_sensor(sensors: Iterable[str], z: list[float], scored: int) -> dict[str, float]:
    """The scored ones (``scored`` of them) of a record's deviations ``z`` by sensor (NaN: not
    scored).

    >>> deviations_by_sensor(("s1", "s2"), [0.5, float("nan")], 1)
    {'s1': 0.5}
    """
    if scored == len(z):
        return dict(zip(sensors, z, strict=True))
    return {k: q for k, q in zip(sensors, z, strict=True) if not math.isnan(q)}
