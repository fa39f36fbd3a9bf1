"""The Helm chart renders, lints and yields valid Kubernetes 1.30 manifests for many value sets."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from streams.settings import SECRET_FIELDS, Settings

CHART = Path(__file__).resolve().parents[2] / "helm" / "pmaint"
K8S = "1.30"
# groups kubernetes-validate knows; anything else (ServiceMonitor) is checked by hand
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1"}

SECRETS = {
    "kafkaSaslPassword": {"existingSecret": "kafka-user", "key": "password"},
    "kafkaTls": {
        "existingSecret": "kafka-tls",
        "caKey": "ca.crt",
        "certKey": "tls.crt",
        "keyKey": "tls.key",
    },
    "influxToken": {"existingSecret": "influx", "key": "token"},
    "influxPassword": {"existingSecret": "influx", "key": "password"},
    "webToken": {"existingSecret": "pmaint-web", "key": "token"},
}
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# settings the chart sets itself (port, data volume, mounted secret and TLS files)
CHART_MANAGED = {"web_port", "data_dir", "kafka_ssl_cafile", "kafka_ssl_certfile",
                 "kafka_ssl_keyfile", *SECRET_FIELDS}  # fmt: skip


def _sample(spec: dict[str, Any]) -> Any:
    """A valid, non-default-looking value for one setting of the schema."""
    if "enum" in spec:
        return [v for v in spec["enum"] if v is not None][-1]
    kind = spec["type"][0]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = max(spec.get("minimum", 0), spec.get("exclusiveMinimum", 0))
        high = min(spec.get("maximum", 1e6), spec.get("exclusiveMaximum", 1e6))
        value = low + (high - low) / 3 if high < 1e6 else low * 2 + 2.5
        return round(value) if kind == "integer" else value
    return "x"


# every setting the ConfigMap carries, with a value of the right type
FULL_CONFIG = {
    name: _sample(spec) for name, spec in SCHEMA["properties"]["config"]["properties"].items()
}
FULL_CONFIG |= {
    "kafka_bootstrap": "k1:9093,k2:9093",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "pmaint",
    "topic_telemetry": "plant.telemetry",
    "topic_dlq": "plant.telemetry.dlq",
    "topic_alerts": "plant.alerts",
    "partitions": 12,
    "group_rebalance_timeout_s": 60.5,
    "max_message_bytes": 2097152,
    "max_inflated_batch_bytes": 8388608,
    "web_host": "0.0.0.0",
    "influx_url": "https://influx.example:8086",
    "rul_model": "/models/rul",
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": {
        "worker": {
            "replicas": 3,
            "gpu": {"enabled": True, "count": 1, "nodeSelector": {"accelerator": "nvidia-l4"}},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "pm"}],
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
        },
        "config": {"influx_url": "http://influxdb:8086", "influx_bucket": "pmaint"},
        "secrets": {"influxToken": SECRETS["influxToken"]},
    },
    "hpa": {
        "autoscaling": {
            "enabled": True,
            "minReplicas": 2,
            "maxReplicas": 12,
            "targetMemoryUtilizationPercentage": 80,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
        "podDisruptionBudget": {"maxUnavailable": "25%"},
        "worker": {"persistence": {"enabled": False}},
    },
    "secure": {
        "config": FULL_CONFIG,
        "secrets": SECRETS,
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prom"}}},
        "dashboards": {"enabled": True},
        "simulator": {"enabled": True, "rate": 200, "assets": 100},
        "worker": {"persistence": {"storageClassName": "fast-ssd", "size": "20Gi"}},
        "imagePullSecrets": [{"name": "regcred"}],
    },
    "registry": {
        "modelRegistry": {"enabled": True, "train": {"enabled": True}},
        "config": {"rul_reload_s": 10},
    },
    "registry-claim": {
        "modelRegistry": {"enabled": True, "existingClaim": "rul-models", "mountPath": "/srv/m"},
    },
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm_python.Chart.load(CHART).render(values, name="pm", namespace="plant")
    docs = []
    for path, text in out.items():
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def worker_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The worker container's environment: ConfigMap entries plus explicit env."""
    (sts,) = by_kind(docs, "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    (cm,) = [
        d for d in by_kind(docs, "ConfigMap") if not d["metadata"]["name"].endswith("-dashboards")
    ]
    assert container["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    return {**cm["data"], **{e["name"]: e.get("value", "") for e in container["env"]}}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_renders_valid_manifests(name: str) -> None:
    docs = render(VALUE_SETS[name])
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        if doc["apiVersion"] in CORE_GROUPS:
            kubernetes_validate.validate(doc, K8S, strict=True)
        else:
            assert doc["kind"] == "ServiceMonitor", f"unexpected {doc['apiVersion']}"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_finds_no_errors(name: str) -> None:
    result = helm_python.lint(CHART, VALUE_SETS[name])
    assert result["errors"] == []
    assert all(m["severity"] < 2 for m in result["messages"]), result["messages"]


def test_default_worker_statefulset() -> None:
    docs = render({})
    (sts,) = by_kind(docs, "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 2
    (svc,) = by_kind(docs, "Service")
    assert svc["spec"]["clusterIP"] == "None" and spec["serviceName"] == svc["metadata"]["name"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["worker"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 6066, "protocol": "TCP"}]
    assert {"name": "data", "mountPath": "/var/lib/pmaint"} in c["volumeMounts"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "nvidia.com/gpu" not in json.dumps(docs)
    env = worker_env(docs)
    assert env["PMAINT_DATA_DIR"] == "/var/lib/pmaint" and env["PMAINT_WEB_PORT"] == "6066"
    assert not any(k.endswith("_FILE") for k in env)
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "Deployment")


def test_gpu_workers() -> None:
    docs = render(VALUE_SETS["gpu"])
    (sts,) = by_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert c["image"].endswith(":0.1.0-cu128")
    assert pod["nodeSelector"] == {"accelerator": "nvidia-l4"}
    keys = [t["key"] for t in pod["tolerations"]]
    assert keys == ["dedicated", "nvidia.com/gpu"]
    assert sts["spec"]["replicas"] == 3
    # the GPU set must not leak into the defaults (values are copied, not mutated)
    assert "nvidia.com/gpu" not in json.dumps(render({}))


def test_hpa() -> None:
    docs = render(VALUE_SETS["hpa"])
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    (sts,) = by_kind(docs, "StatefulSet")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"]
    }  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 12)
    names = [m["resource"]["name"] for m in hpa["spec"]["metrics"]]
    assert names == ["cpu", "memory"]
    assert "replicas" not in sts["spec"]  # the HPA owns the replica count
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]


