"""A worker whose InfluxDB 1.x freezes for 30 s mid-stream loses nothing and duplicates nothing.

The InfluxDB server is stopped with SIGSTOP (it keeps its socket, so requests hang rather than
fail fast: the harder case) while simulator traffic is still arriving. The worker must stall
(its batches wait for InfluxDB before their offsets are acked), hold its memory, and catch up
once InfluxDB resumes, with every anomaly point written exactly once.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.gateway import Gateway, simulated
from streams.harness import (
    Server,
    WorkerProcess,
    start_influxdb1,
    start_worker,
    wait_until,
    worker_env,
)
from streams.settings import load_settings

pytestmark = pytest.mark.integration

ASSETS, PER_ASSET, WARM_UP = 4, 300, 20
TOTAL = ASSETS * PER_ASSET
RATE = 100.0  # records/s: production spans ~12 s, so the pause falls in mid-stream
PAUSE_S = 30.0
# Headroom for RSS growth across the outage. What can pile up while InfluxDB is frozen is
# bounded by design: the rest of this stream (~1,000 records, ~1 MB of JSON frames in faust's
# stream buffer), one batch's points held by the sink (max_buffer lines, each ~200 B), and a
# retried gzip request body. 64 MiB is an order of magnitude above that and far below what an
# unbounded retry queue or a leak per retry would add over 30 s.
RSS_HEADROOM_MB = 64.0


@pytest.fixture
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_influxdb1(tmp_path_factory.mktemp("influx-outage"))
    yield server
    server.resume()  # never leave a stopped process behind
    server.stop()


@pytest.fixture
def worker(
    tansu: Server, influx: Server, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influx.extra["url"], influx_api="v1", influx_database=topic_prefix,
        anomaly_warm_up=str(WARM_UP), alert_stale_after_s="7200",
    )  # fmt: skip
    proc = start_worker(env, tmp_path)
    yield proc, env
    proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def anomaly_counts(url: str, db: str) -> dict[str, tuple[int, int]]:
    """Per asset: (stored anomaly points, distinct timestamps among them)."""
    q = 'SELECT "score" FROM "anomaly" GROUP BY "asset_id"'
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as r:
        series = json.loads(r.read())["results"][0].get("series", [])
    return {
        s["tags"]["asset_id"]: (len(s["values"]), len({row[0] for row in s["values"]}))
        for s in series
    }


def test_influx_outage_stalls_then_resumes_exactly_once(
    worker: tuple[WorkerProcess, dict[str, str]], influx: Server
) -> None:
    proc, env = worker
    keys = ("kafka_bootstrap", "topic_telemetry", "topic_dlq", "topic_alerts")
    settings = load_settings(**{k: env[f"PMAINT_{k.upper()}"] for k in keys})
    end_ms = int(time.time() * 1000) - 3_600_000
    records = list(simulated(ASSETS, TOTAL, seed=3, fault_share=0.5, end_ms=end_ms))
    errors: list[BaseException] = []

    def produce() -> None:
        gateway = Gateway(settings, frame=10, rate=RATE)
        try:
            gateway.send(records)
        except BaseException as exc:  # surfaced by the test thread
            errors.append(exc)
        finally:
            gateway.close()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    def ok() -> float:
        return proc.metric("pmaint_records_total", outcome="ok")

    def points() -> float:
        return proc.metric("pmaint_points_written_total")

    # mid-stream: the worker is consuming and writing, and most of the stream is still to come
    wait_until(lambda: points() > 0, 30, "first points in InfluxDB")
    rss = [rss_mb(proc.proc.pid)]
    before = ok()
    assert before < TOTAL / 2, "the pause must fall in mid-stream"
    influx.pause()
    paused_at = time.monotonic()
    try:
        time.sleep(3)  # a batch in flight when InfluxDB stopped may still finish
        stalled_ok, stalled_points = ok(), points()
        while time.monotonic() - paused_at < PAUSE_S:
            rss.append(rss_mb(proc.proc.pid))
            time.sleep(1)
        producer.join(5)
        assert not producer.is_alive() and not errors, errors
        # consumption stopped although the whole stream is waiting in the topic
        assert ok() == stalled_ok < TOTAL
        assert points() == stalled_points
    finally:
        influx.resume()

    def caught_up() -> bool:
        rss.append(rss_mb(proc.proc.pid))
        return ok() >= TOTAL

    wait_until(caught_up, 30, "worker catching up after the outage")
    assert ok() == TOTAL
    expected = ASSETS * (PER_ASSET - WARM_UP)
    assert points() >= expected > stalled_points  # alert and drift points come on top

    counts = anomaly_counts(influx.extra["url"], env["PMAINT_INFLUX_DATABASE"])
    assert counts == {f"asset-{i:03d}": (PER_ASSET - WARM_UP,) * 2 for i in range(ASSETS)}
    assert max(rss) - rss[0] < RSS_HEADROOM_MB, f"RSS {rss[0]:.0f} → {max(rss):.0f} MB"
    print(f"RSS before/peak: {rss[0]:.0f}/{max(rss):.0f} MB; stalled at {stalled_ok:.0f}/{TOTAL}")
