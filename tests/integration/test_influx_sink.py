"""The InfluxDB sink against real servers: InfluxDB 1.6.7 (v1 API) and VictoriaMetrics (v2 API)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.core.line_protocol import Point
from streams.core.points import anomaly_point, rul_point
from streams.core.signals import AnomalySignal, RulSignal
from streams.harness import Server, http_ok, start_influxdb1, wait_until
from streams.settings import load_settings
from streams.sinks.influx import InfluxSink, check, target_from_settings
from tests.influx import victoria_export, write_points

pytestmark = pytest.mark.integration


def query(url: str, q: str, db: str, auth: tuple[str, str] | None = None) -> list[list[object]]:
    data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ms"}).encode()
    creds = "?" + urllib.parse.urlencode({"u": auth[0], "p": auth[1]}) if auth else ""
    with urllib.request.urlopen(urllib.request.Request(url + "/query" + creds, data=data)) as r:
        result = json.loads(r.read())["results"][0]
    return [row for s in result.get("series", []) for row in s["values"]]


def count(url: str, db: str, measurement: str = "rul") -> int:
    rows = query(url, f'SELECT count("rul") FROM "{measurement}"', db)
    return int(rows[0][1]) if rows else 0  # type: ignore[call-overload]


def rul_points(n: int, t0: float = 1_700_000_000.0, assets: int = 50) -> list[Point]:
    return [
        rul_point(
            RulSignal(f"asset-{i % assets:03d}", t0 + i, 100 - i % 90, 80, 120, (), "m1"), "s1"
        )
        for i in range(n)
    ]


def sink_for(url: str, db: str, tmp_path: Path, **options: object) -> InfluxSink:
    settings = load_settings(influx_url=url, influx_database=db, data_dir=tmp_path)
    return InfluxSink.from_settings(settings, **options)


def test_detects_v1_and_checks(influxdb1: Server) -> None:
    settings = load_settings(influx_url=influxdb1.extra["url"], influx_database="d")
    assert target_from_settings(settings).api == "v1"
    assert check(settings).startswith("InfluxDB 1.6.7")
    assert "v1 API (db=d)" in check(settings)


def test_writes_read_back_and_replay_does_not_duplicate(influxdb1: Server, tmp_path: Path) -> None:
    url = influxdb1.extra["url"]
    odd = AnomalySignal("asset, 1", 1_700_000_000.0, 0.9, 0.6, [("s 4", 0.5)])
    points = [*rul_points(500), anomaly_point(odd, "a=b")]

    async def go() -> None:
        async with sink_for(url, "replay", tmp_path, linger_ms=20, batch_size=128) as sink:
            await sink.write(points)
            await sink.write(points)  # a replay after a restart
            assert sink.stats.written == 2 * len(points)

    asyncio.run(go())
    assert count(url, "replay") == 500
    rows = query(url, 'SELECT "score", "c_s 4", "site" FROM "anomaly"', "replay")
    assert rows == [[1_700_000_000_000, 0.9, 0.5, "a=b"]]


def test_flush_does_not_wait_out_the_linger(influxdb1: Server, tmp_path: Path) -> None:
    """A writer that adds and then flushes has nothing more coming: its lines go at once."""
    url = influxdb1.extra["url"]

    async def go() -> tuple[float, float]:
        async with sink_for(url, "flush", tmp_path, linger_ms=3000) as sink:
            start = time.perf_counter()
            await sink.add(rul_points(10))
            await sink.flush()
            flushed = time.perf_counter() - start
            start = time.perf_counter()
            await sink.write(rul_points(10, t0=1_700_001_000.0))  # no flush: it lingers
            return flushed, time.perf_counter() - start

    flushed, written = asyncio.run(go())
    assert flushed < 1.5 <= written
    assert count(url, "flush") == 20


def test_throughput(influxdb1: Server, tmp_path: Path) -> None:
    url, n = influxdb1.extra["url"], 100_000
    points = rul_points(n, assets=1000)

    async def go() -> float:
        async with sink_for(url, "bench", tmp_path) as sink:
            start = time.perf_counter()
            await asyncio.gather(*(sink.write(points[i : i + 1000]) for i in range(0, n, 1000)))
            return time.perf_counter() - start

    elapsed = asyncio.run(go())
    print(f"influx v1 write: {n / elapsed:,.0f} points/s ({n} points, {elapsed:.2f} s)")
    assert count(url, "bench") == n


def test_paused_server_loses_nothing_and_buffer_stays_bounded(
    influxdb1: Server, tmp_path: Path
) -> None:
    url, n = influxdb1.extra["url"], 20_000
    points = rul_points(n, t0=1_600_000_000.0, assets=200)
    peak = 0

    async def go() -> None:
        nonlocal peak
        sink = sink_for(
            url, "paused", tmp_path, batch_size=1000, max_buffer=4000, timeout_s=1.0,
            backoff_s=0.1, backoff_max_s=1.0, linger_ms=10,
        )  # fmt: skip
        await sink.start()
        await sink.write(points[:1000])
        influxdb1.pause()
        try:
            writers = [
                asyncio.create_task(sink.write(points[i : i + 500])) for i in range(1000, n, 500)
            ]
            for _ in range(40):  # ~4 s paused
                await asyncio.sleep(0.1)
                peak = max(peak, sink.buffered)
            assert not any(w.done() for w in writers)
            assert sink.stats.retries > 0
        finally:
            influxdb1.resume()
        await asyncio.wait_for(asyncio.gather(*writers), 60)
        await sink.close()

    asyncio.run(go())
    assert 0 < peak <= 4000
    assert count(url, "paused") == n


def test_bad_line_goes_to_dead_letter_and_good_ones_are_written(
    influxdb1: Server, tmp_path: Path
) -> None:
    url = influxdb1.extra["url"]
    good = [Point("rul", {"asset_id": "a"}, {"rul": float(i)}, 1000 + i) for i in range(20)]
    bad = Point("rul", {"asset_id": "a"}, {"rul": "not a number"}, 5000)  # field type conflict

    async def go() -> InfluxSink:
        async with sink_for(url, "dlq", tmp_path, linger_ms=10) as sink:
            await sink.write(good[:1])
            await sink.write([*good[1:10], bad, *good[10:]])
        return sink

    sink = asyncio.run(go())
    assert count(url, "dlq") == 20
    assert sink.stats.dead_lettered == 1
    (record,) = [json.loads(x) for x in sink.dead_letter_path.read_text().splitlines()]
    assert record["status"] == 400
    assert "conflict" in record["reason"]
    assert record["lines"] == ['rul,asset_id=a rul="not a number" 5000']


@pytest.fixture(scope="module")
def influx_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """InfluxDB 1.x with authentication on, and an admin ``admin``/``s3cret pass``."""
    workdir = tmp_path_factory.mktemp("influx-auth")
    plain = start_influxdb1(workdir)
    plain.stop()
    config = workdir / "influxdb.conf"
    config.write_text(config.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
    log = (workdir / "server-auth.log").open("wb")
    proc = subprocess.Popen(
        ["influxd", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    server = Server(plain.port, proc, workdir, {"url": plain.extra["url"]})
    wait_until(lambda: http_ok(f"{server.extra['url']}/ping"), 30, "influxd with auth")
    query(
        server.extra["url"], "CREATE USER admin WITH PASSWORD 's3cret pass' WITH ALL PRIVILEGES", ""
    )
    yield server
    server.stop()


def test_username_password(
    influx_auth: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = influx_auth.extra["url"]
    settings = load_settings(
        influx_url=url, influx_database="secure", influx_username="admin",
        influx_password="s3cret pass", data_dir=tmp_path,
    )  # fmt: skip
    assert "s3cret" not in repr(target_from_settings(settings))

    write_points(settings, rul_points(10))
    rows = query(url, 'SELECT count("rul") FROM "rul"', "secure", auth=("admin", "s3cret pass"))
    assert rows[0][1] == 10
    assert "s3cret" not in caplog.text


def test_credentials_inside_the_url_authenticate_and_are_never_shown(
    influx_auth: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = influx_auth.extra["url"]
    inside = url.replace("http://", "http://admin:s3cret%20pass@")
    settings = load_settings(influx_url=inside, influx_database="in-url", data_dir=tmp_path)
    target = target_from_settings(settings)
    assert target.url == url and "s3cret" not in repr(target) + target.describe()
    assert check(settings).startswith("InfluxDB 1.") and "s3cret" not in check(settings)

    write_points(settings, rul_points(7))
    rows = query(url, 'SELECT count("rul") FROM "rul"', "in-url", auth=("admin", "s3cret pass"))
    assert rows[0][1] == 7
    assert "s3cret" not in caplog.text


def test_v2_write_to_victoriametrics(victoriametrics: Server, tmp_path: Path) -> None:
    url = victoriametrics.extra["url"]
    settings = load_settings(
        influx_url=url, influx_api="v2", influx_bucket="pm", influx_org="acme",
        influx_token="tok", data_dir=tmp_path,
    )  # fmt: skip
    # VictoriaMetrics keeps one month by default: recent event times
    points = rul_points(30, t0=float(int(time.time()) - 3600), assets=3) * 2  # and a replay

    write_points(settings, points)
    series = victoria_export(url, '{__name__="rul_rul_p10"}')
    assert {s["metric"]["asset_id"] for s in series} == {"asset-000", "asset-001", "asset-002"}
    assert all(s["metric"]["model_version"] == "m1" and s["metric"]["site"] == "s1" for s in series)
    # same series and timestamps on replay (InfluxDB overwrites; VictoriaMetrics keeps raw
    # copies unless started with -dedup.minScrapeInterval, so compare distinct samples)
    samples = {
        (s["metric"]["asset_id"], t, v)
        for s in series
        for t, v in zip(s["timestamps"], s["values"], strict=True)
    }
    assert len(samples) == len({(a, t) for a, t, _ in samples}) == 30
