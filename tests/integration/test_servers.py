"""The fixtures start real servers that answer on their protocols."""

from __future__ import annotations

import urllib.request

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from streams.harness import Server

pytestmark = pytest.mark.integration


def test_tansu_creates_topics(tansu: Server, topic_prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=tansu.extra["bootstrap"])
    try:
        admin.create_topics([NewTopic(f"{topic_prefix}.x", 3, 1)])
        assert f"{topic_prefix}.x" in admin.list_topics()
    finally:
        admin.close()


def test_influxdb1_answers_ping(influxdb1: Server) -> None:
    with urllib.request.urlopen(influxdb1.extra["url"] + "/ping") as r:
        assert r.status == 204
        assert r.headers["X-Influxdb-Version"].startswith("1.")


def test_victoriametrics_accepts_v2_write(victoriametrics: Server) -> None:
    req = urllib.request.Request(
        victoriametrics.extra["url"] + "/api/v2/write?bucket=b&org=o",
        data=b"rul,asset_id=a rul=1 1700000000000000000",
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
