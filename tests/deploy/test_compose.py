"""docker/compose.yaml is valid against the (vendored) compose spec, pinned and secret-free."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from streams.rul_models import ModelSource

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_valid_against_the_vendored_compose_spec() -> None:
    """check-jsonschema's built-in copy of the compose spec; a dead proxy proves no fetch."""
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": ""}
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok -- validation done" in run.stdout


def test_services_and_images_are_pinned() -> None:
    services = load()["services"]
    assert {"kafka", "influxdb", "grafana", "simulator"} <= set(services)
    assert [s for s in services if s.startswith("worker")] == ["worker-1", "worker-2"]
    for name, service in services.items():
        image = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", service["image"])  # ${VAR:-default}
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image} has no tag"
        assert "latest" not in tag, f"{name}: {image} is not pinned"
        assert re.match(r"^\d+\.\d+\.\d+", tag), f"{name}: {image} is not a version"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["influxdb"]["image"].startswith("influxdb:2.7.")
    assert services["grafana"]["image"].startswith("grafana/grafana:11.")


def test_no_secret_is_literal() -> None:
    doc = load()
    text = COMPOSE.read_text()
    for name, service in doc["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert INTERPOLATION.match(value), f"{name}: {key} must come from docker/.env"
                assert ":-" not in value, f"{name}: {key} must not have a default"
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value not in text, f"{key}'s example value is in compose.yaml"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


def test_kraft_healthchecks_and_start_order() -> None:
    services = load()["services"]
    kafka = environment(services["kafka"])
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(kafka)
    for name in ("kafka", "influxdb", "grafana", "worker-1", "worker-2"):
        assert services[name]["healthcheck"]["test"], name
    for worker in ("worker-1", "worker-2"):
        service = services[worker]
        assert service["depends_on"]["influxdb"]["condition"] == "service_healthy"
        assert service["depends_on"]["kafka-init"]["condition"] == (
            "service_completed_successfully"
        )
        env = environment(service)
        assert env["PMAINT_INFLUX_API"] == "v2" and env["PMAINT_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "/health" in " ".join(service["healthcheck"]["test"])
    ports = [services[w]["ports"][0].split(":")[0] for w in ("worker-1", "worker-2")]
    assert len(set(ports)) == 2, "each worker needs its own host port"
    simulator = services["simulator"]
    assert (
        simulator["command"][:2] == ["produce", "--simulate"] and "--rate" in simulator["command"]
    )
    assert services["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"


def test_mounted_files_exist() -> None:
    for name, service in load()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} is missing"
    dbrp = (DOCKER / "influxdb" / "init-dbrp.sh").read_text()
    assert "influx v1 dbrp create" in dbrp and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in dbrp
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/influxdb.yaml").read_text()
    )["datasources"][0]
    assert datasource["type"] == "influxdb" and datasource["jsonData"]["version"] == "InfluxQL"
    assert datasource["secureJsonData"]["httpHeaderValue1"] == "Token $INFLUXDB_TOKEN"


def test_train_fills_the_model_registry_before_the_workers_start() -> None:
    doc = load()
    services = doc["services"]
    train = services["train"]
    assert train["restart"] == "no" and train["entrypoint"] == ["/bin/sh", "-c"]
    assert "models:/models" in train["volumes"] and "./train-data:/data:ro" in train["volumes"]
    assert "--simulated" in environment(train)["TRAIN_ARGS"]
    assert "models" in doc["volumes"]
    for worker in ("worker-1", "worker-2"):
        service = services[worker]
        assert service["depends_on"]["train"]["condition"] == "service_completed_successfully"
        env = environment(service)
        assert env["PMAINT_RUL_MODEL"] == "/models"
        assert env["PMAINT_RUL_RELOAD_S"] == "${PMAINT_RUL_RELOAD_S:-30}"
        assert "models:/models:ro" in service["volumes"]


def test_train_script_trains_promotes_and_then_skips(tmp_path: Path) -> None:
    """The `train` service's script, run here with a small model: it fills the registry
    workers load, and a second run leaves it alone."""
    (script,) = load()["services"]["train"]["command"]
    script = script.replace("$$", "$").replace("/models", str(tmp_path / "models"))
    script = script.replace("/tmp/rul-model", str(tmp_path / "rul-model"))
    (tmp_path / "models").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pmaint").write_text(f'#!/bin/sh\nexec {sys.executable} -m streams.cli "$@"\n')
    (bin_dir / "pmaint").chmod(0o755)
    small = "--simulated --assets 3 --lives 1 --folds 1 --epochs 1 --hidden 8 --layers 1 --quiet"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TRAIN_ARGS": small,
           "RETRAIN": "0", "PYTHONPATH": str(DOCKER.parent)}  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                              env=env, timeout=300, check=False)  # fmt: skip

    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    version = (tmp_path / "models" / "CURRENT").read_text().strip()
    assert version.startswith("rul-") and version in first.stdout  # `models list` shows it
    assert ModelSource(tmp_path / "models", "cpu").load().versions() == {None: version}
    second = run()
    assert second.returncode == 0 and f"model registry serves {version}" in second.stdout
