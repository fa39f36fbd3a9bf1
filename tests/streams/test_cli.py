"""The command line: help with examples, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.cli import COMMANDS, GROUPS, build_parser, main


def pmaint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def test_every_command_has_help_with_examples() -> None:
    names = [*COMMANDS, *GROUPS, *(n for g in GROUPS.values() for n in g[1])]
    parser = build_parser(names)
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    subs = {(n, ""): p for n, p in commands.items()}
    for group in GROUPS:
        choices = commands[group]._subparsers._group_actions[0].choices
        subs |= {(group, n): p for n, p in choices.items()}
    assert len(subs) == len(names)
    for (group, name), sub in subs.items():
        assert "example" in (sub.epilog or ""), (group, name)
        assert sub.description, (group, name)


def test_bad_argument_is_one_line() -> None:
    result = pmaint("produce", "--simulate", "--rate", "fast")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "invalid" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("models", "promote", "ARTIFACT"), "required: --registry"),
        (("models", "promote", "--registry", "/tmp/r", "a", "--asset-type", "a/b"), "asset type"),
        (("models", "promote", "--registry", "/tmp/r", "/nonexistent"), "no RUL model artifact"),
        (("models", "list", "--registry", "/nonexistent"), "no model registry"),
        (("models", "lst"), "invalid choice"),
    ],
)
def test_models_bad_arguments_are_one_line(args: tuple[str, ...], says: str) -> None:
    result = pmaint(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_one_line() -> None:
    import os

    env = {**os.environ, "PMAINT_PARTITIONS": "-3"}
    result = pmaint("check", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pmaint: error: PMAINT_PARTITIONS")
    assert result.stderr.count("\n") == 1


def test_unreachable_kafka_is_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMAINT_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("PMAINT_KAFKA_CONNECT_TIMEOUT_S", "1")
    assert main(["check"]) == 1
    assert "kafka: FAILED" in capsys.readouterr().out


def _no_broker_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PMAINT_")}
    return env | {"PMAINT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "PMAINT_KAFKA_CONNECT_TIMEOUT_S": "10"}


def test_missing_replay_file_is_reported_before_connecting(tmp_path: Path) -> None:
    started = time.monotonic()
    result = pmaint("produce", "--replay", str(tmp_path / "missing.txt"), env=_no_broker_env())
    assert result.returncode == 2
    assert result.stderr == f"pmaint: error: {tmp_path / 'missing.txt'}: no such file\n"
    assert time.monotonic() - started < 8  # the 10 s broker timeout was never waited for


def test_alerts_without_a_broker_is_one_line() -> None:
    result = pmaint("alerts", env=_no_broker_env())
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "pmaint: error: cannot read pm.alerts from Kafka at 127.0.0.1:1"
    )
    assert "Unclosed" not in result.stderr and result.stdout == ""


def test_help_shows_defaults_and_every_evaluation() -> None:
    demo = pmaint("demo", "--help").stdout
    assert "--duration DURATION   seconds to run (default: 60.0)" in demo
    assert "(default: None)" not in demo and "(default: False)" not in demo
    evaluate = pmaint("evaluate", "--help").stdout
    for flag in ("--nab", "--shuttle", "--cmapss"):
        assert f"pmaint evaluate anomaly {flag}" in evaluate, flag
