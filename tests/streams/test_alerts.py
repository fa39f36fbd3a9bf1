"""The alert lifecycle state machine (pure: no servers)."""

from __future__ import annotations

import pickle
from collections import defaultdict

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import ConfigError, DataError
from streams.core.alert_book import AlertBook
from streams.core.alert_event import alert_id
from streams.core.alert_policy import AlertPolicy
from streams.core.alerts import AlertEvent
from streams.core.signals import AnomalySignal, DriftSignal, ReadingSignal, RulSignal, Signal

POLICY = AlertPolicy(
    debounce_records=3, debounce_s=300, cooldown_s=600, update_every_s=1800,
    drift_quiet_s=900, stale_after_s=300, stale_critical_s=1200, stuck_records=5,
)  # fmt: skip


def anomaly(ts: float, score: float, asset: str = "a1") -> AnomalySignal:
    return AnomalySignal(asset, ts, score, 1.0, [("s4", 0.6), ("s9", -0.3)], "v1")


def feed(engine: AlertBook, signals: list[Signal]) -> list[AlertEvent]:
    return [e for s in signals for e in engine.observe(s)]


def states(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.state, e.severity) for e in events]


def test_debounce_needs_k_consecutive_records() -> None:
    engine = AlertBook(POLICY)
    assert feed(engine, [anomaly(0, 1.2), anomaly(10, 1.2), anomaly(20, 0.9)]) == []
    events = feed(engine, [anomaly(30, 1.2), anomaly(40, 1.2), anomaly(50, 1.2)])
    assert states(events) == [("open", "info")]
    assert events[0].opened_at == 50


def test_debounce_by_time_opens_a_slow_stream() -> None:
    engine = AlertBook(POLICY)
    assert feed(engine, [anomaly(0, 1.6)]) == []
    assert states(feed(engine, [anomaly(300, 1.6)])) == [("open", "warning")]


def test_hysteresis_keeps_alert_open_between_exit_and_enter() -> None:
    engine = AlertBook(POLICY)
    feed(engine, [anomaly(t, 1.2) for t in (0, 1, 2)])
    assert feed(engine, [anomaly(3, 0.9), anomaly(4, 0.85)]) == []  # in the band: still open
    events = feed(engine, [anomaly(5, 0.5)])
    assert states(events) == [("resolved", "info")]
    assert "resolved" in events[0].message


def test_severity_change_is_an_update_and_periodic_updates() -> None:
    engine = AlertBook(POLICY)
    feed(engine, [anomaly(t, 1.2) for t in (0, 1, 2)])
    assert states(feed(engine, [anomaly(3, 2.5)])) == [("update", "critical")]
    assert feed(engine, [anomaly(100, 2.5)]) == []
    assert states(feed(engine, [anomaly(3 + 1800, 2.4)])) == [("update", "critical")]
    assert states(feed(engine, [anomaly(3 + 1801, 1.6)])) == [("update", "warning")]


def test_cooldown_before_reopening_and_new_id() -> None:
    engine = AlertBook(POLICY)
    first = feed(engine, [anomaly(t, 1.2) for t in (0, 1, 2)])
    feed(engine, [anomaly(10, 0.1)])
    assert feed(engine, [anomaly(t, 1.2) for t in range(20, 600, 10)]) == []
    again = feed(engine, [anomaly(t, 1.2) for t in (610, 620, 630)])
    assert states(again) == [("open", "info")]
    assert again[0].alert_id != first[0].alert_id


def test_rul_levels_and_message() -> None:
    engine = AlertBook(POLICY)
    sig = [
        RulSignal("asset-007", t, 23, 14, 31, [("s11", 0.4), ("s7", 0.2)], "m3") for t in (0, 1, 2)
    ]
    (event,) = feed(engine, list(sig))
    assert (event.kind, event.severity, event.rul_p10) == ("rul", "critical", 14)
    assert event.message == "asset-007: RUL 23 cycles (P10 14, P90 31); s11 and s7 rising"
    assert feed(engine, [RulSignal("asset-007", 3, 80, 55, 90)]) == []  # under exit 50 + 10
    assert states(feed(engine, [RulSignal("asset-007", 4, 90, 61, 99)])) == [
        ("resolved", "critical")
    ]


def test_rul_message_out_of_domain_in_hours() -> None:
    engine = AlertBook(POLICY)
    sig = [
        RulSignal("pump-2", t, 20, 9, 44, (), "m4", in_domain=False, unit="hours",
                  data_source="C-MAPSS FD001") for t in (0, 1, 2)
    ]  # fmt: skip
    (event,) = feed(engine, list(sig))
    assert event.message == (
        "pump-2: RUL 20 hours (P10 9, P90 44); model trained on C-MAPSS FD001, "
        "this asset looks different"
    )


