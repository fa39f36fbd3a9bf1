"""``create_app(settings)``: the faust app of a pmaint worker. No app exists at import time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from streams.agents import TelemetryAgent
from streams.fleet import Fleet
from streams.kafka_clients import ssl_context
from streams.metrics import Metrics
from streams.processor import TelemetryProcessor
from streams.schema import Limits
from streams.settings import Settings
from streams.web import register_pages


@dataclass
class Runtime:
    """What one worker holds besides the faust app: its state and metrics."""

    settings: Settings
    partitions: int
    fleet: Fleet
    metrics: Metrics
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


def create_app(settings: Settings, partitions: int | None = None) -> tuple[faust.App, Runtime]:
    """Build the worker's faust app and its runtime.

    ``partitions`` is the telemetry topic's actual partition count (defaults to the setting).
    """
    partitions = partitions or settings.partitions
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url(),
        broker_credentials=broker_credentials(settings),
        datadir=str(settings.data_dir),
        store="memory://",
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
        autodiscover=False,
    )
    telemetry = app.topic(
        settings.topic_telemetry, value_serializer="raw", key_serializer="raw",
        partitions=partitions,
    )  # fmt: skip
    dlq = app.topic(
        settings.topic_dlq, value_serializer="raw", key_serializer="raw", partitions=partitions
    )
    metrics = Metrics()
    fleet = Fleet()
    processor = TelemetryProcessor(limits_from(settings), partitions, fleet, metrics)
    agent = TelemetryAgent(processor, telemetry, dlq)
    runtime = Runtime(settings, partitions, fleet, metrics, agent)
    app.agent(telemetry, name="pmaint.telemetry")(agent.__call__)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        owned = {tp.partition for tp in assigned if tp.topic == settings.topic_telemetry}
        fleet.drop_partitions(set(range(partitions)) - owned)
        runtime.assigned_once = True

    def lag() -> Iterable[tuple[str, int, int]]:
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic == settings.topic_telemetry:
                end = consumer.highwater(tp) or 0
                done = agent.positions.get(tp.partition, 0)
                yield tp.topic, tp.partition, max(0, end - done)

    metrics.watch_lag(lag)
    register_pages(app, runtime)
    return app, runtime
