"""A password inside ``PMAINT_INFLUX_URL`` is never printed or logged (issue 13): ``pmaint
check`` and the worker's start-up log show ``user:***@``, and writes still authenticate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.harness import Server, start_worker, wait_until, worker_env

pytestmark = pytest.mark.integration

PASSWORD = "pw-never-shown-4711"


def influx_env(tansu: Server, influxdb1: Server, prefix: str) -> dict[str, str]:
    host = influxdb1.extra["url"].removeprefix("http://")
    return worker_env(
        tansu.extra["bootstrap"], prefix, influx_url=f"http://pmaint:{PASSWORD}@{host}",
        influx_api="v1", influx_database=f"{prefix}db",
    )  # fmt: skip


def test_check_masks_the_password(tansu: Server, influxdb1: Server, topic_prefix: str) -> None:
    env = influx_env(tansu, influxdb1, topic_prefix)
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "check"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "influxdb: ok: InfluxDB 1." in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    bad = env | {"PMAINT_INFLUX_URL": f"http://pmaint:{PASSWORD}@127.0.0.1:1"}  # refused
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "check"],
        env=bad, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "influxdb: FAILED" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


def test_worker_log_masks_the_password(
    tansu: Server, influxdb1: Server, topic_prefix: str, tmp_path: Path
) -> None:
    env = influx_env(tansu, influxdb1, topic_prefix)
    worker = start_worker(env, tmp_path)
    try:
        wait_until(lambda: "InfluxDB at" in worker.log.read_text(), 30, "start-up line")
    finally:
        worker.kill()
    log = worker.log.read_text()
    assert f"http://pmaint:***@{influxdb1.extra['url'].removeprefix('http://')}" in log
    assert PASSWORD not in log
