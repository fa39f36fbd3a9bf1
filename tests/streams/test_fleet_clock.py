"""The fleet clock (issue 13, D7): robust to a few gateways ahead, still moves when assets stop."""

from __future__ import annotations

import math

from streams.core.alert_book import AlertBook
from streams.core.alert_policy import AlertPolicy
from streams.core.fleet_clock import FleetClock
from streams.core.signals import ReadingSignal


def test_no_clock_before_a_quorum_of_assets_voted() -> None:
    clock = FleetClock(quorum=3)
    clock.observe("a", 10.0)
    clock.observe("a", 20.0)  # one asset, however chatty, is one vote
    assert clock.advance(fleet_size=5) == -math.inf
    clock.observe("b", 12.0)
    clock.observe("c", 11.0)
    assert clock.advance(fleet_size=5) == 12.0  # lower median of 20, 12, 11


def test_small_fleets_need_fewer_votes() -> None:
    clock = FleetClock(quorum=3)
    clock.observe("only", 5.0)
    assert clock.advance(fleet_size=1) == 5.0
    clock = FleetClock(quorum=3)
    clock.observe("ok", 100.0)
    clock.observe("ahead", 1300.0)
    assert clock.advance(fleet_size=2) == 100.0  # the lower of two: the one ahead loses


def test_gateways_ahead_do_not_move_it_and_it_never_goes_back() -> None:
    clock = FleetClock()
    for i in range(10):
        clock.observe(f"live-{i}", 1000.0 + i)
    for i in range(4):  # a gateway 58 min ahead with 4 of the 14 reporting assets
        clock.observe(f"ahead-{i}", 1000.0 + 58 * 60)
    assert clock.advance(fleet_size=14) == 1006.0
    for i in range(3):
        clock.observe(f"late-{i}", 10.0)
    assert clock.advance(fleet_size=14) == 1006.0


def test_assets_that_stop_do_not_hold_it_back() -> None:
    clock = FleetClock()
    for t in range(0, 1000, 100):
        for i in range(10):
            if i < 3 or t < 200:  # 7 of 10 assets stop at t=100
                clock.observe(f"a{i}", float(t))
        clock.advance(fleet_size=10)
    assert clock.now == 900.0


def test_staleness_with_the_fleet_clock_only_flags_silent_assets() -> None:
    engine = AlertBook(AlertPolicy(stale_after_s=600))
    clock = FleetClock()
    events = []
    for t in range(0, 3600, 60):
        for asset in ("a", "b", "c", "quiet"):
            if asset != "quiet" or t < 600:
                engine.observe(ReadingSignal(asset, float(t), {"s1": float(t)}))
                clock.observe(asset, float(t))
        if t == 1800:  # one new asset, its gateway 58 min ahead
            engine.observe(ReadingSignal("ahead", t + 3480.0, {"s1": 1.0}))
            clock.observe("ahead", t + 3480.0)
        events += engine.tick(clock.advance(fleet_size=len(engine)))
    opened = {e.asset_id for e in events if e.kind == "data_quality" and e.state == "open"}
    assert opened == {"quiet"}
