"""The worker's HTTP surface against a real worker: only documented routes, a bearer token for
the fleet data, paged ``/assets``, ``/health`` answering under load, half-open connections
closed after the idle timeout."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streams.gateway import Gateway
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings

pytestmark = pytest.mark.integration

TOKEN = "s3cret-web-token-" + uuid.uuid4().hex
ASSETS = 5_000
IDLE_S = 2.0


@pytest.fixture(scope="module")
def worker(tansu: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    prefix = f"web{uuid.uuid4().hex[:8]}"
    env = worker_env(
        tansu.extra["bootstrap"], prefix, web_token=TOKEN,
        web_idle_timeout_s=str(IDLE_S), anomaly_warm_up="1", checkpoint_every="1000",
    )  # fmt: skip
    proc = start_worker(env, tmp_path_factory.mktemp("web-worker"))
    settings = load_settings(kafka_bootstrap=tansu.extra["bootstrap"],
                             topic_telemetry=env["PMAINT_TOPIC_TELEMETRY"])  # fmt: skip
    gateway = Gateway(settings, frame=500)
    now_ms = int(time.time() * 1000)
    gateway.send(
        {"asset_id": f"web-{i:05d}", "ts": now_ms - 60_000 + k * 1000,
         "sensors": {"s1": 1.0 + k * (i % 7), "s2": 2.0 + (i % 13) * k}}
        for k in range(3) for i in range(ASSETS)
    )  # fmt: skip
    gateway.close()
    want = 3 * ASSETS
    wait_until(lambda: proc.metric("pmaint_records_total", outcome="ok") >= want, 120, "records")
    yield proc
    proc.kill()


def get(worker: WorkerProcess, path: str, token: str | None = TOKEN) -> tuple[int, Any, bytes]:
    """Status, parsed JSON (or text) and raw body of ``GET path`` with the bearer token."""
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, body = int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body), body
    except ValueError:
        return status, body.decode(), body


def test_only_documented_routes_answer(worker: WorkerProcess) -> None:
    for path in ("/router/", "/table/", "/table/checkpoints/web-00001/", "/stats/",
                 "/graph/", "/performance/", "/signal/", "/nothing"):  # fmt: skip
        status, _, body = get(worker, path)
        assert status == 404, (path, body[:200])
    for path in ("/health", "/ready", "/metrics"):  # probes and scrapers need no token
        assert get(worker, path, token=None)[0] == 200, path


def test_token_guards_assets_and_fleet_page(worker: WorkerProcess) -> None:
    for path in ("/assets", "/assets/web-00001", "/fleet", "/"):
        assert get(worker, path, token=None)[0] == 401, path
        assert get(worker, path, token=TOKEN[:-1] + "x")[0] == 401, path
        assert get(worker, path)[0] == 200, path
    status, page, _ = get(worker, f"/fleet?token={TOKEN}", token=None)
    assert status == 200 and "pmaint fleet" in page
    status, prompt, _ = get(worker, "/fleet", token=None)
    assert status == 401 and 'name="token"' in prompt
    assert get(worker, f"/assets?limit=1&token={TOKEN}", token=None)[0] == 200
    assert TOKEN not in worker.log.read_text()


def assert_ranked(assets: list[dict[str, Any]]) -> None:
    """Lowest RUL P10 first, then highest score over threshold (summaries are rounded)."""

    def risk(a: dict[str, Any]) -> tuple[float, float]:
        over = a["score"] / max(a["threshold"], 1e-9) if "score" in a else 0.0
        return (a.get("rul_p10", float("inf")), -over)

    keys = [risk(a) for a in assets]
    for (p1, o1), (p2, o2) in itertools.pairwise(keys):
        assert p1 < p2 or (p1 == p2 and o1 <= o2 + 1e-3), (p1, o1, p2, o2)


def test_assets_are_paged_and_ranked_on_the_worker(worker: WorkerProcess) -> None:
    status, first, raw = get(worker, "/assets?history=1")
    assert status == 200 and len(first["assets"]) == 100 and first["total"] == ASSETS
    assert len(raw) < 2_000_000
    assert first["fleet"]["assets"] == ASSETS
    everything = [a for off in range(0, ASSETS, 500)
                  for a in get(worker, f"/assets?limit=500&offset={off}")[1]["assets"]]  # fmt: skip
    assert len({a["asset_id"] for a in everything}) == ASSETS
    assert_ranked(everything)
    assert [a["asset_id"] for a in first["assets"]] == [a["asset_id"] for a in everything[:100]]
    by_id = get(worker, "/assets?sort=asset_id&limit=3&offset=10")[1]["assets"]
    assert [a["asset_id"] for a in by_id] == ["web-00010", "web-00011", "web-00012"]
    found = get(worker, "/assets?asset=web-0420&sort=asset_id")[1]
    assert found["total"] == 10 and found["assets"][0]["asset_id"] == "web-04200"
    for bad in ("limit=0", "limit=100000", "offset=-1", "sort=name", "limit=ten"):
        status, body, _ = get(worker, f"/assets?{bad}")
        assert status == 400 and "error" in body, bad


def test_health_answers_while_heavy_asset_requests_run(worker: WorkerProcess) -> None:
    def health_ms() -> float:
        started = time.perf_counter()
        assert get(worker, "/health", token=None)[0] == 200
        return (time.perf_counter() - started) * 1000

    idle = max(health_ms() for _ in range(10))
    stop = threading.Event()
    sizes: list[int] = []

    def hammer() -> None:
        while not stop.is_set():
            sizes.append(len(get(worker, "/assets?history=1")[2]))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        loaded = [health_ms() for _ in range(30) if not time.sleep(0.05)]
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    print(f"/health max {idle:.1f} ms idle, {max(loaded):.1f} ms under 6 /assets?history=1 loops")
    assert sizes and max(sizes) < 2_000_000
    assert max(loaded) < 1000, (idle, loaded)


def test_half_open_connections_are_closed(worker: WorkerProcess) -> None:
    conns = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", worker.port), timeout=10)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finishes the headers
        conns.append(s)
    started = time.monotonic()
    closed_at: dict[int, float] = {}
    while len(closed_at) < len(conns) and time.monotonic() - started < IDLE_S + 8:
        for i, s in enumerate(conns):
            if i in closed_at:
                continue
            try:
                s.sendall(b"a")  # a slowloris trickle: one byte at a time
                s.settimeout(0.001)
                if s.recv(1) == b"":
                    closed_at[i] = time.monotonic() - started
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                closed_at[i] = time.monotonic() - started
        assert get(worker, "/health", token=None)[0] == 200
        time.sleep(0.2)
    for s in conns:
        s.close()
    assert len(closed_at) == len(conns), f"{len(conns) - len(closed_at)} still open"
    assert max(closed_at.values()) < IDLE_S + 3
