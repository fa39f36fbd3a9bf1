"""A running worker picks up a model promoted into its registry, without a restart.

The worker serves model A to ``turbofan`` assets from a registry (``CURRENT.turbofan``) and
nothing to ``pump`` assets (``asset-001`` sends no ``type``: the policy file's ``[types]``
pattern makes it a turbofan, while ``asset-002``'s own ``pump`` wins over that pattern); B is
promoted with ``pmaint models promote`` while it runs. Once ``PMAINT_RUL_RELOAD_S`` has passed,
the next batch's ``rul`` points in InfluxDB 1.x carry B's version; the worker process is the
same and every record gave its outputs. A and B are trained on the same data, so B takes over
the assets' windows as they are (same inputs). Then a broken version made current by hand is
refused with one log line and B keeps serving.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.rul.artifact import WEIGHTS, save_artifact
from models.rul.data import simulated_runs
from models.rul.registry import current_file, promote, version_dir
from models.rul.serve import RulPredictor
from models.rul.train import TrainConfig, train_rul
from models.simulator import FleetSimulator
from streams.core.served_models import inputs_key
from streams.gateway import Gateway
from streams.harness import Server, WorkerProcess, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.integration.test_rul_replay import influx_query

pytestmark = pytest.mark.integration

RELOAD_S = 1.0
TYPES = {"asset-000": "turbofan", "asset-001": "turbofan", "asset-002": "pump"}  # no pump model
UNTYPED = "asset-001"  # its records carry no type: the policy's [types] table gives it
POLICY = '[types]\n"asset-*" = "turbofan"\n'
BEFORE, AFTER, LAST = 40, 20, 10  # records per asset: before/after promoting B, after a bad one


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny models on the same simulated lives (same inputs, different weights)."""
    runs = simulated_runs(assets=4, lives=1, seed=11)
    out = []
    for name, lr in (("a", 3e-3), ("b", 1e-2)):
        config = TrainConfig(epochs=1, hidden=8, layers=1, folds=1, lr=lr, device="cpu", seed=0)
        result = train_rul(runs, config, data_source=f"simulator ({name})")
        out.append(tmp_path_factory.mktemp(f"rul-{name}"))
        save_artifact(out[-1], result.model, result.metadata)
    return out[0], out[1]


@pytest.fixture
def worker(
    tansu: Server, influxdb1: Server, topic_prefix: str, models: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[WorkerProcess, dict[str, str], Path]]:
    registry = tmp_path / "registry"
    promote(registry, models[0], asset_type="turbofan")
    (tmp_path / "policy.toml").write_text(POLICY)
    env = worker_env(
        tansu.extra["bootstrap"], topic_prefix,
        influx_url=influxdb1.extra["url"], influx_api="v1", influx_database=topic_prefix,
        rul_model=str(registry), rul_reload_s=str(RELOAD_S), rul_required="true",
        anomaly_warm_up="0", policy_file=str(tmp_path / "policy.toml"),
    )  # fmt: skip
    proc = start_worker(env, tmp_path)
    yield proc, env, registry
    proc.kill()


def messages(start: int, n: int, start_ms: int) -> list[dict[str, object]]:
    """Records ``start`` to ``start + n`` of each asset, with its ``type`` (but ``UNTYPED``)."""
    sim = FleetSimulator(assets=len(TYPES), seed=5, start_ms=start_ms)
    records = list(sim.records(len(TYPES) * (start + n)))[len(TYPES) * start :]
    return [
        r.to_message() | ({} if r.asset_id == UNTYPED else {"type": TYPES[r.asset_id]})
        for r in records
    ]


def expected_forecasts(model: Path, records: list[dict[str, object]]) -> Counter[str]:
    """Forecasts per turbofan: records that complete a window (lives restart windows)."""
    predictor = RulPredictor.load(model, "cpu")
    windows = {a: predictor.new_window() for a, t in TYPES.items() if t == "turbofan"}
    due: Counter[str] = Counter()
    for r in records:
        window = windows.get(str(r["asset_id"]))
        if window is not None:
            window.push(r["sensors"], r["settings"], r["cycle"])  # type: ignore[arg-type]
            due[str(r["asset_id"])] += window.ready
    return due


