"""Replay one asset's records through the worker's own model pipeline; its anomaly alerts.

``pmaint evaluate anomaly`` judges exactly what a worker would publish: each labelled series or
file is one fresh asset, fed record by record through :class:`streams.core.pipeline.ModelPipeline`
(the monitor with its detectors and policy by kind, then the :class:`AlertEngine` on the asset's
alert state), and the ``anomaly`` alert events it emits are collected. No IO and no RUL model
are involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from streams.core.alerts import AlertEvent
from streams.core.fleet import AssetState
from streams.core.pipeline import ModelPipeline, Outputs, PipelineConfig
from streams.core.schema import Telemetry

Row = tuple[float, Mapping[str, float], Mapping[str, float] | None]


def replay_alerts(
    asset_id: str, rows: Iterable[Row], config: PipelineConfig, asset_type: str | None = None
) -> list[AlertEvent]:
    """The ``anomaly`` alert events a worker emits for ``rows`` ``(epoch s, sensors, settings)``.

    >>> rows = [(60.0 * i, {"value": 1.0 + i % 3}, None) for i in range(400)]
    >>> rows += [(60.0 * i, {"value": 50.0}, None) for i in range(400, 403)]
    >>> [(e.state, e.detector) for e in replay_alerts("a1", rows, PipelineConfig())]
    [('open', 'shift')]
    """
    pipeline = ModelPipeline(config)
    state: AssetState | None = None
    events: list[AlertEvent] = []
    for ts, sensors, settings in rows:
        record = Telemetry(
            asset_id, round(ts * 1000), dict(sensors), None, dict(settings) if settings else None
        )
        if state is None:
            state = AssetState(asset_id, 0, record.ts_ms)
        state.observe(record)
        out = Outputs()
        pipeline.observe(state, record, out)
        events += [e for e in out.alerts if e.kind == "anomaly"]
    return events


def opened(events: Sequence[AlertEvent]) -> list[float]:
    """Opening times of the alerts in ``events``.

    >>> opened([])
    []
    """
    return [e.opened_at for e in events if e.state == "open"]
