"""``pmaint train --history`` and ``pmaint evaluate rul --history`` on a simulated plant history
without cycle counters (RUL in hours), and on C-MAPSS converted to history + events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import pytest

from models.errors import ConfigError, DataError
from models.simulator import FleetSimulator
from streams.cmapss_events import cmapss_events
from streams.commands import evaluate_rul
from streams.commands import train as train_cmd

TINY = ["--epochs", "1", "--hidden", "8", "--layers", "1", "--device", "cpu", "--folds", "2",
        "--jobs", "1"]  # fmt: skip


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(epilog=module.EXAMPLES)
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six simulated assets, one run-to-failure life each, exported without ``cycle``; the last
    asset's failure is not in the log (censored)."""
    d = tmp_path_factory.mktemp("plant")
    sim = FleetSimulator(assets=6, seed=3, regimes=1, interval_s=600.0)
    lines, failures = [], {}
    for r in sim.runs(1):
        lines.append(json.dumps({k: v for k, v in r.to_message().items() if k != "cycle"}))
        if r.rul == 0:
            failures[r.asset_id] = r.ts_ms + 1_800_000  # noticed half an hour later
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    rows = [f"{a},failure,{ts}" for a, ts in sorted(failures.items())[:-1]]
    (d / "events.csv").write_text("asset_id,event,ts\n" + "\n".join(rows) + "\n")
    return d / "history.jsonl", d / "events.csv"


@pytest.fixture(scope="module")
def plant_model(plant: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "rul"
    history, events = plant
    argv = ["--history", str(history), "--events", str(events), "--out", str(out),
            "--asset-type", "pump", "--cap", "300", *TINY]  # fmt: skip
    assert train_cmd.run(parse(train_cmd, argv)) == 0
    return out


def test_train_on_history_reports_out_of_fold_and_choices(
    plant_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = json.loads((plant_model / "metadata.json").read_text())
    assert (meta["rul_unit"], meta["asset_type"]) == ("hours", "pump")
    assert meta["domain"]["threshold"] > 0
    history = meta["training"]["history"]
    assert history["lives"] == 5 and history["censored_lives"] == 1
    assert history["sensors"] == meta["scaling"]["sensors"]
    assert set(history["dropped"]).isdisjoint(history["sensors"])


def test_train_prints_the_evaluate_keys(
    plant: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, events = plant
    argv = ["--history", str(history), "--events", str(events), "--out", str(tmp_path),
            *TINY]  # fmt: skip
    assert train_cmd.run(parse(train_cmd, argv)) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    oof = report["out_of_fold"]
    assert set(oof) == {"rmse", "score", "coverage", "n_assets", "out_of_domain_share"}
    assert oof["n_assets"] == 5 and oof["rmse"] > 0
    assert "RUL in hours" in captured.err and "dropped" in captured.err


def test_evaluate_history_json(
    plant_model: Path, plant: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    history, events = plant
    argv = ["--model", str(plant_model), "--history", str(history), "--events", str(events),
            "--json", "--device", "cpu"]  # fmt: skip
    assert evaluate_rul.run(parse(evaluate_rul, argv)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"rmse", "score", "coverage", "n_assets", "out_of_domain_share"} <= set(doc)
    assert (doc["n_assets"], doc["n_censored"], doc["rul_unit"]) == (5, 1, "hours")
    assert 0 <= doc["out_of_domain_share"] <= 1


def test_evaluate_refuses_a_history_in_another_unit(
    plant_model: Path, cmapss_dir: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.csv"
    events.write_text(cmapss_events(cmapss_dir / "train_FD001.txt"))
    argv = ["--model", str(plant_model), "--history", str(cmapss_dir / "train_FD001.txt"),
            "--events", str(events), "--device", "cpu"]  # fmt: skip
    with pytest.raises(DataError, match="in hours but this history gives it in cycles"):
        evaluate_rul.run(parse(evaluate_rul, argv))


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        (train_cmd, ["--history", "h.csv"], "--history needs --events"),
        (train_cmd, ["--simulated", "--events", "e.csv"], "--events goes with --history"),
        (evaluate_rul, ["--model", "m", "--history", "h.csv"], "--history needs --events"),
        (evaluate_rul, ["--model", "m", "--data", "d", "--history", "h"], "give one of"),
    ],
)
def test_history_arguments(
    module: ModuleType, argv: list[str], message: str, tmp_path: Path
) -> None:
    if module is train_cmd:
        argv = [*argv, "--out", str(tmp_path / "m"), "--quiet"]
    with pytest.raises(ConfigError, match=message):
        module.run(parse(module, argv))


def test_cmapss_through_history_trains_the_same_model(cmapss_dir: Path, tmp_path: Path) -> None:
    """Same engines, sensors, scaling and folds: the same weights, so the same version (and the
    members trained one after another or at once in two processes are the same)."""
    events = tmp_path / "events.csv"
    events.write_text(cmapss_events(cmapss_dir / "train_FD001.txt"))
    tiny = ["--epochs", "1", "--hidden", "4", "--layers", "1", "--device", "cpu", "--folds", "2",
            "--patience", "1", "--quiet"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["--data", str(cmapss_dir), "--out", str(a), "--jobs", "1", *tiny]
    assert train_cmd.run(parse(train_cmd, argv)) == 0
    argv = ["--history", str(cmapss_dir / "train_FD001.txt"), "--events", str(events),
            "--out", str(b), "--jobs", "2", *tiny]  # fmt: skip
    assert train_cmd.run(parse(train_cmd, argv)) == 0
    meta_a, meta_b = (json.loads((p / "metadata.json").read_text()) for p in (a, b))
    assert meta_a["features"] == meta_b["features"]
    assert meta_a["version"] == meta_b["version"]
