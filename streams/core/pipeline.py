"""Per-record model work of a worker: anomaly monitor, RUL window, alert signals, points.

Synchronous and free of IO. For each record of an asset the worker owns: the asset's
:class:`AssetMonitor` scores and learns it, its RUL window takes the normalised row (and says
when a forecast is due), the fleet's :class:`AlertEngine` turns the signals into alert events,
and InfluxDB points are collected. RUL forecasts come back through :meth:`forecast` once the
RUL service has run them. Model state is checkpointed every N records per asset (the worker also
saves assets with changes older than T seconds, and assets it evicts).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from models.errors import ArtifactError, DataError
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig
from models.monitor_run import MonitorRun, RunFailedError
from models.policy import DetectorPolicy
from models.rul.serve import RulPredictor
from streams.core.alert_policy import AlertPolicy
from streams.core.alerts import AlertEngine, AlertEvent
from streams.core.fleet import AssetState
from streams.core.forecasts import RulForecast
from streams.core.history import History
from streams.core.line_protocol import Point
from streams.core.points import alert_point, anomaly_point, drift_point, point_tags, rul_point
from streams.core.schema import Telemetry
from streams.core.served_models import ServedModel, ServingModels, assets_of
from streams.core.signals import AnomalySignal, DriftSignal, ReadingSignal, RulSignal
from streams.settings import default

log = logging.getLogger("pmaint.pipeline")


@dataclass(frozen=True)
class PipelineConfig:
    """How often each output and checkpoint happens, per asset."""

    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    detectors: DetectorPolicy | None = None  # per-asset monitor settings (else ``monitor``)
    anomaly_every: int = default("anomaly_every")  # every n-th anomaly point (anomalous: all)
    rul_every: int = default("rul_every")  # forecast every n-th record once the window is full
    checkpoint_every: int = default("checkpoint_every")  # records between checkpoints ...
    checkpoint_interval_s: float = default("checkpoint_interval_s")  # ... or s unsaved
    checkpoint_max_bytes: int = 1_048_576 - 16_384  # the producer's request limit, less headroom


def checkpoint_phase(asset_id: str, every: int) -> int:
    """Records an asset counts as taken towards its first checkpoint once in memory (new or
    restored): from none to half of ``every``, by its id. A fleet that reports in step, started
    or restored together, then falls due over half the interval instead of all at once (a burst
    of checkpoints holds the event loop, and every reading behind it waits).

    >>> [checkpoint_phase(f"asset-{i:03d}", 100) for i in range(6)]
    [7, 0, 27, 34, 17, 6]
    >>> checkpoint_phase("asset-002", 1)
    0
    """
    return zlib.crc32(asset_id.encode()) % every // 2


def asset_runs(
    records: Iterable[tuple[Telemetry, AssetState]],
) -> Iterable[tuple[AssetState, list[Telemetry]]]:
    """A part's records as each asset's run, in order, with the asset's state: what
    :meth:`ModelPipeline.observe_run` scores in one call.

    >>> from types import SimpleNamespace as Record
    >>> part = [(Record(asset_id=a), a.upper()) for a in ("a", "b", "a")]
    >>> [(state, len(run)) for state, run in asset_runs(part)]
    [('A', 2), ('B', 1)]
    """
    runs: dict[str, tuple[AssetState, list[Telemetry]]] = {}
    for record, state in records:
        runs.setdefault(record.asset_id, (state, []))[1].append(record)
    return runs.values()


class RulDue(NamedTuple):
    """A forecast to make: for ``record`` of the asset whose state is ``state``, from ``window``
    by ``predictor``; ``top_sensors``: what explained the record's score, for the forecast's
    alert (the record's own, however many records of the asset its part scored after it)."""

    state: AssetState
    record: Telemetry
    top_sensors: tuple[tuple[str, float], ...]
    window: NDArray[np.float32]
    predictor: RulPredictor


@dataclass
class Outputs:
    """What a batch of records produced."""

    points: list[Point] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    rul_due: list[RulDue] = field(default_factory=list)
    checkpoints: list[AssetState] = field(default_factory=list)
    failed: list[tuple[Telemetry, str]] = field(default_factory=list)

    def add_alerts(self, events: list[AlertEvent], state: AssetState) -> None:
        """The alert events and their points (the events changed ``state.alert`` already)."""
        self.alerts += events
        self.points += [alert_point(e, state.site, state.line) for e in events]


class ModelPipeline:
    """Models, alerts and points for the assets of one worker."""

    def __init__(
        self,
        config: PipelineConfig,
        models: ServingModels | None = None,
    ) -> None:
        self.config = config
        self.models = models if models is not None else ServingModels()
        self._staged: ServingModels | None = None
        self.engine = AlertEngine(config.policy)

    def stage(self, models: ServingModels) -> None:
        """Hand over new RUL models; they serve from the next :meth:`swap` (between batches)."""
        self._staged = models

    def swap(self) -> None:
        """Start serving the staged models, if any (call between batches, never within one)."""
        staged, self._staged = self._staged, None
        if staged is None:
            return
        old = self.models.versions()
        for asset_type, version in staged.versions().items():
            if old.get(asset_type) != version:
                was, who = old.get(asset_type) or "no model", assets_of(asset_type)
                log.info("serving RUL model %s for %s (was %s)", version, who, was)
        self.models = staged

    def model_versions(self) -> dict[str | None, str]:
        """Asset type -> RUL model version served now."""
        return self.models.versions()

    def observe(self, state: AssetState, record: Telemetry, out: Outputs) -> None:
        """Score, learn and window one record; a failure costs only this record."""
        self.observe_run(state, [record], out)

    def observe_run(self, state: AssetState, records: list[Telemetry], out: Outputs) -> int:
        """Score, learn and window a run of one asset's records, in order (the monitor takes
        them as one run: :meth:`AssetMonitor.update_run`); a failure costs only the record
        that failed. Returns how many records were scored anomalous."""
        cfg = self.config
        anomalies = 0
        if cfg.detectors is not None and records:  # the record's type, else a [types] pattern
            state.asset_type = cfg.detectors.type_of(records[0].asset_id, state.asset_type)
        monitor = state.monitor
        if records and (monitor is None or state.settings_due):
            settings = (
                cfg.detectors.config_for(state.asset_id, state.asset_type)
                if cfg.detectors is not None
                else cfg.monitor
            )
            if monitor is None:
                monitor = state.monitor = AssetMonitor(settings)
            else:  # restored: a checkpoint written under other settings runs under these
                monitor.adopt(settings)
                state.settings_due = False
            state.since_checkpoint += checkpoint_phase(state.asset_id, cfg.checkpoint_every)
        while records and monitor is not None:
            failed: RunFailedError | None = None
            try:
                run = monitor.update_run(
                    [r.sensors for r in records],
                    [r.settings for r in records],
                    [r.ts_ms / 1000 for r in records],
                )
            except RunFailedError as exc:
                run, failed = exc.done, exc
            anomalies += sum(run.is_anomaly)
            tags = point_tags(state.asset_id, state.site, state.line, "")  # its anomaly points
            served = self.models.for_type(state.asset_type)
            last = -1  # the last record whose result the asset keeps (``state.latest``)
            for i in range(len(run)):
                try:
                    self._signal(state, records[i], run, i, tags, out)
                    last = i
                    self._bookkeep(state, records[i], run, i, served, out)
                except Exception as exc:  # a model bug must not stop the stream
                    self._failed(records[i], exc, out)
            if last >= 0:
                state.latest = (run, last)
            if failed is None:
                break
            self._failed(records[failed.index], failed.__cause__ or failed, out)
            records = records[failed.index + 1 :]
        return anomalies

    @staticmethod
    def _failed(record: Telemetry, exc: BaseException, out: Outputs) -> None:
        log.error("model error on %s", record.asset_id, exc_info=exc)
        out.failed.append((record, f"processing_error:{type(exc).__name__}"))

    def _signal(
        self,
        state: AssetState,
        record: Telemetry,
        run: MonitorRun,
        i: int,
        tags: dict[str, str],
        out: Outputs,
    ) -> None:
        """The anomaly point and alert events of the run's ``i``-th record (``record``), read
        from the run's columns; ``tags``: the asset's point tags."""
        ts = record.ts_ms / 1000
        engine, alert = self.engine, state.alert
        # every n-th by the record's own count: the same points however records are batched
        due = run.is_anomaly[i] or run.records_seen(i) % self.config.anomaly_every == 0
        alarm = run.alarm[i]
        if not run.warming_up[i] and (due or alarm is not False or not engine.unmoved(alert)):
            signal = AnomalySignal(
                record.asset_id,
                ts,
                run.score[i],
                run.threshold[i],
                run.top_sensors[i],
                alarm=alarm,
                detector=run.kind[i] or "",
                since=run.since[i],
                magnitude=run.magnitude[i],
            )
            if due:
                out.points.append(anomaly_point(signal, tags=tags))
            if events := engine.observe(alert, signal):
                out.add_alerts(events, state)
        if events := engine.observe(alert, ReadingSignal(record.asset_id, ts, record.sensors)):
            out.add_alerts(events, state)

    def _bookkeep(
        self,
        state: AssetState,
        record: Telemetry,
        run: MonitorRun,
        i: int,
        served: ServedModel | None,
        out: Outputs,
    ) -> None:
        """History, drift, RUL window and checkpoint of the run's ``i``-th record."""
        ts = record.ts_ms / 1000
        if state.history is None:
            state.history = History()
        state.history.add(ts, run.score[i], run.threshold[i])
        event = run.drift[i]
        if event is not None:
            directions = {d for _, d in event.directions}
            drift = DriftSignal(
                record.asset_id,
                ts,
                [s for s, _ in event.sensors],
                directions.pop() if len(directions) == 1 else "",
            )
            out.points.append(drift_point(drift, state.site, state.line))
            out.add_alerts(self.engine.observe(state.alert, drift), state)
        if served is not None:
            self._window(state, record, run.top_sensors[i], served, out)
        else:
            state.window = None  # no model for this asset (type): anomaly detection only
        state.since_checkpoint += 1
        if state.since_checkpoint >= self.config.checkpoint_every:
            state.since_checkpoint = 0
            out.checkpoints.append(state)  # (the worker also saves assets idle with changes)

    def _window(
        self,
        state: AssetState,
        record: Telemetry,
        top: tuple[tuple[str, float], ...],
        served: ServedModel,
        out: Outputs,
    ) -> None:
        if state.window is None or state.window_key is not served.key:  # first, or a new model
            if state.window is None or state.window_key != served.key:  # with other inputs
                state.window = served.predictor.new_window()
            state.window_key = served.key  # the same object from now on: a cheap check
        try:
            state.window.push(record.sensors, record.settings, record.cycle)
        except DataError:
            return  # this record lacks a model feature: no forecast from it
        state.since_rul += 1
        if state.window.ready and state.since_rul >= self.config.rul_every:
            state.since_rul = 0
            out.rul_due.append(RulDue(state, record, top, state.window.array(), served.predictor))

    def forecast(self, due: RulDue, forecast: RulForecast, out: Outputs) -> None:
        """Take the forecast ``due`` asked for into the outputs and the alert lifecycle."""
        state, record = due.state, due.record
        signal = RulSignal(
            record.asset_id,
            record.ts_ms / 1000,
            forecast.rul,
            forecast.rul_p10,
            forecast.rul_p90,
            due.top_sensors,
            forecast.model_version,
            forecast.in_domain,
            forecast.unit,
            forecast.data_source,
        )
        state.rul = signal
        if state.history is not None:
            state.history.set_rul(signal.ts, signal.rul, signal.rul_p10, signal.rul_p90)
        out.points.append(rul_point(signal, state.site, state.line))
        out.add_alerts(self.engine.observe(state.alert, signal), state)

    def tick(self, now: float, fleet: dict[str, AssetState], out: Outputs) -> set[str]:
        """Data-quality checks at event time ``now`` (assets that stopped reporting); returns
        the assets whose alerts changed."""
        changed: set[str] = set()
        for event in self.engine.tick(now, ((k, s.alert) for k, s in fleet.items())):
            out.add_alerts([event], fleet[event.asset_id])
            changed.add(event.asset_id)
        return changed

    def checkpoint(self, state: AssetState) -> bytes | None:
        """The asset's checkpoint for the changelog table (:meth:`AssetState.encode`); ``None``,
        with a warning, when it exceeds ``checkpoint_max_bytes`` (the broker would refuse it):
        the asset's previous checkpoint stays."""
        raw = state.encode()
        if len(raw) > self.config.checkpoint_max_bytes:
            log.warning(
                "checkpoint of %r is %d bytes, over the limit of %d; not saved (lower "
                "PMAINT_MAX_SENSORS_PER_ASSET or raise PMAINT_MAX_MESSAGE_BYTES)",
                state.asset_id, len(raw), self.config.checkpoint_max_bytes,
            )  # fmt: skip
            return None
        return raw

    def restore(self, state: AssetState, raw: bytes) -> bool:
        """Resume an asset from :meth:`checkpoint` bytes. A checkpoint that is not one (a pickle,
        another version, a foreign class, garbage) is refused with a warning and the asset
        starts afresh; returns whether it was restored."""
        try:
            state.restore(raw)
        except ArtifactError as exc:
            log.warning("checkpoint of %r refused (%s); starting it afresh", state.asset_id, exc)
            return False
        return True
