"""Fixtures for the deployment tests: an InfluxDB 1.x holding a small fleet's outputs."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.core.alert_event import AlertEvent, Kind, Severity, State, alert_id, message
from streams.core.line_protocol import Point
from streams.core.points import alert_point, anomaly_point, drift_point, rul_point
from streams.core.signals import AnomalySignal, DriftSignal, RulSignal
from streams.harness import Server
from streams.sinks.influx import InfluxSink, InfluxTarget

DATABASE = "pmaint"
MODEL_VERSION = "lstm-2026.11"
STEP_S = 60.0
STEPS = 360  # six hours of one record a minute per asset


@dataclass(frozen=True)
class Fleet:
    """What ``populated_influx`` wrote: where, which assets, and the time span of the points."""

    url: str
    database: str
    assets: tuple[str, ...]
    start_s: float
    end_s: float

    def query(self, q: str) -> dict[str, Any]:
        """Run one InfluxQL statement; the JSON of its single result."""
        params = urllib.parse.urlencode({"db": self.database, "q": q, "epoch": "ms"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=10) as r:
            body: dict[str, Any] = json.load(r)
        return body["results"][0]  # type: ignore[no-any-return]


# (asset, site, line, failing?, wear rate per step): pump-07 degrades towards failure with an
# anomaly burst and alerts, fan-02 drifts, press-11 stays healthy.
ASSETS = (
    ("pump-07", "plant-a", "l1", True, 0.35),
    ("fan-02", "plant-a", "l2", False, 0.12),
    ("press-11", "plant-b", "l1", False, 0.05),
)


_EVIDENCE = ("score", "threshold", "rul", "rul_p10", "rul_p90")


# drift events (record index, sensors, direction) per asset
DRIFTS = {
    "fan-02": ((120, ["s7"], "up"), (200, ["s7", "s9"], "up")),
    "pump-07": ((250, ["s11"], "up"),),
}


def _alert(
    asset: str, kind: Kind, change: tuple[State, Severity], *, opened: float, ts: float,
    evidence: dict[str, Any],
) -> AlertEvent:  # fmt: skip
    state, severity = change
    return AlertEvent(
        alert_id=alert_id(asset, kind, opened),
        asset_id=asset,
        kind=kind,
        severity=severity,
        state=state,
        opened_at=opened,
        ts=ts,
        message=message(asset, kind, state, severity, evidence),
        model_version=MODEL_VERSION,
        **{k: v for k, v in evidence.items() if k in _EVIDENCE},
        top_sensors=tuple(evidence.get("top_sensors", ())),
    )


def fleet_points(end_s: float) -> list[Point]:
    """Realistic outputs of the worker for three assets over six hours ending at ``end_s``."""
    points: list[Point] = []
    start = end_s - STEPS * STEP_S
    for n, (asset, site, line, failing, wear) in enumerate(ASSETS):
        threshold = 0.55
        for i in range(STEPS):
            ts = start + i * STEP_S
            wave = 0.05 * math.sin(i / 9 + n)
            burst = failing and 240 <= i < 300
            score = 0.35 + wave + 0.002 * i * wear + (0.4 if burst else 0.0)
            threshold = 0.98 * threshold + 0.02 * max(0.5, score * 1.2)  # adaptive threshold
            top = [("s11", 0.45 if burst else 0.2), ("s7", 0.3 + wave), ("s2", 0.12)]
            sig = AnomalySignal(asset, ts, score, threshold, top, MODEL_VERSION)
            points.append(anomaly_point(sig, site, line))
            if i % 5 == 0:  # the RUL forecaster runs every fifth record
                rul = max(1.0, 180 - wear * i * (1.6 if failing else 1.0) - 10 * n)
                spread = 8 + 0.1 * rul
                rsig = RulSignal(asset, ts, rul, max(0.0, rul - spread), rul + spread, (),
                                 MODEL_VERSION)  # fmt: skip
                points.append(rul_point(rsig, site, line))
        for i, sensors, direction in DRIFTS.get(asset, ()):
            at = start + i * STEP_S
            dsig = DriftSignal(asset, at, sensors, direction, MODEL_VERSION)
            points.append(drift_point(dsig, site, line))
            evidence = {"top_sensors": [(s, 1.0) for s in sensors], "direction": direction}
            ev = _alert(asset, "drift", ("open", "info"), opened=at, ts=at, evidence=evidence)
            points.append(alert_point(ev, site, line))
        if asset == "fan-02":  # wear brings its RUL P10 under the warning level
            opened = start + 300 * STEP_S
            evidence = {"rul": 60.0, "rul_p10": 42.0, "rul_p90": 75.0}
            ev = _alert(asset, "rul", ("open", "warning"), opened=opened, ts=opened,
                        evidence=evidence)  # fmt: skip
            points.append(alert_point(ev, site, line))
        if failing:
            opened = start + 245 * STEP_S
            evidence = {"score": 0.9, "threshold": 0.6, "ratio": 1.5, "top_sensors": [("s11", 0.4)]}
            changes: list[tuple[State, Severity]] = [
                ("open", "warning"), ("update", "critical"), ("resolved", "critical")
            ]  # fmt: skip
            for change, at in zip(changes, (245, 260, 305), strict=True):
                ev = _alert(asset, "anomaly", change, opened=opened, ts=start + at * STEP_S,
                            evidence=evidence)  # fmt: skip
                points.append(alert_point(ev, site, line))
            opened = start + 330 * STEP_S  # a RUL alert that is still open
            evidence = {"rul": 18.0, "rul_p10": 9.0, "rul_p90": 30.0}
            for change, at in ((("open", "critical"), 330), (("update", "critical"), 350)):
                ev = _alert(asset, "rul", change, opened=opened, ts=start + at * STEP_S,
                            evidence=evidence)  # fmt: skip
                points.append(alert_point(ev, site, line))
    return points


async def _write(url: str, points: list[Point], dead_letters: Path) -> None:
    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{DATABASE}"'}).encode()
    with urllib.request.urlopen(f"{url}/query", data=body, timeout=10) as r:
        assert r.status == 200, r.read()
    target = InfluxTarget("v1", url, {"db": DATABASE}, version="1.6.7")
    async with InfluxSink(
        target,
        batch_size=2000,
        linger_ms=10,
        create_database=False,
        dead_letter_dir=dead_letters,
    ) as sink:
        await sink.write(points)
    if sink.stats.dead_lettered:
        raise RuntimeError(f"InfluxDB refused {sink.stats.dead_lettered} points")


@pytest.fixture(scope="session")
def populated_influx(influxdb1: Server, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """InfluxDB 1.x with the four measurements pmaint writes (anomaly, rul, drift, alert) for
    three assets over the last six hours, written through :class:`InfluxSink`."""
    end = float(int(time.time()) - 120)
    dead_letters = tmp_path_factory.mktemp("influx-dead-letters")
    asyncio.run(_write(influxdb1.extra["url"], fleet_points(end), dead_letters))
    return Fleet(
        influxdb1.extra["url"], DATABASE, tuple(a[0] for a in ASSETS), end - STEPS * STEP_S, end
    )
