"""An asset that stops reporting gets its ``data_quality`` alert even when the worker does not
hold it in memory: evicted over the asset budget, or stored before a restart (a new worker
holds none of its partitions' assets until they report again).

A live fleet reports every 10 s of event time (which moves the fleet's clock); one asset
falls silent after 40 s; the alert is due once it has been silent for 60 s."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from streams.gateway import Gateway
from streams.harness import Server, start_worker, wait_until, worker_env
from streams.settings import load_settings
from tests.topics import read_alerts, read_topic

pytestmark = pytest.mark.integration

LIVE = [f"live-{i}" for i in range(6)]


class Fleet:
    """The live assets, and ``quiet`` until its last round."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        settings = load_settings(kafka_bootstrap=bootstrap, topic_telemetry=topic)
        self.gateway = Gateway(settings)
        self.rng = random.Random(7)
        self.base = int(time.time() * 1000) - 3_600_000

    def rounds(self, first: int, last: int, quiet_until: int = 5) -> None:
        for r in range(first, last):
            assets = LIVE + (["quiet"] if r < quiet_until else [])
            self.gateway.send(
                {"asset_id": a, "ts": self.base + r * 10_000, "sensors": {"s1": self.rng.random()}}
                for a in assets
            )
            time.sleep(0.25)


def stale_assets(bootstrap: str, topic: str) -> set[str]:
    return {
        e.asset_id
        for e in read_alerts(bootstrap, topic)
        if e.kind == "data_quality" and e.state == "open"
    }


def test_an_evicted_asset_that_falls_silent_is_alerted(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = tansu.extra["bootstrap"]
    env = worker_env(bootstrap, topic_prefix, alert_stale_after_s="60", asset_budget="3")
    worker = start_worker(env, tmp_path)
    fleet = Fleet(bootstrap, env["PMAINT_TOPIC_TELEMETRY"])
    try:
        fleet.rounds(0, 25)  # seven assets through a budget of three: each is evicted often
        alerts = env["PMAINT_TOPIC_ALERTS"]
        wait_until(lambda: "quiet" in stale_assets(bootstrap, alerts), 30, "quiet alerted")
        assert worker.metric("pmaint_evictions_total") > 25
        _, ready = worker.get("/ready")
        assert json.loads(ready)["assets"] <= 3
    finally:
        fleet.gateway.close()
        worker.kill()
    assert stale_assets(bootstrap, alerts) == {"quiet"}


def test_a_stored_asset_silent_across_a_restart_is_alerted(
    tansu: Server, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = tansu.extra["bootstrap"]
    env = worker_env(bootstrap, topic_prefix, alert_stale_after_s="60", checkpoint_interval_s="1")
    fleet = Fleet(bootstrap, env["PMAINT_TOPIC_TELEMETRY"])
    first = start_worker(env, tmp_path)
    changelog = f"{env['PMAINT_APP_ID']}-checkpoints-changelog"

    def saved_before_the_live_ones() -> bool:
        """Every asset's checkpoint is on the changelog, and the last one of quiet's partition
        is a live asset's: the test broker (Tansu 0.6) reports a partition's end offset as its
        last batch's first offset + 1, so a restarted worker's recovery may stop short of the
        last batch's later records; the live assets report again anyway."""
        messages = read_topic(bootstrap, changelog)
        keys = {m.key.decode() for m in messages}
        partition = next((m.partition for m in messages if m.key == b"quiet"), None)
        last = [m.key for m in messages if m.partition == partition][-1:]
        return keys == {*LIVE, "quiet"} and last != [b"quiet"]

    try:
        fleet.rounds(0, 9)  # quiet reports until 40 s, the clock reaches 80 s: not stale yet
        wait_until(saved_before_the_live_ones, 60, "every asset checkpointed")
    finally:
        first.kill()
    second = start_worker(env, tmp_path)  # a new data dir: the table comes from its changelog
    try:
        fleet.rounds(9, 25)
        alerts = env["PMAINT_TOPIC_ALERTS"]
        wait_until(lambda: "quiet" in stale_assets(bootstrap, alerts), 30, "quiet alerted")
    finally:
        fleet.gateway.close()
        second.kill()
    assert stale_assets(bootstrap, alerts) == {"quiet"}
