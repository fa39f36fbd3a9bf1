"""Per-record model work of a worker: anomaly monitor, RUL window, alert signals, points.

Synchronous and free of IO. For each record of an asset the worker owns: the asset's
:class:`AssetMonitor` scores and learns it, its RUL window takes the normalised row (and says
when a forecast is due), the fleet's :class:`AlertEngine` turns the signals into alert events,
and InfluxDB points are collected. RUL forecasts come back through :meth:`forecast` once the
batcher has run them. Model state is checkpointed every N records or T seconds per asset.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ArtifactError, DataError
from models.monitor import AssetMonitor, MonitorConfig
from models.rul.serve import RulPredictor
from streams.alerts import (
    AlertEngine,
    AlertEvent,
    AlertPolicy,
    AnomalySignal,
    DriftSignal,
    ReadingSignal,
    RulSignal,
)
from streams.fleet import AssetState
from streams.history import History
from streams.rul_batcher import RulForecast
from streams.schema import Telemetry
from streams.sinks.line_protocol import Point
from streams.sinks.points import alert_point, anomaly_point, drift_point, rul_point

log = logging.getLogger("pmaint.pipeline")
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class PipelineConfig:
    """How often each output and checkpoint happens, per asset."""

    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    anomaly_every: int = 1  # write every n-th anomaly point (anomalous ones always)
    rul_every: int = 1  # forecast every n-th record once the window is full
    checkpoint_every: int = 100  # records between checkpoints of one asset ...
    checkpoint_interval_s: float = 30.0  # ... or seconds, whichever comes first


@dataclass
class Outputs:
    """What a batch of records produced."""

    points: list[Point] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    rul_due: list[tuple[AssetState, Telemetry, NDArray[np.float32]]] = field(default_factory=list)
    checkpoints: list[AssetState] = field(default_factory=list)
    failed: list[tuple[Telemetry, str]] = field(default_factory=list)

    def add_alerts(self, events: list[AlertEvent], state: AssetState) -> None:
        self.alerts += events
        self.points += [alert_point(e, state.site, state.line) for e in events]
        for e in events:
            if e.state == "resolved":
                state.alerts.pop(e.kind, None)
            else:
                state.alerts[e.kind] = e.severity


class ModelPipeline:
    """Models, alerts and points for the assets of one worker."""

    def __init__(
        self,
        config: PipelineConfig,
        predictor: RulPredictor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.predictor = predictor
        self.engine = AlertEngine(config.policy)
        self.clock = clock

    def observe(self, state: AssetState, record: Telemetry, out: Outputs) -> None:
        """Score, learn and window one record; a failure costs only this record."""
        try:
            self._observe(state, record, out)
        except Exception as exc:  # a model bug must not stop the stream
            log.exception("model error on %s", record.asset_id)
            out.failed.append((record, f"processing_error:{type(exc).__name__}"))

    def _observe(self, state: AssetState, record: Telemetry, out: Outputs) -> None:
        cfg = self.config
        ts = record.ts_ms / 1000
        if state.monitor is None:
            state.monitor = AssetMonitor(cfg.monitor)
        result = state.monitor.update(record.sensors, record.settings, ts)
        signal = AnomalySignal(
            record.asset_id, ts, result.score, result.threshold, result.top_sensors
        )
        if not result.warming_up:
            if result.is_anomaly or state.records % cfg.anomaly_every == 0:
                out.points.append(anomaly_point(signal, state.site, state.line))
            out.add_alerts(self.engine.observe(signal), state)
        out.add_alerts(
            self.engine.observe(ReadingSignal(record.asset_id, ts, record.sensors)), state
        )
        state.last = result
        if state.history is None:
            state.history = History()
        state.history.add(ts, result.score, result.threshold)
        if result.drift is not None:
            directions = {d for _, d in result.drift.directions}
            drift = DriftSignal(
                record.asset_id,
                ts,
                [s for s, _ in result.drift.sensors],
                directions.pop() if len(directions) == 1 else "",
            )
            out.points.append(drift_point(drift, state.site, state.line))
            out.add_alerts(self.engine.observe(drift), state)
        if self.predictor is not None:
            self._window(state, record, out)
        state.since_checkpoint += 1
        now = self.clock()
        if (
            state.since_checkpoint >= cfg.checkpoint_every
            or now - state.checkpointed_at >= cfg.checkpoint_interval_s
        ):
            state.since_checkpoint = 0
            state.checkpointed_at = now
            out.checkpoints.append(state)

    def _window(self, state: AssetState, record: Telemetry, out: Outputs) -> None:
        assert self.predictor is not None
        if state.window is None:
            state.window = self.predictor.new_window()
        try:
            state.window.push(record.sensors, record.settings, record.cycle)
        except DataError:
            return  # this record lacks a model feature: no forecast from it
        state.since_rul += 1
        if state.window.ready and state.since_rul >= self.config.rul_every:
            state.since_rul = 0
            out.rul_due.append((state, record, state.window.array()))

    def forecast(
        self, state: AssetState, record: Telemetry, forecast: RulForecast, out: Outputs
    ) -> None:
        """Take one RUL forecast into the outputs and the alert lifecycle."""
        top = state.last.top_sensors if state.last is not None else ()
        signal = RulSignal(
            record.asset_id,
            record.ts_ms / 1000,
            forecast.rul,
            forecast.rul_p10,
            forecast.rul_p90,
            top,
            forecast.model_version,
            forecast.in_domain,
            forecast.unit,
            forecast.data_source,
        )
        state.rul = signal
        if state.history is not None:
            state.history.set_rul(signal.ts, signal.rul, signal.rul_p10, signal.rul_p90)
        out.points.append(rul_point(signal, state.site, state.line))
        out.add_alerts(self.engine.observe(signal), state)

    def tick(self, now: float, fleet: dict[str, AssetState], out: Outputs) -> None:
        """Data-quality checks at event time ``now`` (assets that stopped reporting)."""
        for event in self.engine.tick(now):
            state = fleet.get(event.asset_id)
            if state is not None:
                out.add_alerts([event], state)

    def forget(self, asset_id: str) -> None:
        self.engine.forget(asset_id)

    def checkpoint(self, state: AssetState) -> bytes:
        """The asset's model and alert state as bytes for the changelog table."""
        data: dict[str, Any] = {
            "v": CHECKPOINT_VERSION,
            "monitor": state.monitor.to_bytes() if state.monitor is not None else None,
            "alerts": self.engine.export_asset(state.asset_id),
            "records": state.records,
            "first_seen_ms": state.first_seen_ms,
            "last_seen_ms": state.last_seen_ms,
            "open_alerts": state.alerts,
        }
        return zlib.compress(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), 1)

    def restore(self, state: AssetState, raw: bytes) -> None:
        """Resume an asset from :meth:`checkpoint` bytes; a bad checkpoint starts it afresh."""
        try:
            data = pickle.loads(zlib.decompress(raw))
            if data.get("v") != CHECKPOINT_VERSION:
                raise ArtifactError(f"checkpoint version {data.get('v')}")
            if data["monitor"] is not None:
                state.monitor = AssetMonitor.from_bytes(data["monitor"])
            if data["alerts"] is not None:
                self.engine.import_asset(state.asset_id, data["alerts"])
            state.records = int(data["records"])
            state.first_seen_ms = int(data["first_seen_ms"])
            state.last_seen_ms = int(data["last_seen_ms"])
            state.alerts = dict(data["open_alerts"])
            state.restored = True
        except Exception as exc:
            log.warning("checkpoint of %s unusable (%s); starting it afresh", state.asset_id, exc)
