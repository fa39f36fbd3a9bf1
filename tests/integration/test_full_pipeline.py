"""The whole service on real servers: telemetry in; anomaly, RUL and alert outputs in InfluxDB
1.x and on the alert topic; model state resumed from checkpoints after a restart."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.gateway import Gateway, simulated
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import Settings, load_settings
from tests.deploy.conftest import Fleet
from tests.deploy.test_dashboards import assert_every_query_answers
from tests.topics import read_alerts

pytestmark = pytest.mark.integration

ASSETS, PER_ASSET = 6, 400


def influx_query(url: str, db: str, q: str) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"db": db, "q": q})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as r:
        body = json.loads(r.read())
    return list(body["results"][0].get("series", []))


@pytest.fixture
def env(tansu: Server, influxdb1: Server, topic_prefix: str, rul_artifact: Path) -> dict[str, str]:
    return worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        rul_model=str(rul_artifact), rul_required="true", anomaly_warm_up="50",
        checkpoint_every="20", alert_stale_after_s="7200",
    )  # fmt: skip


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    keys = ("kafka_bootstrap", "topic_telemetry", "topic_dlq", "topic_alerts")
    return load_settings(**{k: env[f"PMAINT_{k.upper()}"] for k in keys})


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = start_worker(env, tmp_path)
    yield proc
    proc.kill()


def produce(settings: Settings, records: int, end_ms: int) -> None:
    gateway = Gateway(settings, frame=50)
    gateway.send(simulated(assets=ASSETS, records=records, seed=5, fault_share=0.5, end_ms=end_ms))
    gateway.close()


def test_outputs_reach_influx_and_alert_topic_and_models_resume(
    worker: WorkerProcess, env: dict[str, str], settings: Settings, influxdb1: Server,
    tmp_path: Path,
) -> None:  # fmt: skip
    end_ms = int(time.time() * 1000) - 3_600_000
    produce(settings, ASSETS * PER_ASSET, end_ms)
    total = ASSETS * PER_ASSET
    wait_until(lambda: worker.metric("pmaint_records_total", outcome="ok") >= total, 90, "worker")
    assert worker.metric("pmaint_rul_forecasts_total") > 0

    url, db = influxdb1.extra["url"], env["PMAINT_INFLUX_DATABASE"]
    scores = influx_query(url, db, 'SELECT count("score") FROM "anomaly" GROUP BY "asset_id"')
    assert len(scores) == ASSETS
    for series in scores:  # every record after warm-up has its point, at its event time
        assert series["values"][0][1] == PER_ASSET - 50  # type: ignore[index]
    ruls = influx_query(url, db, 'SELECT "rul_p10", "rul", "rul_p90" FROM "rul"')
    rows = ruls[0]["values"]  # type: ignore[index]
    assert len(rows) > ASSETS * 100
    assert all(p10 <= p50 <= p90 for _, p10, p50, p90 in rows)  # type: ignore[misc]

    alerts = read_alerts(settings.bootstrap_servers()[0], settings.topic_alerts)
    assert alerts, "no alert events"
    kinds = {a.kind for a in alerts}
    assert "rul" in kinds  # every simulated asset wears to failure within 400 cycles
    for alert in alerts:
        assert alert.message.startswith(alert.asset_id)
    stored = influx_query(url, db, 'SELECT "alert_id" FROM "alert"')
    stored_ids = {row[1] for row in stored[0]["values"]}  # type: ignore[index]
    assert stored_ids == {a.alert_id for a in alerts}

    # every Grafana dashboard query answers from what the pipeline wrote
    busiest = max(alerts, key=lambda a: sum(b.asset_id == a.asset_id for b in alerts)).asset_id
    names = tuple(f"asset-{i:03d}" for i in range(ASSETS))
    fleet = Fleet(url, db, names, end_ms / 1000 - PER_ASSET * 60, end_ms / 1000)
    assert_every_query_answers(fleet, busiest)

    assets = json.loads(worker.get("/assets")[1])["assets"]
    assert {a["asset_id"] for a in assets} == {f"asset-{i:03d}" for i in range(ASSETS)}
    assert all("score" in a and "rul_p10" in a for a in assets)

    # restart: models come back from the changelog, not from scratch
    worker.kill()
    again = start_worker(env, tmp_path)
    try:
        produce(settings, ASSETS * 10, end_ms + 3_000_000)
        wait_until(lambda: again.metric("pmaint_records_total", outcome="ok") >= ASSETS * 10,
                   60, "restarted worker")  # fmt: skip
        resumed = json.loads(again.get("/assets")[1])["assets"]
        assert len(resumed) == ASSETS
        # Tansu 0.6 under-reports changelog end offsets, so faust's recovery may miss the
        # newest checkpoints of some assets; on Kafka every asset comes back.
        restored = [a for a in resumed if a["restored"]]
        assert len(restored) >= ASSETS // 2, resumed
        for a in restored:
            assert a["records"] > 50  # counting on from a checkpoint past the warm-up
            assert a["warming_up"] is False
    finally:
        again.kill()
