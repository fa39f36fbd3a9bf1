"""InfluxDB points for pmaint's outputs: measurements ``anomaly``, ``rul``, ``drift``, ``alert``.

Every point carries the tags ``asset_id``, ``site``, ``line``, ``model_version`` (empty ones are
left out) and the record's event time, so a replay overwrites instead of duplicating. ``alert``
points are also tagged ``kind``, ``severity`` and ``state`` (two kinds of alert on one asset at
the same instant must not overwrite each other).
"""

from __future__ import annotations

from streams.core.alert_event import SEVERITIES, AlertEvent
from streams.core.line_protocol import FieldValue, Point
from streams.core.signals import AnomalySignal, DriftSignal, RulSignal


def point_tags(
    asset_id: str, site: str | None, line: str | None, version: str | None
) -> dict[str, str]:
    """A point's tags (the empty ones left out)."""
    tags = {"asset_id": asset_id, "site": site, "line": line, "model_version": version}
    return {k: v for k, v in tags.items() if v}


def _ms(ts: float) -> int:
    return round(ts * 1000)


def anomaly_point(
    s: AnomalySignal,
    site: str | None = None,
    line: str | None = None,
    *,
    tags: dict[str, str] | None = None,
) -> Point:
    """Score, threshold, and the top sensors' contributions as ``c_<sensor>`` fields; ``tags``:
    the point's tags when already made (:func:`point_tags` of the signal's asset, ``site``,
    ``line`` and version).

    >>> from streams.core.line_protocol import encode
    >>> encode(anomaly_point(AnomalySignal("a1", 1.5, 0.9, 0.6, [("s4", 0.5)]), site="A"))
    b'anomaly,asset_id=a1,site=A score=0.9,threshold=0.6,is_anomaly=true,c_s4=0.5 1500'
    """
    fields: dict[str, FieldValue] = {
        "score": float(s.score),
        "threshold": float(s.threshold),
        "is_anomaly": s.score > s.threshold,
    }
    for name, c in s.top_sensors:
        fields[f"c_{name}"] = float(c)
    if tags is None:
        tags = point_tags(s.asset_id, site, line, s.model_version)
    return Point("anomaly", tags, fields, _ms(s.ts))


def rul_point(s: RulSignal, site: str | None = None, line: str | None = None) -> Point:
    """RUL with its P10/P90 interval, its ``unit`` (cycles or hours) and ``in_domain``.

    >>> from streams.core.line_protocol import encode
    >>> encode(rul_point(RulSignal("a1", 1.5, 40.0, 30.0, 55.0, in_domain=False, unit="hours")))
    b'rul,asset_id=a1 rul=40.0,rul_p10=30.0,rul_p90=55.0,in_domain=false,unit="hours" 1500'
    """
    fields: dict[str, FieldValue] = {
        "rul": float(s.rul),
        "rul_p10": float(s.rul_p10),
        "rul_p90": float(s.rul_p90),
        "in_domain": s.in_domain,
        "unit": s.unit,
    }
    return Point("rul", point_tags(s.asset_id, site, line, s.model_version), fields, _ms(s.ts))


def drift_point(s: DriftSignal, site: str | None = None, line: str | None = None) -> Point:
    """One point per drift event: how many and which sensors, and the direction."""
    fields: dict[str, FieldValue] = {
        "n_sensors": len(s.sensors),
        "sensors": ",".join(s.sensors),
        "direction": s.direction,
    }
    return Point("drift", point_tags(s.asset_id, site, line, s.model_version), fields, _ms(s.ts))


def alert_point(e: AlertEvent, site: str | None = None, line: str | None = None) -> Point:
    """An alert event; numeric ``level`` (0 info, 1 warning, 2 critical) for graphs."""
    tags = point_tags(e.asset_id, site, line, e.model_version)
    tags |= {"kind": e.kind, "severity": e.severity, "state": e.state}
    fields: dict[str, FieldValue] = {
        "alert_id": e.alert_id,
        "level": SEVERITIES.index(e.severity),
        "opened_at_ms": _ms(e.opened_at),
        "message": e.message,
    }
    for name in ("score", "threshold", "rul", "rul_p10", "rul_p90"):
        value = getattr(e, name)
        if value is not None:
            fields[name] = float(value)
    return Point("alert", tags, fields, _ms(e.ts))
