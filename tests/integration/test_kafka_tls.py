"""Kafka over TLS for real: Tansu behind stunnel4, a throwaway CA, the worker, ``pmaint produce``
and ``pmaint alerts`` with ``PMAINT_KAFKA_SECURITY_PROTOCOL=SSL``; a wrong CA is one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.harness import run_pmaint, start_worker, wait_until, worker_env
from streams.tls_harness import TlsBroker, make_ca, start_tls_tansu

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    broker = start_tls_tansu(tmp_path_factory.mktemp("tansu-tls"))
    yield broker
    broker.stop()


def tls_env(broker: TlsBroker, prefix: str, cafile: Path, **settings: str) -> dict[str, str]:
    return worker_env(
        broker.bootstrap, prefix, kafka_security_protocol="SSL", kafka_ssl_cafile=str(cafile),
        kafka_connect_timeout_s="5", **settings,
    )  # fmt: skip


def test_worker_produce_and_alerts_over_tls(
    tls_broker: TlsBroker, topic_prefix: str, tmp_path: Path
) -> None:
    env = tls_env(
        tls_broker, topic_prefix, tls_broker.ca.cert,
        anomaly_warm_up="20", alert_debounce_records="1", partitions="2",
    )  # fmt: skip
    worker = start_worker(env, tmp_path)
    try:
        sent = run_pmaint(env, "produce", "--simulate", "--assets", "4", "--records", "400",
                          "--frame", "20", "--faults", "1.0", "--seed", "5")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: worker.metric("pmaint_records_total", outcome="ok") >= 400, 90, "ok")
        wait_until(lambda: worker.metric("pmaint_alerts_total") >= 1, 30, "an alert")
        published = worker.metric("pmaint_alerts_total")
        tail = run_pmaint(env, "alerts", "--json")
        assert tail.returncode == 0, tail.stderr
        events = [json.loads(line) for line in tail.stdout.splitlines()]
        assert len(events) == published
        assert {e["asset_id"] for e in events} <= {f"asset-{i:03d}" for i in range(4)}
    finally:
        worker.kill()


def test_wrong_ca_is_one_clear_line(
    tls_broker: TlsBroker, topic_prefix: str, tmp_path: Path
) -> None:
    other = make_ca(tmp_path, "not-the-broker-ca")
    env = tls_env(tls_broker, topic_prefix, other.cert)
    for args in (
        ("produce", "--simulate", "--assets", "1", "--records", "5"),
        ("alerts",),
        ("worker",),
        ("check",),
    ):
        done = run_pmaint(env, *args)
        out = done.stderr if args[0] != "check" else done.stdout
        assert done.returncode != 0, args
        line = [x for x in out.splitlines() if "TLS handshake failed" in x]
        assert len(line) == 1, (args, out)
        assert "unable to get local issuer certificate" in line[0]
        assert "Traceback" not in done.stderr, args
        if args[0] != "check":
            assert done.stderr.count("\n") == 1, (args, done.stderr)
