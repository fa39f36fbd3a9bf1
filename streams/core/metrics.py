"""Prometheus metrics of one worker, in a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LagSource = Callable[[], Iterable[tuple[str, int, int]]]
ModelSource = Callable[[], dict[str | None, str]]  # asset type -> RUL model version served


class _Sampled(Collector):
    """A gauge family read at scrape time from ``source``: (label values, value) pairs."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: list[str],
        source: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
    ) -> None:
        self._family = (name, documentation, labels)
        self._source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        name, documentation, labels = self._family
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for values, value in self._source():
            family.add_metric(list(values), value)
        yield family


class Metrics:
    """The worker's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "pmaint_records", "Telemetry records by outcome", ["outcome"], registry=r
        )
        self.dead_letters = Counter(
            "pmaint_dead_letters", "Dead letters by reason", ["reason"], registry=r
        )
        self.messages = Counter("pmaint_messages", "Kafka messages consumed", registry=r)
        self.rerouted = Counter(
            "pmaint_rerouted_records",
            "Records forwarded to their asset's partition",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pmaint_batch_processing_seconds",
            "Time to process one batch of messages, outputs acknowledged",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.stage_seconds = Counter(
            "pmaint_stage_seconds",
            "Seconds spent per stage of the batch loop (wait: for the next batch to fill; "
            "decode, models, publish: outputs until acknowledged, save: checkpoints)",
            ["stage"],
            registry=r,
        )
        self.event_lag = Histogram(
            "pmaint_event_lag_seconds",
            "Time from a message's Kafka timestamp to its processing",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.assets = Gauge("pmaint_assets", "Assets with state in this worker", registry=r)
        self.alerts = Counter(
            "pmaint_alerts", "Alert events published", ["kind", "severity", "state"], registry=r
        )
        self.anomalies = Counter("pmaint_anomalous_records", "Records over threshold", registry=r)
        self.forecasts = Counter("pmaint_rul_forecasts", "RUL forecasts made", registry=r)
        self.points = Counter(
            "pmaint_points_written", "Points acknowledged by InfluxDB", registry=r
        )
        self.checkpoints = Counter("pmaint_checkpoints", "Asset checkpoints written", registry=r)
        self.checkpoints_too_large = Counter(
            "pmaint_checkpoints_too_large", "Checkpoints over the request limit, not written",
            registry=r,
        )  # fmt: skip
        self.checkpoints_refused = Counter(
            "pmaint_checkpoints_refused", "Checkpoints read back that were not ones (assets "
            "started afresh)", registry=r,
        )  # fmt: skip
        self.evictions = Counter(
            "pmaint_evictions", "Assets dropped from memory over PMAINT_ASSET_BUDGET", registry=r
        )
        for outcome in ("ok", "dead_letter"):
            self.records.labels(outcome)

    def watch_lag(self, source: LagSource) -> None:
        """Report consumer lag from ``source`` (topic, partition, lag) at each scrape."""
        self.registry.register(
            _Sampled(
                "pmaint_consumer_lag",
                "Messages behind the partition end",
                ["topic", "partition"],
                lambda: (((t, str(p)), lag) for t, p, lag in source()),
            )
        )

    def watch_models(self, source: ModelSource) -> None:
        """Report the RUL model version served per asset type (``""``: assets without a type),
        read from ``source`` at each scrape."""
        self.registry.register(
            _Sampled(
                "pmaint_rul_model",
                "RUL model version served, per asset type",
                ["asset_type", "version"],
                lambda: (((t or "", v), 1.0) for t, v in source().items()),
            )
        )
