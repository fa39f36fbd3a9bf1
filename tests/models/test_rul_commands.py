"""The ``pmaint train`` and ``pmaint evaluate rul`` command modules, driven through argparse."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import pytest

from models.errors import ConfigError, DataError
from streams.commands import evaluate_rul
from streams.commands import train as train_cmd


def parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(epilog=module.EXAMPLES)
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def trained(cmapss_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rul") / "model"
    args = parse(
        train_cmd,
        ["--data", str(cmapss_dir), "--subset", "FD001", "--out", str(out), "--epochs", "1",
         "--hidden", "16", "--layers", "1", "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert train_cmd.run(args) == 0
    return out


def test_train_writes_artifact_and_prints_metrics(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = json.loads((trained / "metadata.json").read_text())
    assert meta["data_source"].startswith("C-MAPSS FD001")
    assert {"val_rmse", "test_rmse", "test_score", "test_coverage"} <= set(meta["metrics"])


def test_train_refuses_to_overwrite(trained: Path, cmapss_dir: Path) -> None:
    args = parse(train_cmd, ["--data", str(cmapss_dir), "--out", str(trained), "--quiet"])
    with pytest.raises(ConfigError, match="--force"):
        train_cmd.run(args)


def test_train_simulated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(
        train_cmd,
        ["--simulated", "--assets", "4", "--lives", "1", "--out", str(tmp_path), "--epochs", "1",
         "--hidden", "8", "--layers", "1", "--device", "cpu", "--quiet", "--cap", "130",
         "--folds", "2"],
    )  # fmt: skip
    assert train_cmd.run(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["version"].startswith("rul-")
    assert "val_rmse" in report
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["regimes"] == 3
    assert meta["cap"] == 130.0
    assert meta["architecture"]["members"] == 2


def test_train_rejects_non_positive_cap(tmp_path: Path) -> None:
    args = parse(train_cmd, ["--simulated", "--out", str(tmp_path), "--cap", "0", "--quiet"])
    with pytest.raises(ConfigError, match="--cap"):
        train_cmd.run(args)


def test_train_rejects_zero_folds(tmp_path: Path) -> None:
    args = parse(train_cmd, ["--simulated", "--out", str(tmp_path), "--folds", "0", "--quiet"])
    with pytest.raises(ConfigError, match="--folds"):
        train_cmd.run(args)


def test_train_rejects_bad_data_dir(tmp_path: Path) -> None:
    args = parse(train_cmd, ["--data", str(tmp_path), "--out", str(tmp_path / "m"), "--quiet"])
    with pytest.raises(DataError, match="file not found"):
        train_cmd.run(args)


def test_evaluate_json_and_plot(
    trained: Path, cmapss_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "rul.png"
    args = parse(
        evaluate_rul,
        ["--model", str(trained), "--data", str(cmapss_dir), "--subset", "FD001", "--json",
         "--plot", str(png), "--device", "cpu"],
    )  # fmt: skip
    assert evaluate_rul.run(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"rmse", "score", "coverage", "n_engines"} <= set(doc)
    assert doc["n_engines"] == 100
    assert 0 <= doc["coverage"] <= 1
    assert doc["rmse"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((trained / "metadata.json").read_text())
    assert doc["rmse"] == pytest.approx(meta["metrics"]["test_rmse"], abs=1e-3)


def test_evaluate_with_files_prints_text(
    trained: Path, cmapss_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        evaluate_rul,
        ["--model", str(trained), "--test", str(cmapss_dir / "test_FD001.txt"),
         "--rul", str(cmapss_dir / "RUL_FD001.txt"), "--device", "cpu"],
    )  # fmt: skip
    assert evaluate_rul.run(args) == 0
    out = capsys.readouterr().out
    assert "RMSE" in out
    assert "NASA score" in out
    assert "100 assets" in out


@pytest.mark.parametrize(
    "extra",
    [[], ["--test", "t.txt"], ["--data", "d", "--rul", "r.txt"]],
)
def test_evaluate_needs_one_data_source(trained: Path, extra: list[str]) -> None:
    args = parse(evaluate_rul, ["--model", str(trained), *extra])
    with pytest.raises(ConfigError):
        evaluate_rul.run(args)
