"""Replay file readers and the simulated feed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from kafka.record import util as record_util

from models.datafiles import REFERENCE_DATA
from models.errors import DataError
from streams.core.schema import Limits, decode
from streams.gateway import compiled_checksums, read_replay, simulated

CMAPSS = REFERENCE_DATA / "cmapss" / "test_FD001.txt"


def test_cmapss_replay_interleaves_engines() -> None:
    records = read_replay(CMAPSS)
    assert len(records) == 13_096
    assert [r["asset_id"] for r in records[:3]] == ["unit-001", "unit-002", "unit-003"]
    assert records[0]["cycle"] == 1 and len(records[0]["sensors"]) == 21
    assert all(r["cycle"] <= s["cycle"] for r, s in itertools.pairwise(records))


def test_csv_and_jsonl(tmp_path: Path) -> None:
    csv = tmp_path / "plant.csv"
    csv.write_text("asset_id,ts,temp,setting1\np1,1767225600000,20.5,1\np1,1767225660000,21,1\n")
    rows = read_replay(csv)
    assert rows[1] == {
        "asset_id": "p1",
        "ts": 1767225660000,
        "sensors": {"temp": 21.0},
        "settings": {"setting1": 1.0},
    }
    jl = tmp_path / "plant.jsonl"
    jl.write_text('{"asset_id": "p1", "ts": 1, "sensors": {"a": 1}}\n\n')
    assert len(read_replay(jl)) == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.txt", "1 2 3\n", "expected 26 columns"),
        ("bad.csv", "asset,ts\n", "needs the columns"),
        ("bad.csv", "asset_id,ts,t\np,1,hot\n", ":2: not a number"),
        ("bad.jsonl", "{oops\n", ":1: invalid JSON"),
        ("data.parquet", "", "unknown format"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_replay(path)


def test_simulated_records_are_valid_and_recent() -> None:
    end = 1_795_000_000_000
    records = list(simulated(assets=4, records=400, seed=3, end_ms=end))
    assert len(records) == 400
    assert max(int(r["ts"]) for r in records) < end  # type: ignore[call-overload]
    for r in records:
        d = decode(__import__("orjson").dumps(r), Limits(), end)
        assert d.records and not d.dead


def test_record_batches_are_checksummed_by_the_compiled_crc32c(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the pure-Python fallback costs the gateway most of its CPU (benchmarks/gateway.py)
    assert compiled_checksums()
    assert not caplog.text
    assert record_util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # CRC-32C check value


def test_without_the_compiled_crc32c_the_gateway_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(record_util, "crc32c_c", None)
    assert not compiled_checksums()
    assert "pip install crc32c" in caplog.text
