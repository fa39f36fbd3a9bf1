"""Real local processes for the tests and the benchmarks: Tansu (Kafka protocol), InfluxDB 1.x,
VictoriaMetrics (InfluxDB v2 writes) and ``pmaint worker`` itself.

Each server starts on a free loopback port in a temporary directory and is stopped by its
owner. A missing binary fails loudly: ``make system`` (or ``.ci/run``) installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.embedded import EmbeddedBroker, EmbeddedInfluxDB, free_port


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as r:
        return 200 <= int(r.status) < 300


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run .ci/run (or apt-get install it)")
    return path


@dataclass
class Server:
    """A started server process; ``stop()`` ends it."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def pause(self) -> None:
        self.proc.send_signal(19)  # SIGSTOP

    def resume(self) -> None:
        self.proc.send_signal(18)  # SIGCONT


def spawn(cmd: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    log = (workdir / "server.log").open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def start_tansu(workdir: Path, extra_args: tuple[str, ...] = ()) -> Server:
    """Tansu on a free port with in-memory storage; ``bootstrap`` is ``127.0.0.1:PORT``."""
    broker = EmbeddedBroker(workdir / "server.log", extra_args)
    return Server(broker.port, broker.proc, workdir, {"bootstrap": broker.bootstrap})


def start_influxdb1(workdir: Path) -> Server:
    """InfluxDB 1.x (Debian's influxd) with HTTP on a free port; ``url`` in ``extra``."""
    require("influxd")
    influx = EmbeddedInfluxDB(workdir)
    return Server(influx.port, influx.proc, workdir, {"url": influx.url})


def start_victoriametrics(workdir: Path) -> Server:
    """VictoriaMetrics, which accepts the InfluxDB v2 write API; ``url`` in ``extra``."""
    binary = require("victoria-metrics")
    port = free_port()
    cmd = [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={workdir}/vm"]
    server = Server(port, spawn(cmd, workdir), workdir)
    server.extra["url"] = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "victoria-metrics")
    return server


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` matching ``labels`` in a Prometheus text page.

    >>> page = 'a_total{stage="x"} 1.5\\na_total{stage="y"} 2\\nb 7'
    >>> metric_sum(page, "a_total"), metric_sum(page, "a_total", stage="y"), metric_sum(page, "c")
    (3.5, 2.0, 0.0)
    """
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples matching ``labels`` (0 if absent)."""
        return metric_sum(self.get("/metrics")[1], name, **labels)

    def ready(self) -> bool:
        return self.get("/ready")[0] == 200

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def worker_env(bootstrap: str, prefix: str, **settings: str) -> dict[str, str]:
    """Environment for a worker on its own topics and consumer group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAINT_")}
    env |= {
        "PMAINT_KAFKA_BOOTSTRAP": bootstrap,
        "PMAINT_APP_ID": f"{prefix}-app",
        "PMAINT_TOPIC_TELEMETRY": f"{prefix}.telemetry",
        "PMAINT_TOPIC_DLQ": f"{prefix}.telemetry.dlq",
        "PMAINT_TOPIC_ALERTS": f"{prefix}.alerts",
        "PMAINT_GROUP_SESSION_TIMEOUT_S": "4",
        "PMAINT_GROUP_REBALANCE_TIMEOUT_S": "4",
    }
    env |= {f"PMAINT_{k.upper()}": v for k, v in settings.items()}
    return env


def run_pmaint(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``pmaint ARGS`` in a subprocess with ``env``; its text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def start_worker(
    env: dict[str, str], workdir: Path, ready_timeout: float = 60, data_dir: Path | None = None
) -> WorkerProcess:
    """A worker on a free web port; its table state goes to ``data_dir`` (default: a fresh one
    per worker under ``workdir``; give the same one to restart a worker on its local state)."""
    port = free_port()
    log = workdir / f"worker-{port}.log"
    data = data_dir or workdir / f"data-{port}"
    env = env | {"PMAINT_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--web-port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    worker = WorkerProcess(proc, port, log)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
        return worker.ready()

    try:
        wait_until(up, ready_timeout, f"worker on port {port}")
    except BaseException:
        worker.kill(signal.SIGKILL)  # a worker that never got ready is not left running
        raise
    return worker