def test_anomaly_message() -> None:
    engine = AlertBook(POLICY)
    signals = [
        AnomalySignal("asset-003", t, 0.93, 0.62, [("s4", 1.0), ("s9", -0.5)]) for t in (0, 1, 2)
    ]
    (event,) = feed(engine, list(signals))
    assert (
        event.message == "asset-003: anomaly score 0.93 over threshold 0.62 (x1.5); s4 up, s9 down"
    )


def test_drift_opens_at_once_and_resolves_after_quiet_period() -> None:
    engine = AlertBook(POLICY)
    (opened,) = engine.observe(DriftSignal("a1", 0, ["s3"], "up"))
    assert (opened.state, opened.severity, opened.kind) == ("open", "info", "drift")
    assert states(engine.observe(DriftSignal("a1", 100, ["s3", "s4", "s7"]))) == [
        ("update", "warning")
    ]
    drift = [e for e in engine.tick(900) if e.kind == "drift"]
    assert drift == []  # quiet for 800 s only
    assert [(e.kind, e.state) for e in engine.tick(1000)] == [("drift", "resolved")]


def test_stale_asset_found_by_tick_and_resolved_by_data() -> None:
    engine = AlertBook(POLICY)
    engine.observe(ReadingSignal("a1", 0, {"s1": 1.0}))
    engine.observe(ReadingSignal("a2", 0, {"s1": 1.0}))
    engine.observe(ReadingSignal("a2", 250, {"s1": 2.0}))
    (stale,) = engine.tick(300)
    assert (stale.asset_id, stale.kind, stale.state, stale.severity) == (
        "a1", "data_quality", "open", "warning",
    )  # fmt: skip
    assert stale.message == "a1: no data for 5 min"
    assert engine.tick(400) == []
    assert [(e.asset_id, e.state, e.severity) for e in engine.tick(1200)] == [
        ("a1", "update", "critical"), ("a2", "open", "warning"),
    ]  # fmt: skip
    assert states(engine.observe(ReadingSignal("a1", 1300, {"s1": 3.0}))) == [
        ("resolved", "critical")
    ]


def test_stuck_sensor_after_m_identical_values() -> None:
    engine = AlertBook(POLICY)
    warm = [ReadingSignal("a1", -2, {"s1": 4.0, "s2": 0.0})]  # s1 has varied before
    events = feed(
        engine, warm + [ReadingSignal("a1", t, {"s1": 5.0, "s2": float(t)}) for t in range(5)]
    )
    assert states(events) == [("open", "warning")]
    assert events[0].top_sensors == (("s1", 5.0),)
    assert "s1 stuck at 5 for 5 records" in events[0].message
    assert states(engine.observe(ReadingSignal("a1", 5, {"s1": 6.0, "s2": 5.0}))) == [
        ("resolved", "warning")
    ]


def test_constant_by_design_is_not_stuck() -> None:
    engine = AlertBook(AlertPolicy(stuck_records=3))
    assert feed(engine, [ReadingSignal("a1", t, {"s1": 5.0, "s2": t}) for t in range(10)]) == []


def test_stuck_ignore_list() -> None:
    engine = AlertBook(AlertPolicy(stuck_records=3, stuck_ignore=frozenset({"s1"})))
    assert feed(engine, [ReadingSignal("a1", t, {"s1": 5.0}) for t in range(10)]) == []


def test_replay_gives_identical_events_and_ids() -> None:
    signals: list[Signal] = [anomaly(t, 1.5 if 10 <= t < 40 else 0.2) for t in range(60)]
    signals += [RulSignal("a1", 60 + t, 20, 20 - t / 10, 40) for t in range(10)]
    first, second = feed(AlertBook(POLICY), signals), feed(AlertBook(POLICY), signals)
    assert first == second and first
    assert first[0].alert_id == alert_id("a1", "anomaly", first[0].opened_at)


def test_state_round_trip_continues_identically() -> None:
    signals: list[Signal] = [anomaly(t, 1.5) for t in range(5)]
    signals += [ReadingSignal("a1", t, {"s1": 1.0, "s2": 2.0}) for t in range(5, 8)]
    signals += [DriftSignal("a2", 3, ["s1"])]
    rest: list[Signal] = [anomaly(t, 0.1) for t in range(8, 10)]
    rest += [ReadingSignal("a1", t, {"s1": 1.0, "s2": 2.0}) for t in range(10, 14)]
    a = AlertBook(POLICY)
    feed(a, signals)
    blob = orjson.dumps(a.to_dict())
    b = AlertBook.from_dict(orjson.loads(blob), POLICY)
    assert b.to_dict() == a.to_dict()
    assert feed(b, rest) + b.tick(5000) == feed(a, rest) + a.tick(5000)
    assert pickle.loads(pickle.dumps(a.to_dict())) == a.to_dict()


