"""docker/compose.yaml is valid against the (vendored) compose spec, pinned and secret-free."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

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
