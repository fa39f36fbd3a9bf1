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

from streams.core.fleet import stored_alerts
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

    def time(self, r: int) -> float:
        """Round ``r``'s event time, in seconds."""
        return (self.base + r * 10_000) / 1000

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

    def saved() -> list[tuple[int, str, float]]:
        """The changelog's checkpoints: partition, asset, and the event time it last reported."""
        return [
            (m.partition, m.key.decode(), stored_alerts(m.value).seen)
            for m in read_topic(bootstrap, changelog)
        ]

    def last_reports_saved() -> bool:
        newest = {asset: seen for _, asset, seen in saved()}
        return newest == {**dict.fromkeys(LIVE, fleet.time(8)), "quiet": fleet.time(4)}

    def a_live_one_saved_after_quiet() -> bool:
        """The test broker (Tansu 0.6) reports a partition's end offset as its last batch's
        first offset + 1, so a restarted worker's recovery may stop short of the last batch's
        later records: quiet's checkpoint must not be in its partition's last batch."""
        messages = saved()
        partition = next(p for p, asset, _ in messages if asset == "quiet")
        _, last, seen = [m for m in messages if m[0] == partition][-1]
        return last != "quiet" and seen == fleet.time(9)

    try:
        fleet.rounds(0, 9)  # quiet reports until 40 s, the clock reaches 80 s: not stale yet
        wait_until(last_reports_saved, 60, "every asset's last report checkpointed")
        fleet.rounds(9, 10)  # saved later, so in a later batch than quiet's (50 s silent)
        wait_until(a_live_one_saved_after_quiet, 60, "a live asset beside quiet checkpointed")
    finally:
        first.kill()
    second = start_worker(env, tmp_path)  # a new data dir: the table comes from its changelog
    try:
        fleet.rounds(10, 25)
        alerts = env["PMAINT_TOPIC_ALERTS"]
        wait_until(lambda: "quiet" in stale_assets(bootstrap, alerts), 30, "quiet alerted")
    finally:
        fleet.gateway.close()
        second.kill()
    assert stale_assets(bootstrap, alerts) == {"quiet"}
