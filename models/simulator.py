"""A fleet simulator shaped like NASA C-MAPSS, with labels.

Each asset runs life after life: it wears along a random power-law health curve, fails when the
curve reaches 1, is repaired and starts again. Sensors ``s1``..``s21`` read a per-regime baseline
plus a wear term plus noise (seven of them carry no wear signal, as in C-MAPSS); operating
settings ``setting1``..``setting3`` switch between regimes. Optional faults (spikes, stuck
sensors, slow drift) are injected and labelled, and every record knows its true remaining life,
so the simulator can label both RUL and anomalies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

SENSORS: tuple[str, ...] = tuple(f"s{i}" for i in range(1, 22))
SETTINGS: tuple[str, ...] = ("setting1", "setting2", "setting3")
FLAT_SENSORS = frozenset({"s1", "s5", "s6", "s10", "s16", "s18", "s19"})
FAULT_KINDS: tuple[str, ...] = ("spike", "stuck", "drift")
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: a fixed start keeps runs reproducible


@dataclass(frozen=True)
class SimRecord:
    """One simulated telemetry record with its ground truth."""

    asset_id: str
    ts_ms: int
    cycle: int
    settings: dict[str, float]
    sensors: dict[str, float]
    rul: int
    life: int
    fault: str | None = None

    def to_message(self) -> dict[str, object]:
        """The record as a telemetry message (ground truth left out)."""
        return {
            "asset_id": self.asset_id,
            "ts": self.ts_ms,
            "cycle": self.cycle,
            "settings": self.settings,
            "sensors": self.sensors,
        }


@dataclass
class _Asset:
    asset_id: str
    rng: np.random.Generator
    baseline: np.ndarray  # (regimes, sensors)
    sigma: np.ndarray  # (sensors,)
    wear_gain: np.ndarray  # (sensors,)
    faulty: bool
    life: int = 0
    cycle: int = 0
    lifetime: int = 0
    exponent: float = 2.0
    initial_wear: float = 0.0
    stuck: dict[int, tuple[int, float]] = field(default_factory=dict)
    drift: dict[int, tuple[int, float]] = field(default_factory=dict)


class FleetSimulator:
    """A deterministic fleet of degrading assets.

    Parameters
    ----------
    assets
        Number of assets, named ``asset-000``, ``asset-001``, ...
    seed
        Random seed; the same seed gives the same records.
    regimes
        Number of operating regimes (1 gives a single, fixed operating point).
    fault_share
        Share of assets that receive injected faults.
    fault_rate
        Per-record probability that a faulty asset starts a new fault.
    life_range
        Inclusive range of cycles to failure.
    interval_s
        Event-time spacing between one asset's records.
    start_ms
        Event time of the first record (epoch ms).
    plant
        Seed of the fleet's physics (regimes, baselines, how wear shows in each sensor), shared
        by every ``seed``: a model trained on one seed's fleet applies to another's.

    Examples
    --------
    >>> sim = FleetSimulator(assets=2, seed=1)
    >>> recs = list(sim.records(4))
    >>> [r.asset_id for r in recs]
    ['asset-000', 'asset-001', 'asset-000', 'asset-001']
    >>> recs[2].cycle - recs[0].cycle, recs[0].rul - recs[2].rul
    (1, 1)
    >>> sorted(recs[0].sensors) == sorted(SENSORS)
    True
    """

    def __init__(
        self,
        assets: int = 10,
        seed: int = 0,
        regimes: int = 3,
        fault_share: float = 0.0,
        fault_rate: float = 0.01,
        life_range: tuple[int, int] = (150, 320),
        interval_s: float = 60.0,
        start_ms: int = EPOCH_MS,
        plant: int = 0,
    ) -> None:
        if assets < 1 or regimes < 1:
            raise ValueError("assets and regimes must be at least 1")
        self.assets = assets
        self.seed = seed
        self.regimes = regimes
        self.fault_share = fault_share
        self.fault_rate = fault_rate
        self.life_range = life_range
        self.interval_s = interval_s
        self.start_ms = start_ms
        self.plant = plant
        fleet_rng = np.random.default_rng([plant, 0])
        self._regime_settings = fleet_rng.uniform(0.0, 1.0, size=(regimes, len(SETTINGS)))
        self._regime_settings[:, 2] = np.round(self._regime_settings[:, 2] * 100.0)
        base = fleet_rng.uniform(10.0, 1000.0, size=len(SENSORS))
        regime_scale = 1.0 + 0.5 * fleet_rng.uniform(-1.0, 1.0, size=(regimes, len(SENSORS)))
        if regimes == 1:
            regime_scale[:] = 1.0
        self._baseline = base * regime_scale
        flat = np.array([s in FLAT_SENSORS for s in SENSORS])
        sign = fleet_rng.choice([-1.0, 1.0], size=len(SENSORS))
        self._wear_gain = np.where(flat, 0.0, sign * fleet_rng.uniform(6.0, 12.0, len(SENSORS)))
        n_faulty = round(fault_share * assets)
        self._assets = [self._new_asset(i, i < n_faulty) for i in range(assets)]

    def _new_asset(self, index: int, faulty: bool) -> _Asset:
        rng = np.random.default_rng([self.seed, 1, index])
        baseline = self._baseline * (1.0 + rng.normal(0.0, 0.002, size=self._baseline.shape))
        sigma = np.abs(baseline[0]) * 0.002
        asset = _Asset(f"asset-{index:03d}", rng, baseline, sigma, self._wear_gain, faulty)
        self._start_life(asset)
        return asset

    def _start_life(self, asset: _Asset) -> None:
        lo, hi = self.life_range
        asset.life += 1
        asset.cycle = 0
        asset.lifetime = int(asset.rng.integers(lo, hi + 1))
        asset.exponent = float(asset.rng.uniform(1.5, 3.0))
        asset.initial_wear = float(asset.rng.uniform(0.0, 0.1))

    def _step(self, asset: _Asset, step: int) -> SimRecord:
        if asset.cycle >= asset.lifetime:
            self._start_life(asset)
        asset.cycle += 1
        rng = asset.rng
        regime = int(rng.integers(self.regimes))
        wear = (
            asset.initial_wear
            + (1 - asset.initial_wear) * (asset.cycle / asset.lifetime) ** asset.exponent
        )
        values = asset.baseline[regime] + asset.wear_gain * asset.sigma * wear
        values = values + rng.normal(0.0, 1.0, len(SENSORS)) * asset.sigma
        fault = self._inject(asset, values) if asset.faulty else None
        settings = self._regime_settings[regime] + rng.normal(0.0, 1e-4, len(SETTINGS))
        settings[2] = self._regime_settings[regime, 2]
        return SimRecord(
            asset_id=asset.asset_id,
            ts_ms=self.start_ms + round(step * self.interval_s * 1000),
            cycle=asset.cycle,
            settings={k: round(float(v), 4) for k, v in zip(SETTINGS, settings, strict=True)},
            sensors={k: round(float(v), 4) for k, v in zip(SENSORS, values, strict=True)},
            rul=asset.lifetime - asset.cycle,
            life=asset.life,
            fault=fault,
        )

    def _inject(self, asset: _Asset, values: np.ndarray) -> str | None:
        """Apply running faults to ``values`` in place; maybe start a new one."""
        rng, labels = asset.rng, []
        informative = [i for i, s in enumerate(SENSORS) if s not in FLAT_SENSORS]
        if rng.random() < self.fault_rate:
            kind = FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))]
            sensor = informative[int(rng.integers(len(informative)))]
            if kind == "spike":
                values[sensor] += rng.choice([-1.0, 1.0]) * 12.0 * asset.sigma[sensor]
                labels.append("spike")
            elif kind == "stuck":
                asset.stuck[sensor] = (int(rng.integers(20, 60)), float(values[sensor]))
            else:
                asset.drift[sensor] = (int(rng.integers(40, 120)), float(rng.choice([-1, 1])))
        for sensor, (left, value) in list(asset.stuck.items()):
            values[sensor] = value
            labels.append("stuck")
            asset.stuck[sensor] = (left - 1, value)
            if left <= 1:
                del asset.stuck[sensor]
        for sensor, (left, sign) in list(asset.drift.items()):
            values[sensor] += sign * 0.15 * asset.sigma[sensor] * (120 - left)
            labels.append("drift")
            asset.drift[sensor] = (left - 1, sign)
            if left <= 1:
                del asset.drift[sensor]
        return labels[0] if labels else None

    def records(self, n: int) -> Iterator[SimRecord]:
        """Yield ``n`` records, one asset after the other, in event-time order."""
        for i in range(n):
            step, index = divmod(i, self.assets)
            yield self._step(self._assets[index], step)

    def runs(self, lives: int) -> Iterator[SimRecord]:
        """Yield records until every asset completed ``lives`` full lives (for training)."""
        done: set[str] = set()
        step = 0
        while len(done) < self.assets:
            for asset in self._assets:
                if asset.asset_id in done:
                    continue
                record = self._step(asset, step)
                yield record
                if record.rul == 0 and record.life >= lives:
                    done.add(asset.asset_id)
            step += 1
