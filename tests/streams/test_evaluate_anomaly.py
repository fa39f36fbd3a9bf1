"""`pmaint evaluate anomaly` on the NAB reference series, C-MAPSS FD001 and river's Shuttle."""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.datafiles import REFERENCE_DATA, read_text, resolve
from models.errors import ConfigError, DataError
from models.monitor_config import DETECTORS
from streams import cli
from streams.cli import main
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
    assert doc["false_alarms"] <= 2  # reached: 2 (the issue asks for 2)
    assert doc["mean_lead_time_s"] > 12 * 3600
    assert any(a.startswith("2014-02-0") for a in doc["alerts"])  # the catastrophic failure
    assert len(doc["kinds"]) == len(doc["alerts"]) and set(doc["kinds"]) <= set(DETECTORS)
    base = doc["baseline"]  # untuned MinMaxScaler | HalfSpaceTrees on the same file
    assert set(base) == {"windows_detected", "windows_total", "false_alarms", "mean_lead_time_s"}
    assert base["windows_total"] == 4
    assert base["windows_detected"] < doc["windows_detected"]  # reached: 1 vs 4


def test_policy_file_reaches_the_evaluation(
    nab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nassets = "machine_*"\ndetectors = ["spike"]\n')
    argv = ("--nab", str(nab), "--windows", str(WINDOWS), "--json", "--no-baseline")
    assert evaluate_anomaly.run(parse(*argv, "--policy", str(policy))) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["kinds"]) == {"spike"}
    policy.write_text("[[rule]]\nassets = '*'\nbogus = 1\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        evaluate_anomaly.run(parse(*argv, "--policy", str(policy)))


def _corpus(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A two-series corpus in NAB's layout (machine temperature and a synthetic series)."""
    corpus = tmp_path / "corpus"
    (corpus / "realKnownCause").mkdir(parents=True)
    (corpus / "synthetic").mkdir()
    (corpus / "realKnownCause" / "machine.csv").write_text(read_text(SERIES))
    rows = ["timestamp,value"]
    for i in range(2000):
        t = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * i)
        v = 10.0 + math.sin(i / 12) + (25.0 if i == 1500 else 0.0)
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{v}")
    (corpus / "synthetic" / "spike.csv").write_text("\n".join(rows) + "\n")
    machine = json.loads(read_text(WINDOWS))["machine_temperature_system_failure.csv"]
    windows = tmp_path / "windows.json"
    windows.write_text(json.dumps({
        "realKnownCause/machine.csv": machine,
        "synthetic/spike.csv": [["2020-01-06 05:00:00", "2020-01-06 07:00:00"]],
    }))  # fmt: skip
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({
        "flagAll": {"threshold": 0.5, "flagged": {"synthetic/spike.csv": [
            "2020-01-03 00:00:00", "2020-01-06 06:00:00"]}},
    }))  # fmt: skip
    return corpus, windows, reference


