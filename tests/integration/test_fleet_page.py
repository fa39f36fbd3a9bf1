"""The fleet page in a real headless Chromium against a running worker."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.gateway import Gateway, simulated
from streams.harness import Server, WorkerProcess, require, start_worker, wait_until, worker_env
from streams.settings import load_settings

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
)  # fmt: skip


@pytest.fixture
def worker(
    tansu: Server, topic_prefix: str, rul_artifact: Path, tmp_path: Path
) -> Iterator[WorkerProcess]:
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix, rul_model=str(rul_artifact),
        anomaly_warm_up="30", alert_stale_after_s="7200",
    )  # fmt: skip
    proc = start_worker(env, tmp_path)
    settings = load_settings(
        kafka_bootstrap=env["PMAINT_KAFKA_BOOTSTRAP"],
        topic_telemetry=env["PMAINT_TOPIC_TELEMETRY"],
        topic_dlq=env["PMAINT_TOPIC_DLQ"],
        topic_alerts=env["PMAINT_TOPIC_ALERTS"],
    )
    gateway = Gateway(settings, frame=20)
    gateway.send(simulated(assets=8, records=8 * 250, seed=3, fault_share=0.5))
    gateway.close()
    wait_until(lambda: proc.metric("pmaint_records_total", outcome="ok") >= 2000, 60, "worker")
    yield proc
    proc.kill()


def chromium(*args: str, profile: Path) -> str:
    cmd = [require("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


def test_fleet_page_shows_what_assets_reports(worker: WorkerProcess, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{worker.port}/fleet"
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile")
    expected = json.loads(worker.get("/assets")[1])["assets"]
    assert 'data-loaded="true"' in dom, dom[:2000]

    body = dom[dom.index('<tbody id="assets">') : dom.index("</tbody>")]
    rows = re.findall(r'<tr data-asset="([^"]+)"[^>]*>(.*?)</tr>', body, flags=re.S)
    assert sorted(asset for asset, _ in rows) == sorted(a["asset_id"] for a in expected)
    by_id = {a["asset_id"]: a for a in expected}
    for asset, row in rows:
        shown = set(re.findall(r'data-kind="([^"]+)"', row))
        assert shown == set(by_id[asset]["open_alerts"]), asset  # alerts open at that moment
        assert row.count("<svg") == 2  # score and RUL sparklines
    ranked = sorted(
        expected, key=lambda a: (a.get("rul_p10", float("inf")), -a["score"] / a["threshold"])
    )
    assert [asset for asset, _ in rows] == [a["asset_id"] for a in ranked]  # riskiest first
    total = sum(len(a["open_alerts"]) for a in expected)
    assert f'id="n-alerts">{total}<' in dom

    shot = tmp_path / "fleet.png"
    started = time.monotonic()
    chromium(f"--screenshot={shot}", "--window-size=1400,900", url, profile=tmp_path / "p2")
    assert shot.stat().st_size > 20_000, f"blank screenshot? ({time.monotonic() - started:.0f} s)"


def test_asset_endpoint_has_history(worker: WorkerProcess) -> None:
    status, body = worker.get("/assets/asset-001")
    detail = json.loads(body)
    assert status == 200
    assert len(detail["history"]) == 120  # the newest records
    assert detail["history"][-1]["score"] is not None
    assert all(p["rul_p10"] <= p["rul"] <= p["rul_p90"] for p in detail["history"])
    assert worker.get("/assets/nope")[0] == 404


def test_fleet_page_works_with_a_web_token(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    token = "fleet-page-token-42"
    env = worker_env(tansu.extra["bootstrap"], topic_prefix, web_token=token,
                     anomaly_warm_up="5")  # fmt: skip
    proc = start_worker(env, tmp_path)
    try:
        settings = load_settings(kafka_bootstrap=env["PMAINT_KAFKA_BOOTSTRAP"],
                                 topic_telemetry=env["PMAINT_TOPIC_TELEMETRY"])  # fmt: skip
        gateway = Gateway(settings, frame=20)
        gateway.send(simulated(assets=4, records=4 * 30, seed=3))
        gateway.close()
        wait_until(lambda: proc.metric("pmaint_records_total", outcome="ok") >= 120, 60, "worker")
        base = f"http://127.0.0.1:{proc.port}/fleet"
        denied = chromium("--dump-dom", base, profile=tmp_path / "p-denied")
        assert 'name="token"' in denied and 'data-loaded="true"' not in denied
        dom = chromium("--dump-dom", f"{base}?token={token}", profile=tmp_path / "p-token")
        assert 'data-loaded="true"' in dom, dom[:2000]
        body = dom[dom.index('<tbody id="assets">') : dom.index("</tbody>")]
        rows = re.findall(r'<tr data-asset="([^"]+)"', body)
        assert sorted(rows) == [f"asset-{i:03d}" for i in range(4)]
        assert token not in proc.log.read_text()
    finally:
        proc.kill()
