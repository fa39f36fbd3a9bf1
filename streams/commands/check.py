"""``pmaint check``: connect to Kafka and InfluxDB with the current settings, say what works."""

from __future__ import annotations

import argparse

from models.errors import PmaintError
from streams.kafka_clients import admin_client
from streams.redact import redact_text
from streams.settings import Settings, load_settings
from streams.sinks import influx

EXAMPLES = """examples:
  pmaint check
  PMAINT_KAFKA_BOOTSTRAP=kafka:9092 PMAINT_INFLUX_URL=http://influx:8086 pmaint check"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: everything comes from the settings


def check_kafka(settings: Settings) -> str:
    admin = admin_client(settings)
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    ours = [t for t in (settings.topic_telemetry, settings.topic_dlq, settings.topic_alerts)]
    missing = [t for t in ours if t not in topics]
    note = f"; missing topics (a worker creates them): {', '.join(missing)}" if missing else ""
    where = f"{redact_text(settings.kafka_bootstrap)} over {settings.kafka_security_protocol}"
    return f"reachable at {where}, {len(topics)} topics{note}"


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    failures = 0
    probes = [("kafka", check_kafka)]
    if settings.influx_url:
        probes.append(("influxdb", influx.check))
    else:
        print("influxdb: not configured (set PMAINT_INFLUX_URL); points are not written")
    for name, probe in probes:
        try:
            print(f"{name}: ok: {redact_text(probe(settings))}")
        except PmaintError as exc:
            failures += 1
            print(f"{name}: FAILED: {redact_text(str(exc))}")
    return 1 if failures else 0
