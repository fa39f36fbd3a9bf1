"""Settings: env, config file, secret files, one-line errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ConfigError
from streams.settings import load_settings


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pmaint.toml"
    config.write_text('partitions = 8\ntopic_alerts = "plant.alerts"\n')
    monkeypatch.setenv("PMAINT_CONFIG", str(config))
    monkeypatch.setenv("PMAINT_PARTITIONS", "12")
    s = load_settings()
    assert (s.partitions, s.topic_alerts) == (12, "plant.alerts")


def test_secret_from_file_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-token\n")
    monkeypatch.setenv("PMAINT_INFLUX_TOKEN_FILE", str(secret))
    s = load_settings()
    assert s.influx_token is not None
    assert s.influx_token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.model_dump())


def test_bad_values_give_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMAINT_WEB_PORT", "70000")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value).startswith("PMAINT_WEB_PORT: ")
    assert "\n" not in str(exc.value)


def test_unknown_key_in_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pmaint.toml"
    config.write_text("partitionz = 8\n")
    monkeypatch.setenv("PMAINT_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"pmaint\.toml: partitionz: "):
        load_settings()


def test_bad_value_in_file_names_the_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pmaint.toml"
    config.write_text('partitions = "many"\n')
    monkeypatch.setenv("PMAINT_CONFIG", str(config))
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value).startswith(f"{config}: partitions: ")
    assert "PMAINT_PARTITIONS" not in str(exc.value)


def test_sasl_needs_credentials_and_hides_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMAINT_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ConfigError, match="SASL needs"):
        load_settings()
    monkeypatch.setenv("PMAINT_KAFKA_SASL_USERNAME", "gw")
    monkeypatch.setenv("PMAINT_KAFKA_SASL_PASSWORD", "hunter2")
    s = load_settings()
    assert "hunter2" not in repr(s)


def test_bootstrap_list() -> None:
    s = load_settings(kafka_bootstrap="k1:9092, kafka://k2:9093")
    assert s.kafka_url() == "kafka://k1:9092;kafka://k2:9093"
    assert s.bootstrap_servers() == ["k1:9092", "k2:9093"]


def test_web_token_from_file_and_too_short_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "web-token"
    secret.write_text("a-long-enough-token\n")
    monkeypatch.setenv("PMAINT_WEB_TOKEN_FILE", str(secret))
    settings = load_settings()
    assert settings.web_token is not None
    assert settings.web_token.get_secret_value() == "a-long-enough-token"
    assert "a-long-enough-token" not in repr(settings)
    secret.write_text("short")
    with pytest.raises(ConfigError, match="PMAINT_WEB_TOKEN must have at least 8") as err:
        load_settings()
    assert "short" not in str(err.value)
