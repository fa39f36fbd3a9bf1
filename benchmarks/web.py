"""``/health`` latency of a worker holding many assets while clients pull ``/assets`` hard.

One ``pmaint worker`` (no RUL model) on a local Tansu is fed ``ASSETS`` assets, ``RECORDS``
records each. Baseline: the largest of ``PROBES`` sequential ``/health`` latencies with the web
server idle. Figure: the largest of ``PROBES`` ``/health`` latencies (one every 50 ms) while
``CLIENTS`` threads request ``/assets?history=1`` back to back (the fleet page's request; each
client's largest response size is reported as ``assets_bytes``).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.common import emit, fresh
from streams.embedded import EmbeddedBroker
from streams.gateway import Gateway
from streams.harness import WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings

ASSETS = 20_000
RECORDS = 3
CLIENTS = 6
PROBES = 40


def fetch(port: int, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
        size = len(r.read())
    return (time.perf_counter() - started) * 1000, size


def load(bootstrap: str, topic: str) -> None:
    gateway = Gateway(load_settings(kafka_bootstrap=bootstrap, topic_telemetry=topic), frame=500)
    now_ms = int(time.time() * 1000)
    gateway.send(
        {"asset_id": f"b-{i:06d}", "ts": now_ms - 60_000 + k * 1000,
         "sensors": {"s1": 1.0 + k * (i % 7), "s2": 2.0 + (i % 13) * k}}
        for k in range(RECORDS) for i in range(ASSETS)
    )  # fmt: skip
    gateway.close()


def measure(worker: WorkerProcess) -> None:
    idle = [fetch(worker.port, "/health")[0] for _ in range(PROBES)]
    stop = threading.Event()
    sizes: list[int] = []
    served = [0]

    def client() -> None:
        while not stop.is_set():
            sizes.append(fetch(worker.port, "/assets?history=1")[1])
            served[0] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    loaded = []
    started = time.monotonic()
    for _ in range(PROBES):
        loaded.append(fetch(worker.port, "/health")[0])
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(300)
    emit(
        "web_health_ms_under_assets_load", max(loaded), "ms", max(idle),
        health_p50_ms=round(statistics.median(loaded), 1),
        health_p50_idle_ms=round(statistics.median(idle), 1),
        assets=ASSETS, clients=CLIENTS, assets_bytes=max(sizes, default=0),
        assets_requests_per_s=round(served[0] / elapsed, 2),
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = EmbeddedBroker(Path(tmp) / "tansu.log")
        try:
            env = worker_env(broker.bootstrap, fresh("web"), anomaly_warm_up="1",
                             checkpoint_every="1000")  # fmt: skip
            worker = start_worker(env, Path(tmp))
            try:
                load(broker.bootstrap, env["PMAINT_TOPIC_TELEMETRY"])
                want = ASSETS * RECORDS
                wait_until(
                    lambda: worker.metric("pmaint_records_total", outcome="ok") >= want, 600, "feed"
                )
                measure(worker)
            finally:
                worker.kill()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