def test_nab_corpus_json_shape_and_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, windows, reference = _corpus(tmp_path)
    argv = ("--nab-corpus", str(corpus), "--windows", str(windows))
    assert evaluate_anomaly.run(parse(*argv, "--reference", str(reference), "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"series", "total", "reference"}
    keys = {"windows_detected", "windows_total", "false_alarms", "nab_score"}
    assert set(doc["total"]) == keys and set(doc["reference"]["flagAll"]) == keys
    assert set(doc["series"]) == {"realKnownCause/machine.csv", "synthetic/spike.csv"}
    spike = doc["series"]["synthetic/spike.csv"]
    assert spike["windows_detected"] == 1 and spike["false_alarms"] == 0
    assert spike["alerts"][0]["kind"] in ("spike", "shift")
    assert doc["total"]["windows_total"] == 5
    assert doc["total"]["windows_detected"] == sum(
        s["windows_detected"] for s in doc["series"].values()
    )
    ref = doc["reference"]["flagAll"]  # one flag in the window, one before: a false alarm
    assert (ref["windows_detected"], ref["false_alarms"]) == (1, 1)
    assert doc["total"]["nab_score"] > ref["nab_score"]
    assert evaluate_anomaly.run(parse(*argv)) == 0
    out = capsys.readouterr().out
    assert "synthetic/spike.csv: 1/1 windows, 0 false alarms" in out
    assert "by kind" in out
    (corpus / "synthetic" / "spike.csv").unlink()
    with pytest.raises(DataError, match="missing"):
        evaluate_anomaly.run(parse(*argv))


def _labelled(path: Path, fault_at: int, delimiter: str = ";") -> None:
    rng = random.Random(fault_at)
    lines = [delimiter.join(("time", "p", "q", "note", "batch", "fault"))]
    for i in range(1200):
        fault = fault_at <= i < fault_at + 40
        p = 5.0 + rng.gauss(0, 0.1) + (4.0 if fault else 0.0)
        q = 2 * p + rng.gauss(0, 0.1)
        row = (str(60 * i), f"{p:.4f}", f"{q:.4f}", "ok", str(i % 7), str(int(fault)))
        lines.append(delimiter.join(row))
    path.write_text("\n".join(lines) + "\n")


def test_labelled_csv_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    _labelled(files[0], 700)
    _labelled(files[1], 900)
    argv = ["--csv", *map(str, files), "--time-column", "time", "--label-column", "fault"]
    argv += ["--ignore-columns", "batch", "--delimiter", ";"]
    assert evaluate_anomaly.run(parse(*argv, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == [
        "point_f1", "point_far", "point_mar", "events_detected", "events_total", "false_alarms"
    ]  # fmt: skip
    assert doc["events_total"] == 2 and doc["events_detected"] == 2
    assert 0.0 <= doc["point_far"] < 0.05 and doc["point_f1"] > 0.0
    with pytest.raises(DataError, match="no column 'label'"):
        evaluate_anomaly.run(parse(*argv[:5], "--label-column", "label", *argv[7:]))
    with pytest.raises(ConfigError, match="--label-column"):
        evaluate_anomaly.run(parse("--csv", str(files[0]), "--time-column", "time"))


def test_bad_cli_argument_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["evaluate", "anomaly", "--nab-corpus", "nowhere", "--windows", "none.json"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


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
    # a deviation no larger than the asset's earlier ones must still last weak_debounce
    # records, so the false alarms hold (2 and 2); the first alert opens an hour earlier
    assert eager["false_alarms"] >= default["false_alarms"]
    assert eager["alerts"][0] < default["alerts"][0]
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
    # Most engines alarm before failure (reached: 0.65; 0.62 on all 100), none early.
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
    assert json.loads(capsys.readouterr().out)["roc_auc"] >= 0.99  # reached: 0.9945


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


def test_history_with_abnormal_intervals_from_the_events_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = 1_767_225_600_000
    rows = []
    for i in range(700):
        level = 40.0 if 500 <= i < 520 else 0.0  # a labelled fault on s1
        sensors = {"s1": 10 + math.sin(i / 7) + level, "s2": 5 + math.cos(i / 5)}
        rows.append(json.dumps({"asset_id": "p1", "ts": start + i * 60_000, "sensors": sensors}))
    history = tmp_path / "plant.jsonl"
    history.write_text("\n".join(rows) + "\n")
    events = tmp_path / "events.csv"
    events.write_text(
        f"asset_id,event,start,end\np1,abnormal,{start + 500 * 60_000},{start + 520 * 60_000}\n"
    )
    args = ["evaluate", "anomaly", "--history", str(history), "--events", str(events), "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"point_f1", "point_far", "point_mar", "events_detected", "events_total",
                        "false_alarms"}  # fmt: skip
    assert (doc["events_detected"], doc["events_total"]) == (1, 1)
    assert doc["point_f1"] > 0.3
    assert main(["evaluate", "anomaly", "--history", str(history)]) == 2  # no --events