def test_secrets_are_mounted_files_and_service_monitor() -> None:
    docs = render(VALUE_SETS["secure"])
    env = worker_env(docs)
    d = "/run/secrets/pmaint"
    assert env["PMAINT_KAFKA_SASL_PASSWORD_FILE"] == f"{d}/kafka-sasl/password"
    assert env["PMAINT_INFLUX_TOKEN_FILE"] == f"{d}/influx-token/token"
    assert env["PMAINT_INFLUX_PASSWORD_FILE"] == f"{d}/influx-password/password"
    assert env["PMAINT_WEB_TOKEN_FILE"] == f"{d}/web-token/token"
    assert env["PMAINT_KAFKA_SSL_CAFILE"] == f"{d}/kafka-tls/ca.crt"
    assert env["PMAINT_KAFKA_SSL_CERTFILE"] == f"{d}/kafka-tls/tls.crt"
    assert env["PMAINT_KAFKA_SSL_KEYFILE"] == f"{d}/kafka-tls/tls.key"
    (sts,) = by_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {
        "kafka-sasl": "kafka-user", "kafka-tls": "kafka-tls",
        "influx-token": "influx", "influx-password": "influx", "web-token": "pmaint-web",
    }  # fmt: skip
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    for name in secrets:
        assert mounts[name]["readOnly"] is True
        assert mounts[name]["mountPath"] == f"{d}/{name}"
    # no secret value anywhere in the manifests, no Secret objects made by the chart
    assert not by_kind(docs, "Secret")
    # the simulator gets the same Kafka credentials
    (sim,) = by_kind(docs, "Deployment")
    (sc,) = sim["spec"]["template"]["spec"]["containers"]
    assert sc["args"][:2] == ["produce", "--simulate"]
    assert {"name": "PMAINT_KAFKA_SASL_PASSWORD_FILE", "value": f"{d}/kafka-sasl/password"} in (
        sc["env"]
    )
    # ServiceMonitor: structure checked by hand (a CRD kubernetes-validate does not know)
    (sm,) = by_kind(docs, "ServiceMonitor")
    (svc,) = by_kind(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prom"
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()
    assert selector.items() <= svc["spec"]["selector"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["plant"]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "30s",
                        "scrapeTimeout": "10s"}  # fmt: skip
    assert svc["spec"]["ports"][0]["name"] == "http"


def test_env_covers_every_setting() -> None:
    """Each Settings field reaches the worker as PMAINT_<FIELD> (or its *_FILE twin)."""
    env = worker_env(render(VALUE_SETS["secure"]))
    for field in Settings.model_fields:
        name = f"PMAINT_{field.upper()}"
        if field in SECRET_FIELDS:
            assert f"{name}_FILE" in env and name not in env, field
        else:
            assert name in env, f"{name} not rendered"
    assert env["PMAINT_PARTITIONS"] == "12" and env["PMAINT_GROUP_REBALANCE_TIMEOUT_S"] == "60.5"
    assert env["PMAINT_KAFKA_BOOTSTRAP"] == "k1:9093,k2:9093"
    assert env["PMAINT_MAX_MESSAGE_BYTES"] == "2097152"  # not 2.097152e+06
    unknown = {k for k in env if k.startswith("PMAINT_")} - {
        f"PMAINT_{f.upper()}" + suffix for f in Settings.model_fields for suffix in ("", "_FILE")
    }
    assert not unknown


def test_rendered_config_is_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's values parse as pmaint settings (types and enums agree)."""
    env = worker_env(render({"config": {**FULL_CONFIG, "kafka_security_protocol": "SSL"}}))
    for key, value in env.items():
        if key.startswith("PMAINT_") and not key.endswith("_FILE"):
            monkeypatch.setenv(key, value)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.partitions == 12 and settings.kafka_security_protocol == "SSL"
    assert settings.max_message_bytes == 2097152 and settings.group_rebalance_timeout_s == 60.5


def test_values_config_matches_settings_and_schema() -> None:
    """A new setting needs a `config:` key in values.yaml and a property in the schema."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    exposed = set(Settings.model_fields) - CHART_MANAGED
    assert set(values["config"]) == exposed, "helm/pmaint/values.yaml config: out of date"
    schema_config = SCHEMA["properties"]["config"]["properties"]
    assert set(schema_config) == exposed, "values.schema.json config: out of date"
    for name, spec in schema_config.items():  # enums agree with the Literal types
        if "enum" in spec:
            literal = Settings.model_fields[name].annotation
            assert set(spec["enum"]) - {None} == set(typing.get_args(literal)), name


def test_dashboards_configmap_holds_the_dashboard_files() -> None:
    docs = render({"dashboards": {"enabled": True}})
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboards")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(cm["data"]) == {"pmaint-asset.json", "pmaint-fleet.json"}
    for name, text in cm["data"].items():
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"worker": {"replicas": "three"}}, "/worker/replicas"),
        ({"config": {"partitions": "many"}}, "/config/partitions"),
        ({"config": {"log_level": "verbose"}}, "/config/log_level"),
        ({"config": {"kafka_bootstrapp": "x:9092"}}, "kafka_bootstrapp"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as err:
        render(copy.deepcopy(values))
    assert where in str(err.value)
    errors = helm_python.lint(CHART, values)["errors"]
    assert errors and any(where in e for e in errors)


def test_schema_message_is_clear() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="got string, want integer"):
        render({"worker": {"replicas": "three"}})


def test_model_registry_volume_env_and_train_job() -> None:
    docs = render(VALUE_SETS["registry"])
    env = worker_env(docs)
    assert env["PMAINT_RUL_MODEL"] == "/models" and env["PMAINT_RUL_RELOAD_S"] == "10"
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (sts,) = by_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}  # fmt: skip
    assert claims == {"models": pvc["metadata"]["name"]}
    assert {"name": "models", "mountPath": "/models"} in pod["containers"][0]["volumeMounts"]
    (job,) = by_kind(docs, "Job")
    spec = job["spec"]["template"]["spec"]
    (train,) = spec["initContainers"]
    (promote,) = spec["containers"]
    assert train["args"][0] == "train" and "--simulated" in train["args"]
    assert train["args"][-3:] == ["--out", "/work/rul-model", "--force"]
    assert promote["args"] == ["models", "promote", "--registry", "/models", "/work/rul-model"]
    job_claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
                  if "persistentVolumeClaim" in v]  # fmt: skip
    assert job_claims == [pvc["metadata"]["name"]] and spec["restartPolicy"] == "Never"


def test_model_registry_on_an_existing_claim() -> None:
    docs = render(VALUE_SETS["registry-claim"])
    assert not by_kind(docs, "PersistentVolumeClaim") and not by_kind(docs, "Job")
    assert worker_env(docs)["PMAINT_RUL_MODEL"] == "/srv/m"
    (sts,) = by_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    volume = {"name": "models", "persistentVolumeClaim": {"claimName": "rul-models"}}
    assert volume in pod["volumes"]
    assert {"name": "models", "mountPath": "/srv/m"} in pod["containers"][0]["volumeMounts"]
    default = render({})
    assert "PMAINT_RUL_MODEL" not in worker_env(default)
    assert not by_kind(default, "PersistentVolumeClaim") and not by_kind(default, "Job")
