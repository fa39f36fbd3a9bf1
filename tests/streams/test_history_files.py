"""History files and the events CSV: every format the gateway replays, .gz, errors with lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from models.datafiles import REFERENCE_DATA
from models.errors import DataError
from streams.cmapss_events import cmapss_events
from streams.history_files import abnormal_intervals, read_events, read_history


def test_jsonl_records_and_frames_gz(tmp_path: Path) -> None:
    lines = [
        {"asset_id": "p1", "ts": "2026-01-01T00:00:00Z", "sensors": {"t": 1}},
        {"records": [{"asset_id": "p2", "ts": 1767225600000, "cycle": 4, "sensors": {"t": 2.5},
                      "settings": {"setting1": 0.5}}]},
    ]  # fmt: skip
    path = tmp_path / "h.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    recs = read_history([path])
    assert [(r.asset_id, r.ts_ms, r.cycle) for r in recs] == [
        ("p1", 1767225600000, None),
        ("p2", 1767225600000, 4),
    ]
    assert recs[1].settings == {"setting1": 0.5} and recs[1].sensors == {"t": 2.5}


def test_csv_cycle_column_is_the_cycle(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("asset_id,ts,cycle,setting1,temp\np1,1767225600000,3,0.2,71.5\n")
    (rec,) = read_history([path])
    assert (rec.cycle, dict(rec.sensors), dict(rec.settings)) == (
        3,
        {"temp": 71.5},
        {"setting1": 0.2},
    )


def test_cmapss_text_reads_as_history() -> None:
    recs = read_history([REFERENCE_DATA / "cmapss" / "test_FD001.txt"])
    assert len({r.asset_id for r in recs}) == 100
    assert all(r.cycle is not None for r in recs) and "s21" in recs[0].sensors


def test_bad_record_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"asset_id": "p1", "ts": 0, "sensors": {"t": 1}}\n{"asset_id": "p1", "ts": 0}\n'
    )
    with pytest.raises(DataError, match=r"h.jsonl record 2: record needs"):
        read_history([path])
    path.write_text('{"asset_id": "p1", "ts": "noon", "sensors": {"t": 1}}\n')
    with pytest.raises(DataError, match="bad ts"):
        read_history([path])


def test_events_and_abnormal_intervals(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "asset_id,event,ts,cycle,start,end,fault_code\n"
        "p1,Failure,2026-03-01T00:00:00Z,,,,\n"
        "p1,repair,,17,,,\n"
        "p2,abnormal,,,1767232800000,1767240000000,\n"
        "p2,abnormal,,,1767225600000,1767229200000,bearing\n"
    )
    log = read_events(path)
    assert [(e.asset_id, e.event, e.cycle, e.line) for e in log.events] == [
        ("p1", "failure", None, 2),
        ("p1", "repair", 17, 3),
    ]
    intervals = abnormal_intervals(path)["p2"]
    assert [(i.start_ms, i.fault_code) for i in intervals] == [
        (1767225600000, "bearing"),
        (1767232800000, ""),
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("p1,broke,0,", "unknown event 'broke'"),
        ("p1,failure,,", "failure needs ts or cycle"),
        ("p1,failure,,x", "cycle must be an integer"),
        (",failure,0,", "missing asset_id"),
        ("p1,failure,yesterday,", "bad ts"),
    ],
)
def test_bad_event_rows_name_their_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"asset_id,event,ts,cycle\np1,repair,,1\n{row}\n")
    with pytest.raises(DataError, match=f"events.csv:3: {message}"):
        read_events(path)


def test_abnormal_needs_an_ordered_interval(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("asset_id,event,start,end\np1,abnormal,5000,1000\n")
    with pytest.raises(DataError, match="start <= end"):
        read_events(path)


def test_cmapss_events_put_failures_after_the_last_cycle() -> None:
    d = REFERENCE_DATA / "cmapss"
    rows = cmapss_events(d / "test_FD001.txt", d / "RUL_FD001.txt").splitlines()
    assert rows[0] == "asset_id,event,cycle" and len(rows) == 101
    assert rows[1] == "unit-001,failure,143"  # 31 cycles recorded + 112 left
