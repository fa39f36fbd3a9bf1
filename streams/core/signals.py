"""What the models tell the alert engine about a record: small typed signals.

The pipeline turns each scored record into signals (:class:`AnomalySignal`, :class:`RulSignal`,
:class:`DriftSignal`, :class:`ReadingSignal`); the alert engine (:mod:`streams.core.alerts`)
turns them into alert events and the points writer (:mod:`streams.core.points`) into InfluxDB
points.
Times are event times in epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TopSensors = Sequence[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class AnomalySignal:
    """An anomaly score for one record; ``ts`` is its event time in epoch seconds."""

    asset_id: str
    ts: float
    score: float
    threshold: float
    top_sensors: TopSensors = ()
    model_version: str = ""
    # The monitor's policy by kind (models.detectors.alarm), when it decides: whether the asset
    # is in alarm, which kind started it, since when, and its magnitude (severity).
    alarm: bool | None = None
    detector: str = ""
    since: float | None = None
    magnitude: float = 0.0


@dataclass(frozen=True, slots=True)
class RulSignal:
    """A remaining-useful-life forecast in ``unit`` with its P10/P90 interval; ``in_domain``
    false: the asset looks unlike the model's training data (``data_source``)."""

    asset_id: str
    ts: float
    rul: float
    rul_p10: float
    rul_p90: float
    top_sensors: TopSensors = ()
    model_version: str = ""
    in_domain: bool = True
    unit: str = "cycles"
    data_source: str = ""


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """A drift detector fired on ``sensors``; ``direction`` is ``up``, ``down`` or empty."""

    asset_id: str
    ts: float
    sensors: Sequence[str]
    direction: str = ""
    model_version: str = ""


@dataclass(frozen=True, slots=True)
class ReadingSignal:
    """The raw sensor values of one record, for data-quality checks (stuck sensors)."""

    asset_id: str
    ts: float
    sensors: Mapping[str, float]


Signal = AnomalySignal | RulSignal | DriftSignal | ReadingSignal
