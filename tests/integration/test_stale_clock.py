"""Issue 13, D7: one gateway's clock running ahead must not make the rest of the fleet stale.

A live fleet reports every 10 s of event time; one asset falls silent (it must get its
``data_quality`` alert); then a new asset reports once with a clock 20 min ahead — alone in
its batch, so a worker judging staleness against the newest event time would declare every
live asset silent for 20 min."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from streams.gateway import Gateway
from streams.harness import Server, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.topics import read_alerts

pytestmark = pytest.mark.integration

LIVE = [f"live-{i}" for i in range(10)]


def test_a_clock_ahead_raises_no_alerts_about_other_assets(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    env = worker_env(tansu.extra["bootstrap"], topic_prefix, alert_stale_after_s="60")
    worker = start_worker(env, tmp_path)
    settings = load_settings(kafka_bootstrap=tansu.extra["bootstrap"],
                             topic_telemetry=env["PMAINT_TOPIC_TELEMETRY"])  # fmt: skip
    gateway = Gateway(settings)
    rng = random.Random(7)
    base = int(time.time() * 1000) - 3_600_000

    def rounds(first: int, last: int) -> None:
        for r in range(first, last):
            assets = LIVE + (["quiet"] if r < 5 else [])
            gateway.send(
                {"asset_id": a, "ts": base + r * 10_000, "sensors": {"s1": rng.random()}}
                for a in assets
            )
            time.sleep(0.25)

    try:
        rounds(0, 25)  # "quiet" stops after 40 s of event time; the clock reaches 240 s
        time.sleep(1.5)  # the worker's next batch will tick the clock
        ahead = base + 240_000 + 20 * 60_000
        gateway.send([{"asset_id": "gw-ahead", "ts": ahead, "sensors": {"s1": 1.0}}])
        time.sleep(1.5)
        rounds(25, 35)
        done = gateway.sent
        wait_until(lambda: worker.metric("pmaint_records_total", outcome="ok") >= done, 60, "ok")
        time.sleep(1.0)
    finally:
        gateway.close()
        worker.kill()
    stale = {
        e.asset_id
        for e in read_alerts(tansu.extra["bootstrap"], env["PMAINT_TOPIC_ALERTS"])
        if e.kind == "data_quality" and e.state == "open"
    }
    assert stale == {"quiet"}
