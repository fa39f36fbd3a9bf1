"""Lives and RUL labels from a history and a maintenance log; sensors chosen from the data."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import DataError
from models.rul.lives import Event, HistoryRecord, label_lives, rul_unit, select_columns

HOUR_MS = 3_600_000


def wearing(asset: str, n: int, start: int = 0, cycles: bool = True, t0: int = 0) -> list:
    """``n`` records of an asset wearing out: ``wear`` rises, ``flat`` is constant."""
    return [
        HistoryRecord(
            asset, t0 + (start + i) * HOUR_MS,
            {"wear": float(i) + 0.1 * (i % 3), "flat": 7.0, "s10": float(i % 2)},
            {"setting1": float(i % 4 == 0)},
            cycle=start + i + 1 if cycles else None,
        )
        for i in range(n)
    ]  # fmt: skip


def test_cycles_when_records_and_events_give_them() -> None:
    recs = wearing("a", 5)
    lives = label_lives(recs, [Event("a", "failure", cycle=5)])
    assert lives.unit == "cycles"
    assert lives.runs[0].rul.tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]


def test_hours_from_ts_without_cycles() -> None:
    recs = wearing("a", 4, cycles=False)
    lives = label_lives(recs, [Event("a", "failure", ts_ms=5 * HOUR_MS)])
    assert lives.unit == "hours"
    assert lives.runs[0].rul.tolist() == [5.0, 4.0, 3.0, 2.0]


def test_hours_when_an_event_gives_no_cycle() -> None:
    recs = wearing("a", 4)
    assert rul_unit(recs, [Event("a", "failure", ts_ms=9 * HOUR_MS)]) == "hours"
    with pytest.raises(DataError, match="needs ts"):
        label_lives(recs, [Event("a", "failure", ts_ms=9), Event("a", "failure", cycle=2, line=3)])


def test_event_beyond_the_last_record() -> None:
    lives = label_lives(wearing("a", 3), [Event("a", "failure", cycle=40)])
    assert lives.runs[0].rul.tolist() == [39.0, 38.0, 37.0]
    assert lives.last == {"a": 0}


def test_replacement_starts_a_new_life_and_repairs_do_not() -> None:
    recs = wearing("a", 4) + wearing("a", 3, start=0, t0=10 * HOUR_MS)  # cycle restarts at 1
    events = [
        Event("a", "maintenance", cycle=2),
        Event("a", "replacement", cycle=4),
        Event("a", "repair", cycle=1),
        Event("a", "failure", cycle=3),
    ]
    lives = label_lives(recs, events)
    assert [r.rul.tolist() for r in lives.runs] == [[3.0, 2.0, 1.0, 0.0], [2.0, 1.0, 0.0]]
    assert [r.run_id for r in lives.runs] == ["a", "a/1"]
    assert lives.censored == [] and lives.last == {"a": 1}


def test_lives_without_failure_are_censored_and_left_out() -> None:
    recs = wearing("a", 5) + wearing("b", 6)
    lives = label_lives(recs, [Event("a", "failure", cycle=3)])
    assert [len(r) for r in lives.runs] == [3]
    assert sorted(len(r) for r in lives.censored) == [2, 6]
    assert lives.unfailed == {"a", "b"} and lives.last == {}
    assert lives.report()["censored_lives"] == 2


def test_no_failure_at_all_is_an_error() -> None:
    with pytest.raises(DataError, match="no life"):
        label_lives(wearing("a", 5), [Event("a", "repair", cycle=3)])


def test_ts_events_order_lives_by_time() -> None:
    recs = wearing("a", 6, cycles=False)
    events = [Event("a", "failure", ts_ms=5 * HOUR_MS), Event("a", "failure", ts_ms=2 * HOUR_MS)]
    lives = label_lives(recs, events)
    assert [r.rul.tolist() for r in lives.runs] == [[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]]


def test_columns_chosen_from_the_data_with_reasons() -> None:
    recs = wearing("a", 40)
    lives = label_lives(recs, [Event("a", "failure", cycle=40)])
    cols = lives.columns
    assert cols.sensors == ("wear",)
    assert cols.settings == ("setting1",)
    assert cols.dropped["flat"] == "constant"
    assert cols.dropped["s10"].startswith("no trend towards failure")
    assert "corr with RUL" in cols.kept["wear"]
    assert lives.runs[0].sensors.shape == (40, 1)


def test_near_constant_and_missing_columns_are_dropped() -> None:
    def sensors(i: int) -> dict[str, float]:
        gap = {"gap": 1.0 * i} if i % 2 else {}
        return {"wear": float(i), "rare": float(i == 3), **gap}

    recs = [HistoryRecord("a", i, sensors(i)) for i in range(100)]
    cols = select_columns(recs, np.arange(100.0)[::-1])
    assert cols.sensors == ("wear",)
    assert cols.dropped["rare"].startswith("near-constant")
    assert cols.dropped["gap"].startswith("missing in 50.0%")


def test_given_columns_are_used_and_records_missing_them_dropped() -> None:
    recs = wearing("a", 5)
    recs[1] = HistoryRecord("a", recs[1].ts_ms, {"flat": 1.0}, cycle=2)
    fixed = select_columns(wearing("a", 5), np.arange(5.0)[::-1])
    lives = label_lives(recs, [Event("a", "failure", cycle=5)], fixed)
    assert lives.runs[0].rul.tolist() == [4.0, 2.0, 1.0, 0.0]
