"""Alerts published to a real Tansu topic, read back with ``pmaint alerts``."""

from __future__ import annotations

import argparse
import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models.errors import ConfigError
from streams.commands import alerts as cmd
from streams.core.alert_book import AlertBook
from streams.core.alert_policy import AlertPolicy
from streams.core.alerts import AlertEvent
from streams.core.signals import AnomalySignal, RulSignal
from streams.harness import Server
from streams.kafka_clients import ensure_topics
from streams.settings import load_settings
from streams.sinks.kafka import AlertPublisher

pytestmark = pytest.mark.integration


def make_events() -> list[AlertEvent]:
    engine = AlertBook(AlertPolicy(debounce_records=1))
    events = engine.observe(AnomalySignal("asset-003", 100, 0.93, 0.62, [("s4", 1.0)], "v1"))
    events += engine.observe(RulSignal("asset-007", 101, 23, 14, 31, [("s11", 0.4)], "m3"))
    events += engine.observe(AnomalySignal("asset-003", 102, 0.1, 0.62))
    return events


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def published(
    tansu: Server, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> list[AlertEvent]:
    monkeypatch.setenv("PMAINT_KAFKA_BOOTSTRAP", tansu.extra["bootstrap"])
    monkeypatch.setenv("PMAINT_TOPIC_ALERTS", f"{topic_prefix}.alerts")
    monkeypatch.setenv("PMAINT_TOPIC_TELEMETRY", f"{topic_prefix}.telemetry")
    monkeypatch.setenv("PMAINT_TOPIC_DLQ", f"{topic_prefix}.dlq")
    settings = load_settings(partitions=2)
    ensure_topics(settings)
    events = make_events()

    async def go() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers())
        await producer.start()
        try:
            return await AlertPublisher(producer, settings.topic_alerts).publish(events)
        finally:
            await producer.stop()

    assert asyncio.run(go()) == 3
    return events


def test_json_lines_round_trip(
    published: list[AlertEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cmd.run(parse("--json")) == 0
    lines = capsys.readouterr().out.splitlines()
    got = sorted((AlertEvent.from_json(line) for line in lines), key=lambda e: (e.ts, e.asset_id))
    assert got == sorted(published, key=lambda e: (e.ts, e.asset_id))
    assert all(orjson.loads(line)["ts"].endswith("Z") for line in lines)


def test_filters(published: list[AlertEvent], capsys: pytest.CaptureFixture[str]) -> None:
    cmd.run(parse("--json", "--asset", "asset-003"))
    assert {orjson.loads(x)["state"] for x in capsys.readouterr().out.splitlines()} == {
        "open", "resolved",
    }  # fmt: skip
    cmd.run(parse("--json", "--severity", "critical"))
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["kind"] == "rul"
    cmd.run(parse("--json", "--kind", "anomaly", "--kind", "drift"))
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_human_lines(published: list[AlertEvent], capsys: pytest.CaptureFixture[str]) -> None:
    cmd.run(parse("--kind", "rul"))
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("1970-01-01T00:01:41.000Z  CRITICAL  open")
    assert line.endswith("asset-007: RUL 23 cycles (P10 14, P90 31); s11 rising")
    assert "\x1b[" not in line  # no colour when not a terminal


def test_missing_topic_is_a_clear_error(tansu: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMAINT_KAFKA_BOOTSTRAP", tansu.extra["bootstrap"])
    monkeypatch.setenv("PMAINT_TOPIC_ALERTS", "no.such.topic.here")
    with pytest.raises(ConfigError, match="does not exist"):
        cmd.run(parse())
