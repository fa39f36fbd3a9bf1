"""InfluxSink write throughput vs one point per HTTP request, same servers, same run.

Targets: InfluxDB 1.6.7 (v1 ``/write``) and VictoriaMetrics (v2 ``/api/v2/write``), each started
on a free port in a temporary directory. ``value``: anomaly points/s through ``InfluxSink``
with one ``write()`` of every point (the sink cuts gzip batches of ``batch_size`` lines and
waits for each 2xx). ``worker_style``: the same sink awaited batch after batch of 500 points,
the way a worker writes a consumed batch before acking it (so each write pays up to
``linger_ms``). Baseline: the same line protocol, one point per ``urllib`` POST.
One JSON line per target; under a minute in all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchmarks.common import emit
from streams.core.line_protocol import Point, encode
from streams.core.points import anomaly_point
from streams.core.signals import AnomalySignal
from streams.harness import Server, start_influxdb1, start_victoriametrics
from streams.settings import Settings, load_settings
from streams.sinks.influx import InfluxSink, target_from_settings

POINTS = 100_000
WORKER_POINTS, WORKER_BATCH = 10_000, 500
BASELINE_POINTS = 2_000
ASSETS = 100


def points(n: int, t0: float) -> list[Point]:
    """``n`` anomaly points, distinct (asset, time) each, so none overwrites another."""
    return [
        anomaly_point(
            AnomalySignal(f"asset-{i % ASSETS:03d}", t0 + i // ASSETS, 0.5 + i % 7, 3.0),
            "site-1",
            "line-1",
        )
        for i in range(n)
    ]


async def sink_rate(settings: Settings, pts: list[Point], chunk: int, dead: Path) -> float:
    sink = InfluxSink.from_settings(settings, dead_letter_dir=dead)
    async with sink:
        started = time.perf_counter()
        for i in range(0, len(pts), chunk):
            await sink.write(pts[i : i + chunk])
        elapsed = time.perf_counter() - started
    if sink.stats.written != len(pts) or sink.stats.dead_lettered:
        raise RuntimeError(f"sink wrote {sink.stats.written}/{len(pts)} ({sink.stats})")
    return len(pts) / elapsed


def baseline_rate(settings: Settings, pts: list[Point]) -> float:
    """One uncompressed POST per point, waiting for each answer (urllib, no batching)."""
    url = target_from_settings(settings).write_url
    started = time.perf_counter()
    for point in pts:
        req = urllib.request.Request(url, data=encode(point), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            if not 200 <= r.status < 300:
                raise RuntimeError(f"baseline write: HTTP {r.status}")
    return len(pts) / (time.perf_counter() - started)


def influx_count(url: str, db: str) -> int:
    q = urllib.parse.urlencode({"db": db, "q": 'SELECT count("score") FROM "anomaly"'})
    with urllib.request.urlopen(f"{url}/query?{q}", timeout=30) as r:
        series = json.loads(r.read())["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def bench(name: str, settings: Settings, work: Path) -> tuple[float, float, float]:
    t0 = 1_700_000_000.0
    main = points(POINTS, t0)
    worker = points(WORKER_POINTS, t0 + 10 * POINTS)
    base = points(BASELINE_POINTS, t0 + 20 * POINTS)
    rate = asyncio.run(sink_rate(settings, main, len(main), work / f"dead-{name}"))
    worker_rate = asyncio.run(
        sink_rate(settings, worker, WORKER_BATCH, work / f"dead-{name}-worker")
    )
    return rate, worker_rate, baseline_rate(settings, base)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pmaint-sink-bench-") as tmp:
        work = Path(tmp)
        servers: list[Server] = []
        try:
            (work / "influx").mkdir()
            (work / "vm").mkdir()
            influx = start_influxdb1(work / "influx")
            servers.append(influx)
            vm = start_victoriametrics(work / "vm")
            servers.append(vm)
            url = influx.extra["url"]
            v1 = load_settings(influx_url=url, influx_api="v1", influx_database="bench")
            v2 = load_settings(
                influx_url=vm.extra["url"], influx_api="v2", influx_bucket="b", influx_org="o"
            )
            for name, settings, version in (
                ("sink_influxdb1", v1, "InfluxDB 1.6.7, v1 /write"),
                ("sink_victoriametrics", v2, "VictoriaMetrics, v2 /api/v2/write"),
            ):
                rate, worker_rate, baseline = bench(name, settings, work)
                extra: dict[str, object] = {}
                if settings is v1:
                    stored = influx_count(url, "bench")
                    expected = POINTS + WORKER_POINTS + BASELINE_POINTS
                    if stored != expected:
                        raise RuntimeError(f"InfluxDB holds {stored} points, expected {expected}")
                    extra["stored"] = stored
                emit(
                    name, rate, "points/s", baseline,
                    baseline_name="one point per urllib POST", target=version,
                    points=POINTS, batch_size=5000, worker_style=round(worker_rate, 1),
                    worker_batch=WORKER_BATCH, baseline_points=BASELINE_POINTS, **extra,
                )  # fmt: skip
        finally:
            for server in servers:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
