"""Replay C-MAPSS FD001 run-to-failure engines through the real worker: its anomaly points equal
the offline monitor's scores record for record, its anomaly alerts on ``pm.alerts`` are, alert
for alert, those ``pmaint evaluate anomaly`` replays offline (same detectors, policy by kind and
alert engine), most engines are in alarm in their last 30 cycles and none alarms in its first 50.

The first 12 training engines are used (128-287 cycles each), with the warm-up that
``pmaint evaluate anomaly --cmapss`` uses: the service's 300 records would cover most lives.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from models.anomaly_eval import read_cmapss as read_engines
from models.datafiles import REFERENCE_DATA, resolve
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig
from streams.app import pipeline_config
from streams.commands.evaluate_anomaly import CMAPSS_WARM_UP
from streams.core.alert_event import AlertEvent
from streams.core.anomaly_replay import replay_alerts
from streams.gateway import Gateway
from streams.gateway import read_cmapss as read_records
from streams.harness import Server, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.topics import read_alerts

pytestmark = pytest.mark.integration

FD001 = REFERENCE_DATA / "cmapss" / "train_FD001.txt"
ENGINES = 12
INTERVAL_S = 60.0


def influx_series(url: str, db: str, q: str) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=20) as r:
        body = json.loads(r.read())
    return list(body["results"][0].get("series", []))


@pytest.mark.timeout(180)
def test_worker_scores_cmapss_engines_like_the_offline_monitor(
    tansu: Server, influxdb1: Server, topic_prefix: str, tmp_path: Path
) -> None:
    if not resolve(FD001).exists():
        pytest.fail(f"C-MAPSS reference data missing at {FD001}")
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        anomaly_warm_up=str(CMAPSS_WARM_UP), alert_stale_after_s="86400",
    )  # fmt: skip
    worker = start_worker(env, tmp_path)
    try:
        start_ms = int(time.time() * 1000) - 30 * 86_400_000
        wanted = {f"unit-{n:03d}" for n in range(1, ENGINES + 1)}
        records = [r for r in read_records(FD001, INTERVAL_S, start_ms) if r["asset_id"] in wanted]
        keys = ("kafka_bootstrap", "topic_telemetry", "topic_dlq", "topic_alerts")
        settings = load_settings(**{k: env[f"PMAINT_{k.upper()}"] for k in keys})
        gateway = Gateway(settings, frame=50)
        assert gateway.send(records) == len(records)
        gateway.close()

        engines = read_engines(FD001, ENGINES)
        lives = {f"unit-{u:03d}": rows[-1][0] for u, rows in engines.items()}
        expected_points = sum(n - CMAPSS_WARM_UP for n in lives.values())
        url, db = influxdb1.extra["url"], env["PMAINT_INFLUX_DATABASE"]

        def all_points() -> bool:
            series = influx_series(url, db, 'SELECT count("score") FROM "anomaly"')
            return bool(series) and series[0]["values"][0][1] == expected_points  # type: ignore[index]

        wait_until(all_points, 120, "an anomaly point per record after the warm-up")
        offline_config = pipeline_config(load_settings(anomaly_warm_up=CMAPSS_WARM_UP))
        offline_alerts = []
        for asset in sorted(lives):
            rows = [(r["ts"] / 1000, r["sensors"], r["settings"])
                    for r in records if r["asset_id"] == asset]  # fmt: skip
            offline_alerts += [
                (e.asset_id, e.state, e.opened_at, e.ts, e.detector, e.severity)
                for e in replay_alerts(asset, rows, offline_config)
            ]
        events: list[AlertEvent] = []

        def all_alerts() -> bool:
            nonlocal events
            events = read_alerts(*settings.bootstrap_servers()[:1], settings.topic_alerts)
            return sum(e.kind == "anomaly" for e in events) >= len(offline_alerts)

        wait_until(all_alerts, 60, "the anomaly alerts the offline replay opens")
    finally:
        worker.kill()

    # Record for record, the worker's scores are the offline monitor's.
    stored = influx_series(
        url, db, 'SELECT "score", "threshold" FROM "anomaly" GROUP BY "asset_id"'
    )
    by_asset = {s["tags"]["asset_id"]: s["values"] for s in stored}  # type: ignore[index]
    config = MonitorConfig(warm_up=CMAPSS_WARM_UP)
    for unit, rows in engines.items():
        monitor = AssetMonitor(config)
        offline = [monitor.update(s, st, c * INTERVAL_S) for c, st, s in rows]
        online = by_asset[f"unit-{unit:03d}"]  # type: ignore[index]
        assert len(online) == len(rows) - CMAPSS_WARM_UP
        for (_, score, threshold), r in zip(online, offline[CMAPSS_WARM_UP:], strict=True):  # type: ignore[misc]
            assert score == pytest.approx(r.score, abs=1e-6)
            assert threshold == pytest.approx(r.threshold, abs=1e-6)

    # Alert for alert, the worker published what the offline evaluation replays.
    online_alerts = sorted(
        (e.asset_id, e.state, e.opened_at, e.ts, e.detector, e.severity)
        for e in events
        if e.kind == "anomaly"
    )
    assert online_alerts == sorted(offline_alerts)
    assert any(a[1] == "open" for a in online_alerts)

    # Most engines are in alarm in their last 30 cycles (an alert opened there, or earlier and
    # still open), none alarms in its first 50.
    def cycle(ts: float) -> int:
        return round((ts * 1000 - start_ms) / 1000 / INTERVAL_S)

    opened = {e.alert_id: e for e in events if e.kind == "anomaly" and e.state == "open"}
    resolved = {e.alert_id: e.ts for e in events if e.kind == "anomaly" and e.state == "resolved"}
    late = {
        e.asset_id
        for i, e in opened.items()
        if i not in resolved or cycle(resolved[i]) > lives[e.asset_id] - 30
    }
    early = {e.asset_id for e in opened.values() if cycle(e.opened_at) <= 50}
    assert len(late) >= ENGINES // 2, sorted(late)  # reached: see the issue notes
    assert not early, sorted(early)
    print(f"{len(late)}/{ENGINES} engines in alarm in their last 30 cycles, {len(early)} early")
