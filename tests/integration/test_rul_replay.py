"""Replay C-MAPSS test engines through the real worker: its last ``rul`` point per engine in
InfluxDB 1.x equals what ``pmaint evaluate rul`` (``models.rul.serve.evaluate``) computes for
the same engine's last window with the same model, including whether it is in domain and
the RUL unit.

The first five engines of ``test_FD001`` are used; they have 31, 49, 126, 106 and 98 cycles, so
each fills the 30-cycle window and the worker forecasts it (the offline evaluator would pad a
shorter engine, the worker waits for a full window).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.datafiles import REFERENCE_DATA, resolve
from models.rul.artifact import save_artifact
from models.rul.data import read_cmapss, read_cmapss_test
from models.rul.serve import RulPredictor, evaluate
from models.rul.train import TrainConfig, train_rul
from streams.gateway import Gateway
from streams.gateway import read_cmapss as read_records
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings

pytestmark = pytest.mark.integration

CMAPSS = REFERENCE_DATA / "cmapss"
ENGINES = 5
INTERVAL_S = 60.0


@pytest.fixture(scope="module")
def fd001_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained on FD001 (a few seconds)."""
    if not resolve(CMAPSS / "train_FD001.txt").exists():
        pytest.fail(f"C-MAPSS reference data missing at {CMAPSS}")
    config = TrainConfig(
        epochs=1, hidden=16, layers=1, batch_size=256, folds=2, device="cpu", seed=0
    )
    result = train_rul(read_cmapss(CMAPSS / "train_FD001.txt"), config, data_source="FD001")
    out = tmp_path_factory.mktemp("rul-fd001")
    save_artifact(out, result.model, result.metadata)
    return out


def influx_query(url: str, db: str, q: str) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as r:
        body = json.loads(r.read())
    return list(body["results"][0].get("series", []))


@pytest.fixture
def worker(
    tansu: Server, influxdb1: Server, topic_prefix: str, fd001_artifact: Path, tmp_path: Path
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        rul_model=str(fd001_artifact), rul_required="true", rul_every="1",
    )  # fmt: skip
    proc = start_worker(env, tmp_path)
    yield proc, env
    proc.kill()


def test_worker_forecasts_equal_the_offline_evaluator(
    worker: tuple[WorkerProcess, dict[str, str]], influxdb1: Server, fd001_artifact: Path
) -> None:
    proc, env = worker
    start_ms = int(time.time() * 1000) - 86_400_000
    wanted = {f"unit-{n:03d}" for n in range(1, ENGINES + 1)}
    records = [
        r
        for r in read_records(CMAPSS / "test_FD001.txt", INTERVAL_S, start_ms)
        if r["asset_id"] in wanted
    ]
    cycles = {a: max(int(r["cycle"]) for r in records if r["asset_id"] == a) for a in wanted}
    assert min(cycles.values()) >= 30  # every engine fills the window

    keys = ("kafka_bootstrap", "topic_telemetry", "topic_dlq", "topic_alerts")
    settings = load_settings(**{k: env[f"PMAINT_{k.upper()}"] for k in keys})
    gateway = Gateway(settings, frame=25)
    gateway.send(records)
    gateway.close()

    url, db = influxdb1.extra["url"], env["PMAINT_INFLUX_DATABASE"]
    query = 'SELECT count("rul") FROM "rul" GROUP BY "asset_id"'

    def all_points() -> bool:  # one forecast per record from the 30th on
        got = {s["tags"]["asset_id"]: s["values"][0][1] for s in influx_query(url, db, query)}  # type: ignore[index]
        return got == {a: n - 29 for a, n in cycles.items()}

    wait_until(all_points, 60, "rul points in InfluxDB")
    assert proc.metric("pmaint_rul_forecasts_total") == sum(n - 29 for n in cycles.values())

    test = read_cmapss_test(CMAPSS / "test_FD001.txt", CMAPSS / "RUL_FD001.txt")[:ENGINES]
    predictor = RulPredictor.load(fd001_artifact, "cpu")
    expected = evaluate(predictor, test)
    last = influx_query(
        url, db,
        'SELECT "rul", "rul_p10", "rul_p90", "model_version", "in_domain", "unit" FROM "rul" '
        'GROUP BY "asset_id" ORDER BY time DESC LIMIT 1',
    )  # fmt: skip
    rows = {s["tags"]["asset_id"]: s["values"][0] for s in last}  # type: ignore[index]
    assert set(rows) == wanted
    for i, run in enumerate(test):
        asset = f"unit-{int(run.run_id):03d}"
        ts, rul, p10, p90, version, in_domain, unit = rows[asset]
        assert ts == start_ms + round(cycles[asset] * INTERVAL_S * 1000)  # event time
        assert version == predictor.version
        assert rul == pytest.approx(float(expected.prediction.p50[i]), abs=1e-3)
        assert p10 == pytest.approx(float(expected.prediction.p10[i]), abs=1e-3)
        assert p90 == pytest.approx(float(expected.prediction.p90[i]), abs=1e-3)
        assert (in_domain, unit) == (bool(expected.prediction.in_domain[i]), "cycles")
