"""``create_app(settings)``: the faust app of a pmaint worker. No app exists at import time."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import torch
from faust.types import TP
from mode import Service

from models.errors import ArtifactError, PmaintError
from models.monitor_config import MonitorConfig
from models.policy import DetectorPolicy
from models.rul.serve import RulPredictor
from streams import checkpoint_store, inflate
from streams.agents import TelemetryAgent
from streams.core.alert_policy import AlertPolicy
from streams.core.fleet import AssetState, Fleet
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline, PipelineConfig
from streams.core.processor import TelemetryProcessor
from streams.core.schema import Limits
from streams.core.served_models import ServingModels
from streams.gc_pauses import HeapFreezer
from streams.kafka_clients import ssl_context
from streams.publishing import Sinks
from streams.redact import redact_text, redact_url
from streams.rul_models import ModelSource
from streams.rul_service import RulService
from streams.settings import Settings
from streams.sinks.influx import InfluxSink
from streams.sinks.kafka import AlertPublisher
from streams.web import register_pages
from streams.web_server import WorkerApp

log = logging.getLogger("pmaint.app")
CHECKPOINT_HEADROOM = 16_384  # request bytes besides the checkpoint: key, headers, framing
# The checkpoint table lives in RocksDB (rocksdict) under PMAINT_DATA_DIR, not in RAM: a worker's
# memory stays bounded by PMAINT_ASSET_BUDGET, and a restart with its data dir reads only the
# changelog written since. One DB per partition, each with these bounded buffers.
TABLE_STORE_OPTIONS = {
    "block_cache_size": 8 * 1024**2,
    "write_buffer_size": 8 * 1024**2,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024**2,
}


class SinkService(Service):
    """The worker's sinks as a service of the app: started and stopped once, with it."""

    def __init__(self, sinks: Sinks) -> None:
        super().__init__()
        self.sinks = sinks

    async def on_start(self) -> None:
        await self.sinks.start()

    async def on_stop(self) -> None:
        await self.sinks.stop()


@dataclass
class Runtime:
    """What one worker holds besides the faust app: its state, models, sinks and metrics."""

    settings: Settings
    partitions: int
    fleet: Fleet
    metrics: Metrics
    pipeline: ModelPipeline
    sinks: Sinks
    agent: TelemetryAgent
    assigned_once: bool = False


def broker_credentials(settings: Settings) -> Any:
    """faust credentials for the configured Kafka security protocol, or ``None``."""
    ctx = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=ctx,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return ctx


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_bytes=settings.max_message_bytes,
        max_records=settings.max_frame_records,
        max_sensors=settings.max_sensors,
        max_future_ms=round(settings.max_future_s * 1000),
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    monitor = MonitorConfig(
        warm_up=settings.anomaly_warm_up,
        quantile=settings.anomaly_quantile,
        learn_flagged=settings.anomaly_learn_flagged,
        debounce=settings.alert_debounce_records,
    )
    return PipelineConfig(
        monitor=monitor,
        detectors=(
            DetectorPolicy.load(settings.policy_file, monitor)
            if settings.policy_file is not None
            else None
        ),
        policy=AlertPolicy(
            debounce_records=settings.alert_debounce_records,
            debounce_s=settings.alert_debounce_s,
            cooldown_s=settings.alert_cooldown_s,
            update_every_s=settings.alert_update_every_s,
            rul_levels=(None, settings.alert_rul_warning, settings.alert_rul_critical),
            stale_after_s=settings.alert_stale_after_s,
            stale_critical_s=max(settings.alert_stale_after_s, 3600.0),
        ),
        anomaly_every=settings.anomaly_every,
        rul_every=settings.rul_every,
        checkpoint_every=settings.checkpoint_every,
        checkpoint_interval_s=settings.checkpoint_interval_s,
        checkpoint_max_bytes=settings.producer_max_request_bytes() - CHECKPOINT_HEADROOM,
    )


