"""`pmaint demo` end to end, non-interactive: it runs, and its summary adds up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_and_summarises(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAINT_")}
    env |= {"PMAINT_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", "--duration", "15", "--no-live",
         "--assets", "6", "--rate", "400"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # on a timeout, its broker, database and worker go with it
    )  # fmt: skip
    try:
        out, err = demo.communicate(timeout=240)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, err[-3000:]
    m = re.search(r"summary: ([\d,]+) records from (\d+) assets in (\d+) s", out)
    assert m, out[-2000:]
    records, assets = int(m.group(1).replace(",", "")), int(m.group(2))
    assert assets == 6
    assert 0.8 * 15 * 400 <= records <= 15 * 400  # the gateway's whole feed, processed
    assert "0 dead letters" in out
    assert (tmp_path / "demo-model" / "metadata.json").exists()  # trained and cached
    assert re.search(r"asset-00\d\s+│\s+[\d,]+\s+│\s+[\d.]+ / [\d.]+\s+│\s+\d+", out)
    f = re.search(r"failures: (\d+), flagged before failing: (\d+)", out)
    assert f, out[-2000:]
    failures, flagged = int(f.group(1)), int(f.group(2))
    assert failures >= 6  # each simulated asset wears out within its 1,000 records
    assert flagged >= 0.8 * failures  # RUL alerts come before the failures
    assert re.search(r"worker ready: http://127\.0\.0\.1:\d+/ \(fleet page\)", out)
    injected = re.findall(r"(spike|stuck|drift): (\d+) injected, (\d+) caught", out)
    assert {kind for kind, _, _ in injected} == {"spike", "stuck", "drift"}, out[-3000:]
    assert all(int(caught) <= int(n) for _, n, caught in injected)
    assert re.search(r"flagged before failing: \d+ \(first by (anomaly|rul) \d+", out)
    assert re.search(r"adaptive thresholds: fleet median \d+\.\d+", out)
    plot = re.search(r"plots: (\S+\.png)", out)
    assert plot and Path(plot.group(1)).stat().st_size > 50_000