def test_promoted_model_serves_without_a_restart(
    worker: tuple[WorkerProcess, dict[str, str], Path],
    influxdb1: Server,
    models: tuple[Path, Path],
) -> None:
    proc, env, registry = worker
    pid = proc.proc.pid
    version_a, version_b = (RulPredictor.load(m, "cpu").version for m in models)
    assert version_a != version_b
    metas = [RulPredictor.load(m, "cpu").metadata for m in models]
    assert inputs_key(metas[0]) == inputs_key(metas[1])  # so windows carry over
    start_ms = int(time.time() * 1000) - 86_400_000
    before = messages(0, BEFORE, start_ms)
    after = messages(BEFORE, AFTER, start_ms)
    due_before = expected_forecasts(models[0], before)
    due_all = expected_forecasts(models[0], before + after)
    assert all(due_before[a] > 0 and due_all[a] > due_before[a] for a in due_before)

    keys = ("kafka_bootstrap", "topic_telemetry", "topic_dlq", "topic_alerts")
    gateway = Gateway(load_settings(**{k: env[f"PMAINT_{k.upper()}"] for k in keys}), frame=15)
    url, db = influxdb1.extra["url"], env["PMAINT_INFLUX_DATABASE"]

    def counts(measure: str, field: str) -> dict[tuple[str, str], int]:
        q = f'SELECT count("{field}") FROM "{measure}" GROUP BY "asset_id", "model_version"'
        return {
            (s["tags"]["asset_id"], s["tags"].get("model_version", "")): s["values"][0][1]  # type: ignore[index]
            for s in influx_query(url, db, q)
        }

    def anomaly_points() -> int:
        return sum(counts("anomaly", "score").values())

    gateway.send(before)
    wait_until(lambda: anomaly_points() == len(before), 60, "anomaly points before promotion")
    assert counts("rul", "rul") == {(a, version_a): n for a, n in due_before.items()}
    assert proc.metric("pmaint_rul_model", asset_type="turbofan", version=version_a) == 1

    promoted = subprocess.run(
        [sys.executable, "-m", "streams.cli", "models", "promote", "--registry", str(registry),
         str(models[1]), "--asset-type", "turbofan"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(promoted.stdout)["previous"] == version_a
    time.sleep(RELOAD_S + 2.0)  # the next check loads B; the next batch serves it

    gateway.send(after)
    total = len(before) + len(after)
    wait_until(lambda: anomaly_points() == total, 60, "anomaly points after promotion")
    wait_until(
        lambda: sum(counts("rul", "rul").values()) == sum(due_all.values()), 30, "rul points"
    )
    after_only = {a: due_all[a] - due_before[a] for a in due_all}
    rul = counts("rul", "rul")
    assert rul == {
        **{(a, version_a): n for a, n in due_before.items()},
        **{(a, version_b): n for a, n in after_only.items()},
    }
    assert proc.proc.poll() is None and proc.proc.pid == pid  # the same worker, never restarted
    assert proc.metric("pmaint_rul_model", asset_type="turbofan", version=version_b) == 1
    assert proc.metric("pmaint_rul_model") == 1  # A is no longer served
    assert proc.metric("pmaint_records_total", outcome="ok") == total
    assert proc.metric("pmaint_dead_letters_total") == 0
    log = proc.log.read_text()
    swapped = f"serving RUL model {version_b} for asset type 'turbofan' (was {version_a})"
    assert log.count(swapped) == 1, log[-3000:]

    # a broken version made current by hand (not by promote, which refuses it) is refused
    broken = version_dir(registry, "rul-broken")
    shutil.copytree(version_dir(registry, version_b), broken)
    (broken / WEIGHTS).write_bytes(b"\0" * 64)
    current_file(registry, "turbofan").write_text("rul-broken\n")
    time.sleep(RELOAD_S + 2.0)
    last = messages(BEFORE + AFTER, LAST, start_ms)
    gateway.send(last)
    gateway.close()
    due_last = expected_forecasts(models[0], before + after + last)
    wait_until(lambda: anomaly_points() == total + len(last), 60, "anomaly points at the end")
    wait_until(
        lambda: sum(counts("rul", "rul").values()) == sum(due_last.values()), 30, "rul points"
    )
    assert {v for _, v in counts("rul", "rul")} == {version_a, version_b}  # B kept serving
    log = proc.log.read_text()
    assert log.count("refused RUL model rul-broken for asset type 'turbofan'") == 1, log[-3000:]
    assert proc.proc.pid == pid and proc.metric("pmaint_rul_model", version=version_b) == 1
    listed = subprocess.run(
        [sys.executable, "-m", "streams.cli", "models", "list", "--registry", str(registry),
         "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    doc = json.loads(listed.stdout)
    assert doc["current"] is None and doc["current_by_type"] == {"turbofan": "rul-broken"}
    assert {v["version"] for v in doc["versions"]} == {version_a, version_b, "rul-broken"}
