"""Run ``pmaint worker`` as a real process against the test broker, and read its endpoints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streams.embedded import free_port
from tests.servers import wait_until


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
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

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


def start_worker(env: dict[str, str], workdir: Path, ready_timeout: float = 60) -> WorkerProcess:
    port = free_port()
    log = workdir / f"worker-{port}.log"
    env = env | {"PMAINT_DATA_DIR": str(workdir / f"data-{port}"), "PYTHONUNBUFFERED": "1"}
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

    wait_until(up, ready_timeout, f"worker on port {port}")
    return worker
