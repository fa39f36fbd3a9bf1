"""`pmaint evaluate anomaly` on the NAB reference series and on river's Shuttle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from models.errors import ConfigError, DataError
from streams.commands import evaluate_anomaly

NAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"
SERIES = NAB / "machine_temperature_system_failure.csv"
WINDOWS = NAB / "windows.json"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(epilog=evaluate_anomaly.EXAMPLES)
    evaluate_anomaly.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def nab() -> Path:
    if not SERIES.exists():
        pytest.fail(f"NAB reference data missing at {NAB}")
    return SERIES


def test_nab_json_detects_most_windows(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--nab", str(nab), "--windows", str(WINDOWS), "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["windows_total"] == 4
    assert doc["windows_detected"] >= 3  # reached: 3 (all but the planned shutdown)
    assert doc["false_alarms"] <= 3  # reached: 2
    assert doc["mean_lead_time_s"] > 12 * 3600
    assert any(a.startswith("2014-02-0") for a in doc["alerts"])  # the catastrophic failure


def test_nab_text_report(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--nab", str(nab), "--windows", str(WINDOWS))) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("window ") for line in out.splitlines()) == 4
    assert "2014-02-07 14:55 .. 2014-02-09 14:05: detected" in out
    assert "false alarms:" in out


def test_debounce_options_change_the_alerts(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--nab", str(nab), "--windows", str(WINDOWS), "--json")
    evaluate_anomaly.run(parse(*args, "--consecutive", "1", "--cooldown", "0"))
    eager = json.loads(capsys.readouterr().out)
    evaluate_anomaly.run(parse(*args))
    default = json.loads(capsys.readouterr().out)
    assert eager["false_alarms"] > default["false_alarms"]


def test_shuttle_auc(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--shuttle", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["roc_auc"] >= 0.97  # reached: 0.989


def test_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        evaluate_anomaly.run(parse("--nab", str(tmp_path / "nope.csv"), "--windows", str(WINDOWS)))
    with pytest.raises(ConfigError, match="--windows"):
        evaluate_anomaly.run(parse("--nab", str(SERIES)))
    bad = tmp_path / "bad.csv"
    bad.write_text("time,reading\n1,2\n")
    with pytest.raises(DataError, match="timestamp,value"):
        evaluate_anomaly.run(parse("--nab", str(bad), "--windows", str(WINDOWS)))
    with pytest.raises(SystemExit):
        parse("--nab", str(SERIES), "--shuttle")
    assert "--shuttle" in evaluate_anomaly.EXAMPLES
