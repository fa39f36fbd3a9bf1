"""Real servers for tests: Tansu (Kafka protocol), InfluxDB 1.x, VictoriaMetrics (v2 writes).

Each starts on a free loopback port in a temporary directory and is stopped by its fixture.
A missing binary fails loudly: `.ci/run` installs them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
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


def _spawn(cmd: list[str], workdir: Path) -> subprocess.Popen[bytes]:
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
    server = Server(port, _spawn(cmd, workdir), workdir)
    server.extra["url"] = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "victoria-metrics")
    return server