def test_event_json_round_trip_and_contract() -> None:
    (event,) = feed(AlertBook(POLICY), [anomaly(1700000000.123 + t, 1.7) for t in range(3)])
    data = orjson.loads(event.to_json())
    assert data["opened_at"] == "2023-11-14T22:13:22.123Z"
    assert data["top_sensors"] == [["s4", 0.6], ["s9", -0.3]]
    assert {"alert_id", "asset_id", "kind", "severity", "state", "ts", "score", "threshold",
            "rul", "rul_p10", "rul_p90", "model_version", "message"} <= set(data)  # fmt: skip
    assert AlertEvent.from_json(event.to_json()) == event
    with pytest.raises(DataError):
        AlertEvent.from_json(b'{"kind": "nope"}')


def test_policy_validation() -> None:
    with pytest.raises(ConfigError):
        AlertPolicy(anomaly_levels=(2.0, 1.5, 1.0))
    with pytest.raises(ConfigError):
        AlertPolicy(rul_levels=(None, None, None))


def test_state_per_asset_is_small() -> None:
    """10,000 assets with anomaly, RUL and 14-sensor reading state fit in a few MB."""
    import tracemalloc

    engine = AlertBook()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(10_000):
        asset = f"asset-{i:05d}"
        for t in range(4):
            engine.observe(AnomalySignal(asset, t, 1.6, 1.0))
            engine.observe(RulSignal(asset, t, 40, 30, 60))
            engine.observe(ReadingSignal(asset, t, {f"s{k}": float(k + t) for k in range(14)}))
    per_asset = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    tracemalloc.stop()
    serialised = len(orjson.dumps(engine.export_asset("asset-00042")))
    print(f"alert state: {per_asset:.0f} B/asset in memory, {serialised} B/asset as JSON")
    assert per_asset < 2500


ASSETS = st.sampled_from(["a1", "a2"])
ts_s = st.floats(0, 5000, allow_nan=False)
cycles = st.floats(0, 100)
sensor_names = st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1)
readings = st.fixed_dictionaries({"s1": st.sampled_from([1.0, 2.0])})
signal_s = st.one_of(
    st.builds(AnomalySignal, ASSETS, ts_s, st.floats(0, 3), st.just(1.0)),
    st.builds(RulSignal, ASSETS, ts_s, cycles, cycles, cycles),
    st.builds(DriftSignal, ASSETS, ts_s, sensor_names),
    st.builds(ReadingSignal, ASSETS, ts_s, readings),
    st.builds(float, ts_s),  # a fleet tick
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(signal_s, max_size=120), st.booleans())
def test_any_sequence_gives_valid_lifecycles(items: list[Signal | float], ordered: bool) -> None:
    policy = AlertPolicy(
        debounce_records=2, debounce_s=200, cooldown_s=100, update_every_s=500,
        drift_quiet_s=300, stale_after_s=400, stale_critical_s=800, stuck_records=3,
    )  # fmt: skip
    if ordered:
        items = sorted(items, key=lambda x: x if isinstance(x, float) else x.ts)
    engine = AlertBook(policy)
    events = [
        e for x in items for e in (engine.tick(x) if isinstance(x, float) else engine.observe(x))
    ]
    lifecycle: dict[str, list[str]] = defaultdict(list)
    open_by_key: dict[tuple[str, str], str] = {}
    for e in events:
        history = lifecycle[e.alert_id]
        key = (e.asset_id, e.kind)
        if e.state == "open":
            assert not history, f"{e.alert_id} opened twice"
            assert key not in open_by_key, f"two open {key} alerts"
            open_by_key[key] = e.alert_id
        else:
            assert history and history[-1] != "resolved", f"{e.state} without open alert"
            assert open_by_key.get(key) == e.alert_id
            if e.state == "resolved":
                del open_by_key[key]
        history.append(e.state)
        assert e.alert_id == alert_id(e.asset_id, e.kind, e.opened_at)
        assert AlertEvent.from_json(e.to_json()) == e


def test_anomaly_alert_by_kind_opens_with_the_monitor_and_says_kind_and_since() -> None:
    """When the monitor decides (its policy by kind), the engine opens and resolves with it:
    no second debounce; severity by magnitude; the event names the kind and since when."""
    engine = AlertBook(AlertPolicy(debounce_records=12))

    def signal(t: float, alarm: bool, magnitude: float = 0.0) -> AnomalySignal:
        kind = "spike" if alarm else ""
        top = (("s2", 7.5),)
        return AnomalySignal(
            "a1", t, 1.0, 3.0, top, alarm=alarm, detector=kind, since=99.5, magnitude=magnitude
        )

    assert engine.observe(signal(99.0, False)) == []
    (opened,) = engine.observe(signal(100.0, True, magnitude=2.4))
    assert (opened.state, opened.severity, opened.detector) == ("open", "critical", "spike")
    assert opened.since == 99.5 and "spike since" in opened.message
    data = orjson.loads(opened.to_json())
    assert data["detector"] == "spike" and data["since"] == "1970-01-01T00:01:39.500Z"
    assert AlertEvent.from_json(opened.to_json()) == opened
    (resolved,) = engine.observe(signal(101.0, False))
    assert resolved.state == "resolved"
    (info,) = engine.observe(signal(2000.0, True, magnitude=1.1))  # after the cooldown
    assert info.severity == "info"