def load_models(settings: Settings) -> tuple[ServingModels, ModelSource | None]:
    """The RUL models to start with and, for a registry, the source to reload them from.

    Nothing configured: no models. A bad artifact, or a registry without a usable current model,
    is one clear error with ``rul_required``, else a warning (a registry keeps being watched).
    """
    if settings.rul_model is None:
        if settings.rul_required:
            raise ArtifactError("PMAINT_RUL_REQUIRED is set but PMAINT_RUL_MODEL is not")
        return ServingModels(), None
    source = ModelSource(settings.rul_model, settings.rul_device)
    try:
        models = source.load()
    except PmaintError as exc:
        if settings.rul_required:
            raise
        log.warning("running without RUL forecasts: %s", exc)
        return ServingModels(), source if source.registry else None
    if settings.rul_required and not models:
        raise ArtifactError(f"PMAINT_RUL_REQUIRED is set but {settings.rul_model} has no model")
    return models, source if source.registry else None


def create_app(
    settings: Settings,
    partitions: int | None = None,
    predictor: RulPredictor | None = None,
) -> tuple[faust.App, Runtime]:
    """Build the worker's faust app and its runtime.

    ``partitions`` is the telemetry topic's actual partition count (defaults to the setting);
    ``predictor`` overrides loading ``settings.rul_model``.
    """
    partitions = partitions or settings.partitions
    inflate.install(settings.max_inflated_batch_bytes)
    app = WorkerApp(
        settings.app_id,
        web_idle_timeout_s=settings.web_idle_timeout_s,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        broker=settings.kafka_url(),
        broker_credentials=broker_credentials(settings),
        datadir=str(settings.data_dir),
        store="memory://",
        # The checkpoint table's local RocksDB may be ahead of the broker's reported end offset
        # (Tansu 0.6 under-reports it after multi-record batches; a recreated topic): keep the
        # local checkpoints and start, instead of faust's ConsistencyError crash loop.
        recovery_consistency_check=False,
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_rebalance_timeout=settings.group_rebalance_timeout_s,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        consumer_max_fetch_size=8 * 1024**2,
        producer_max_request_size=settings.producer_max_request_bytes(),
        autodiscover=False,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, value_serializer="raw", key_serializer="raw", partitions=partitions)

    telemetry = raw_topic(settings.topic_telemetry)
    # Checkpoints are keyed by asset id and placed by the producer's partitioner: the same
    # murmur2 placement as the telemetry, so an asset's checkpoint lives in its partition.
    # Raw keys (not JSON-quoted), so the partitioner hashes exactly the asset id.
    changelog = app.topic(
        f"{settings.app_id}-checkpoints-changelog",
        key_type=str,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        compacting=True,
        deleting=False,
        internal=True,
    )
    checkpoints: Any = app.Table(
        "checkpoints",
        partitions=partitions,
        key_type=str,
        value_type=bytes,
        use_partitioner=True,
        changelog_topic=changelog,
        store=checkpoint_store.STORE_URL,
        options=dict(TABLE_STORE_OPTIONS),
    )
    checkpoints.key_serializer = checkpoints.value_serializer = "raw"  # writes, like the topic
    if predictor is not None:
        models, source = ServingModels.single(predictor), None
    else:
        models, source = load_models(settings)
    forecasting = bool(models) or source is not None
    if forecasting:
        torch.set_num_threads(rul_threads(settings))
    pipeline = ModelPipeline(pipeline_config(settings), models)
    sinks = Sinks(
        telemetry=telemetry,
        dlq=raw_topic(settings.topic_dlq),
        alerts=AlertPublisher(raw_topic(settings.topic_alerts)),
        checkpoints=cast(MutableMapping[str, bytes], checkpoints),
        influx=InfluxSink.from_settings(settings) if settings.influx_url else None,
        rul=RulService() if forecasting else None,
    )
    # started before the app's own services (the agent sends through them from its first
    # batch) and stopped after them (the agent's last outputs are flushed first)
    app.add_dependency(SinkService(sinks))
    if source is not None:

        async def reload_models() -> None:
            staged = await asyncio.get_running_loop().run_in_executor(None, source.check)
            if staged is not None:
                pipeline.stage(staged)  # the agent swaps it in before its next batch

        app.timer(settings.rul_reload_s, name="pmaint.rul_reload")(reload_models)

    def restore(state: AssetState) -> None:
        raw = agent.keeper.checkpoint_of(state.asset_id)
        if raw and not pipeline.restore(state, raw):
            metrics.checkpoints_refused.inc()

    metrics = Metrics()
    fleet = Fleet(
        restore=restore,
        max_sensors=settings.max_sensors_per_asset,
        budget=settings.asset_budget,
        next_look=pipeline.engine.next_look,
    )
    processor = TelemetryProcessor(limits_from(settings), partitions, fleet, metrics)

    async def rewind(partition: int, offset: int) -> None:
        tp = TP(settings.topic_telemetry, partition)
        await app.consumer.seek(tp, offset)
        # faust counted the skipped offsets as a gap to commit over; they are not done yet
        cast(Any, app.consumer)._gap.pop(tp, None)

    agent = TelemetryAgent(
        processor,
        pipeline,
        sinks,
        rewind,
        budget_s=settings.batch_budget_ms / 1000,
        fill_s=settings.batch_fill_ms / 1000,
        max_records=settings.batch_max_records,
    )
    runtime = Runtime(settings, partitions, fleet, metrics, pipeline, sinks, agent)
    app.agent(telemetry, name="pmaint.telemetry")(agent.__call__)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        owned = {tp.partition for tp in assigned if tp.topic == settings.topic_telemetry}
        fleet.drop_partitions(set(range(partitions)) - owned)
        agent.offsets.keep(owned)
        runtime.assigned_once = True

    @app.on_rebalance_complete.connect
    async def _recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        agent.keeper.scan_stored(checkpoints.keys())  # the partitions' silent assets are watched

    async def _idle_work() -> None:
        """While no batch is in, a part's budget at a time, the event loop free in between:
        save the assets idle with changes (so a worker without traffic saves them too), then
        read the stored assets to watch for silence."""
        worked = 1
        while worked and runtime.assigned_once and not app.rebalancing and not agent.busy:
            agent.keeper.scan_stored(checkpoints.data.take_recovered())
            worked = agent.save_idle(share=1.0) or agent.watch_stored()
            agent.hand_on_checkpoints()
            await asyncio.sleep(0)

    app.timer(interval=1.0)(_idle_work)
    if settings.gc_freeze_s > 0:
        freezer = HeapFreezer()

        async def _freeze_heap() -> None:  # full collections skip the long-lived heap
            freezer.tick()

        app.task(_freeze_heap)  # at start: the libraries' and the app's own objects
        app.timer(interval=settings.gc_freeze_s)(_freeze_heap)

    def lag() -> Iterable[tuple[str, int, int]]:
        consumer = app.consumer
        committed = cast(Any, consumer)._committed_offset  # faust's: next offset, as Kafka's
        for tp in consumer.assignment():
            if tp.topic == settings.topic_telemetry:
                end = consumer.highwater(tp) or 0
                # nothing read since the (re)start: the group's committed offset is where we are
                done = agent.offsets.expected.get(tp.partition, committed.get(tp) or 0)
                yield tp.topic, tp.partition, max(0, end - done)

    async def announce() -> None:
        log.info("%s", describe(settings))

    app.task(announce)

    metrics.watch_lag(lag)
    metrics.watch_models(pipeline.model_versions)
    register_pages(app, runtime)
    return app, runtime


def rul_threads(settings: Settings) -> int:
    """Threads for RUL forward passes on the CPU (``PMAINT_RUL_THREADS``; 0: one per core the
    worker may use, less the event loop's, which scores the next part meanwhile).

    >>> rul_threads(Settings(rul_threads=3))
    3
    >>> rul_threads(Settings()) == max(1, len(os.sched_getaffinity(0)) - 1)
    True
    """
    return settings.rul_threads or max(1, len(os.sched_getaffinity(0)) - 1)


def describe(settings: Settings) -> str:
    """The worker's start-up line: where it reads and writes (credentials masked).

    >>> line = describe(Settings(influx_url="http://pm:secret@influx:8086"))
    >>> "InfluxDB at http://pm:***@influx:8086" in line, "secret" in line
    (True, False)
    """
    influx = redact_url(settings.influx_url) if settings.influx_url else "off"
    guard = "bearer token required" if settings.web_token else "fleet data open"
    return (
        f"worker {settings.app_id}: Kafka at {redact_text(settings.kafka_bootstrap)} over "
        f"{settings.kafka_security_protocol}, InfluxDB at {influx}, "
        f"web on {settings.web_host}:{settings.web_port} ({guard})"
    )
