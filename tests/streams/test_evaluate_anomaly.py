"""`pmaint evaluate anomaly` on the NAB reference series, C-MAPSS FD001 and river's Shuttle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from models.anomaly_eval import read_nab_series, read_windows
from models.datafiles import REFERENCE_DATA, resolve
from models.errors import ConfigError, DataError
from models.metrics import judge_windows
from models.monitor import AssetMonitor
from streams.alerts import AlertEngine, AnomalySignal
from streams.commands import evaluate_anomaly

NAB = REFERENCE_DATA / "nab"
SERIES = NAB / "machine_temperature_system_failure.csv"
WINDOWS = NAB / "windows.json"
FD001 = NAB.parent / "cmapss" / "train_FD001.txt"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(epilog=evaluate_anomaly.EXAMPLES)
    evaluate_anomaly.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def nab() -> Path:
    if not resolve(SERIES).exists():
        pytest.fail(f"NAB reference data missing at {NAB}")
    return SERIES


def test_nab_json_detects_most_windows(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--nab", str(nab), "--windows", str(WINDOWS), "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["windows_total"] == 4
    assert doc["windows_detected"] == 4  # reached: 4
    assert doc["false_alarms"] <= 3  # reached: 3
    assert doc["mean_lead_time_s"] > 12 * 3600
    assert any(a.startswith("2014-02-0") for a in doc["alerts"])  # the catastrophic failure
    base = doc["baseline"]  # untuned MinMaxScaler | HalfSpaceTrees on the same file
    assert set(base) == {"windows_detected", "windows_total", "false_alarms", "mean_lead_time_s"}
    assert base["windows_total"] == 4
    assert base["windows_detected"] < doc["windows_detected"]  # reached: 1 vs 4


def test_nab_service_alert_engine_agrees(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The evaluation's debounce judges like the worker's own alert engine on the same scores."""
    assert evaluate_anomaly.run(parse("--nab", str(nab), "--windows", str(WINDOWS), "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    times, values = read_nab_series(nab)
    monitor, engine = AssetMonitor(), AlertEngine()
    opened = []
    for t, v in zip(times, values, strict=True):
        r = monitor.update({"value": v}, None, t)
        if not r.warming_up:
            signal = AnomalySignal("nab", t, r.score, r.threshold, r.top_sensors)
            opened += [e.ts for e in engine.observe(signal) if e.state == "open"]
    report = judge_windows(opened, read_windows(WINDOWS, nab.name))
    assert report.windows_detected == doc["windows_detected"]
    assert report.false_alarms == doc["false_alarms"]


def test_nab_text_report(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--nab", str(nab), "--windows", str(WINDOWS))) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("window ") for line in out.splitlines()) == 4
    assert "2014-02-07 14:55 .. 2014-02-09 14:05: detected" in out
    assert "false alarms:" in out
    assert "baseline (MinMaxScaler | HalfSpaceTrees" in out


def test_debounce_options_change_the_alerts(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--nab", str(nab), "--windows", str(WINDOWS), "--json", "--no-baseline")
    evaluate_anomaly.run(parse(*args, "--consecutive", "1", "--cooldown", "0"))
    eager = json.loads(capsys.readouterr().out)
    evaluate_anomaly.run(parse(*args))
    default = json.loads(capsys.readouterr().out)
    assert eager["false_alarms"] > default["false_alarms"]
    assert "baseline" not in default


@pytest.fixture(scope="module")
def fd001() -> Path:
    if not resolve(FD001).exists():
        pytest.fail(f"C-MAPSS reference data missing at {FD001}")
    return FD001


def test_cmapss_defaults_raise_no_early_false_alarms(
    fd001: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evaluate_anomaly.run(parse("--cmapss", str(fd001), "--limit", "40", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engines"] == 40
    # Most engines alarm before failure (reached: 0.65; 0.59 on all 100), none early.
    assert doc["alarmed_last_30"] >= 0.5
    assert doc["alarmed_first_50"] <= 0.05  # reached: 0.0


def test_cmapss_largest_deviation_alone_alarms_fewer_engines(
    fd001: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--cmapss", str(fd001), "--limit", "40", "--json")
    evaluate_anomaly.run(parse(*argv))
    default = json.loads(capsys.readouterr().out)
    evaluate_anomaly.run(parse(*argv, "--aggregate", "max"))
    largest = json.loads(capsys.readouterr().out)
    assert largest["alarmed_last_30"] < default["alarmed_last_30"]  # reached: 0.475 vs 0.65
    assert evaluate_anomaly.run(parse(*argv[:-1], "--cmapss-warm-up", "30", "--limit", "5")) == 0
    assert capsys.readouterr().out.startswith("5 engines: ")


def test_shuttle_auc(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_anomaly.run(parse("--shuttle", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["roc_auc"] >= 0.97  # reached: 0.9934


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
    with pytest.raises(DataError, match="non-numeric"):
        evaluate_anomaly.run(parse("--cmapss", str(bad)))
    short = tmp_path / "short.txt"
    short.write_text("1 1 0.0 0.0 100.0 518.67\n")
    with pytest.raises(DataError, match="26 columns"):
        evaluate_anomaly.run(parse("--cmapss", str(short)))
    with pytest.raises(DataError, match="cannot read"):
        evaluate_anomaly.run(parse("--cmapss", str(tmp_path / "nope.txt")))
    assert "--shuttle" in evaluate_anomaly.EXAMPLES


def test_nab_plot(tmp_path: Path) -> None:
    png = tmp_path / "nab.png"
    args = parse(
        "--nab", str(SERIES), "--windows", str(WINDOWS), "--no-baseline", "--plot", str(png)
    )
    assert evaluate_anomaly.run(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 50_000  # two panels of data, windows, alerts, legends
