"""One typed settings object, built once from ``PMAINT_*`` env vars and an optional TOML file.

Precedence: explicit arguments > environment > config file (``PMAINT_CONFIG``) > defaults.
Every secret has a ``*_FILE`` twin (``PMAINT_INFLUX_TOKEN_FILE=/run/secrets/token``) and is typed
``SecretStr``, so it never shows in logs or reprs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from models.errors import ConfigError

SECRET_FIELDS = ("kafka_sasl_password", "influx_token", "influx_password", "web_token")


class _TomlFile(PydanticBaseSettingsSource):
    """Settings from the TOML file named by ``PMAINT_CONFIG`` (keys without the prefix)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("PMAINT_CONFIG")
        if not path:
            return {}
        try:
            return tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"PMAINT_CONFIG={path}: {exc}") from None


class Settings(BaseSettings):
    """All pmaint settings; env var = ``PMAINT_`` + upper-case field name."""

    model_config = SettingsConfigDict(env_prefix="PMAINT_", extra="forbid", frozen=True)

    # Kafka
    kafka_bootstrap: str = Field("localhost:9092", min_length=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_connect_timeout_s: float = Field(10.0, gt=0)
    app_id: str = Field("pmaint", min_length=1)
    topic_telemetry: str = Field("pm.telemetry", min_length=1)
    topic_dlq: str = Field("pm.telemetry.dlq", min_length=1)
    topic_alerts: str = Field("pm.alerts", min_length=1)
    partitions: int = Field(4, ge=1, le=10_000)
    group_session_timeout_s: float = Field(10.0, gt=0)
    group_rebalance_timeout_s: float = Field(10.0, gt=0)
    replication_factor: int = Field(1, ge=1, le=10)

    # Input limits (dead-letter rules)
    max_message_bytes: int = Field(1_048_576, ge=1024)
    max_inflated_batch_bytes: int = Field(33_554_432, ge=1024)
    max_frame_records: int = Field(10_000, ge=1)
    max_sensors: int = Field(1_000, ge=1)
    max_future_s: float = Field(3600.0, ge=0)
    max_sensors_per_asset: int = Field(1_000, ge=1)

    # Worker
    web_host: str = "0.0.0.0"
    web_port: int = Field(6066, ge=1, le=65535)
    web_token: SecretStr | None = None
    web_idle_timeout_s: float = Field(15.0, gt=0)
    web_page_max: int = Field(500, ge=1, le=100_000)
    data_dir: Path = Path(".pmaint")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    ready_send_failure_s: float = Field(30.0, gt=0)
    fetch_max_wait_ms: int = Field(20, ge=1, le=60_000)
    batch_max_records: int = Field(1000, ge=1)
    batch_budget_ms: float = Field(20.0, gt=0)
    batch_fill_ms: float = Field(5.0, gt=0)
    gc_freeze_s: float = Field(10.0, ge=0)

    # InfluxDB (v2: token/org/bucket; v1: database/username/password)
    influx_url: str | None = None
    influx_api: Literal["auto", "v1", "v2"] = "auto"
    influx_token: SecretStr | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_database: str | None = None
    influx_retention_policy: str | None = None
    influx_username: str | None = None
    influx_password: SecretStr | None = None

    # Anomaly models (per asset, online)
    anomaly_warm_up: int = Field(300, ge=0)
    anomaly_quantile: float = Field(0.95, gt=0, lt=1)
    anomaly_learn_flagged: bool = False
    anomaly_every: int = Field(1, ge=1)
    policy_file: Path | None = None  # TOML: detector settings by asset pattern or type
    checkpoint_every: int = Field(100, ge=1)
    checkpoint_interval_s: float = Field(30.0, gt=0)
    asset_budget: int = Field(100_000, ge=0)

    # RUL forecaster
    rul_model: Path | None = None  # an artifact, or a registry (models.rul.registry)
    rul_reload_s: float = Field(30.0, gt=0)
    rul_required: bool = False
    rul_device: Literal["auto", "cpu", "cuda"] = "auto"
    rul_every: int = Field(1, ge=1)
    rul_threads: int = Field(0, ge=0)  # torch's CPU threads; 0: one per core but the loop's

    # Alerts
    alert_debounce_records: int = Field(12, ge=1)
    alert_debounce_s: float = Field(3600.0, ge=0)
    alert_cooldown_s: float = Field(900.0, ge=0)
    alert_update_every_s: float = Field(3600.0, gt=0)
    alert_rul_warning: float = Field(50.0, ge=0)
    alert_rul_critical: float = Field(25.0, ge=0)
    alert_stale_after_s: float = Field(600.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFile(settings_cls))

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("SASL needs PMAINT_KAFKA_SASL_USERNAME and PMAINT_KAFKA_SASL_PASSWORD")
        if self.max_inflated_batch_bytes < self.max_message_bytes:
            raise ValueError("PMAINT_MAX_INFLATED_BATCH_BYTES must be >= PMAINT_MAX_MESSAGE_BYTES")
        if self.web_token is not None and len(self.web_token.get_secret_value().strip()) < 8:
            raise ValueError("PMAINT_WEB_TOKEN must have at least 8 characters")
        if len({self.topic_telemetry, self.topic_dlq, self.topic_alerts}) < 3:
            raise ValueError("telemetry, dead-letter and alert topics must differ")
        return self

    def kafka_url(self) -> str:
        """Bootstrap servers as a faust broker URL list (``kafka://h1:9092;kafka://h2:9092``)."""
        hosts = [h.strip() for h in self.kafka_bootstrap.split(",") if h.strip()]
        return ";".join(h if "://" in h else f"kafka://{h}" for h in hosts)

    def producer_max_request_bytes(self) -> int:
        """The producer's request limit: forwarded frames can be as large as the largest
        accepted message (checkpoints are checked against it too)."""
        return max(1_048_576, self.max_message_bytes + 262_144)

    def bootstrap_servers(self) -> list[str]:
        """Bootstrap servers as ``host:port`` strings for kafka-python and aiokafka."""
        return [h.split("://")[-1] for h in self.kafka_url().split(";")]


def default(name: str) -> Any:
    """The default of setting ``name``: the config dataclasses of the worker take theirs from
    here, so each default is written once.

    >>> default("checkpoint_every")
    100
    """
    return Settings.model_fields[name].default


def _secret_files() -> dict[str, str]:
    """Read ``PMAINT_<SECRET>_FILE`` env vars into secret values."""
    values = {}
    for name in SECRET_FIELDS:
        path = os.environ.get(f"PMAINT_{name.upper()}_FILE")
        if path:
            try:
                values[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"PMAINT_{name.upper()}_FILE: {exc.strerror}: {path}") from None
    return values


def _source_of(key: str, values: dict[str, Any]) -> str:
    """Where a setting came from, as the user wrote it: the env var, or the config file's key."""
    env = f"PMAINT_{key.upper()}"
    path = os.environ.get("PMAINT_CONFIG")
    if key in values or env in os.environ or f"{env}_FILE" in os.environ or not path:
        return env
    return f"{path}: {key}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning any validation problem into one clear ``ConfigError`` line.

    >>> load_settings(partitions=8).partitions
    8
    >>> load_settings(partitions="many")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    models.errors.ConfigError: PMAINT_PARTITIONS: Input should be a valid integer, ... (got 'many')
    """
    values = {**_secret_files(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _source_of(str(err["loc"][0]), values) if err["loc"] else ""
        got = "" if where == "" or "input" not in err else f" (got {err['input']!r})"
        shown = got if not any(s in where.lower() for s in SECRET_FIELDS) else ""
        prefix = f"{where}: " if where else "settings: "
        raise ConfigError(f"{prefix}{err['msg'].removeprefix('Value error, ')}{shown}") from None
