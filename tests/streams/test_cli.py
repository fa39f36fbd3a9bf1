"""The command line: help with examples, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

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
