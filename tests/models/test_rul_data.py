from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import DataError
from models.features import INFORMATIVE_SENSORS, InputSpec
from models.rul.data import (
    RUL_CAP,
    Run,
    cmapss_paths,
    data_sha256,
    final_windows,
    fit_normalizer,
    read_cmapss,
    read_cmapss_test,
    read_rul,
    simulated_runs,
    split_folds,
    windows,
)

ROW = "1 {cycle} 0.0 0.0 100.0 " + " ".join(["1.0"] * 21)


def test_fd001_train_and_test_load(fd001_train: list[Run], fd001_test: list[Run]) -> None:
    assert len(fd001_train) == 100
    assert sum(len(r) for r in fd001_train) == 20631
    assert all(r.rul[-1] == 0 and np.all(np.diff(r.rul) == -1) for r in fd001_train)
    assert len(fd001_test) == 100
    assert sum(len(r) for r in fd001_test) == 13096
    assert fd001_test[0].rul[-1] == 112  # first line of RUL_FD001.txt


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (ROW.format(cycle=1) + " 7\n", r"bad\.txt:1: expected 26 columns, got 27"),
        (ROW.format(cycle=1) + "\n" + ROW.format(cycle="x") + "\n", r":2: non-numeric"),
        (ROW.format(cycle=1).replace("100.0", "nan") + "\n", r":1: non-finite"),
        ("\n\n", "no data rows"),
        (ROW.format(cycle=2) + "\n" + ROW.format(cycle=1) + "\n", "cycles not increasing"),
        (ROW.format(cycle=1.5) + "\n", "must be integers"),
    ],
)
def test_malformed_cmapss_file_raises_data_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        read_cmapss(path)


def test_missing_and_binary_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_cmapss(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="cannot read"):
        read_cmapss(tmp_path / "bin.txt")


def test_bad_rul_files(tmp_path: Path, cmapss_dir: Path) -> None:
    (tmp_path / "r.txt").write_text("10\n-3\n")
    with pytest.raises(DataError, match=r"r\.txt:2: RUL must be a non-negative"):
        read_rul(tmp_path / "r.txt")
    (tmp_path / "r.txt").write_text("10 11\n")
    with pytest.raises(DataError, match="expected one number"):
        read_rul(tmp_path / "r.txt")
    (tmp_path / "r.txt").write_text("10\n")
    with pytest.raises(DataError, match="100 engines but 1 RUL values"):
        read_cmapss_test(cmapss_dir / "test_FD001.txt", tmp_path / "r.txt")


def test_unknown_subset() -> None:
    with pytest.raises(DataError, match="unknown C-MAPSS subset"):
        cmapss_paths(".", "FD009")


def test_simulated_runs_are_complete_lives() -> None:
    runs = simulated_runs(assets=3, lives=2, seed=4)
    assert len(runs) == 6
    for run in runs:
        assert run.rul[-1] == 0
        assert np.all(np.diff(run.rul) == -1)
        assert run.sensors.shape == (len(run), 21)
        assert run.settings.shape == (len(run), 3)
    assert data_sha256(runs) == data_sha256(simulated_runs(assets=3, lives=2, seed=4))
    assert data_sha256(runs) != data_sha256(simulated_runs(assets=3, lives=2, seed=5))


def test_split_is_by_engine_and_reproducible(fd001_train: list[Run]) -> None:
    [(a, b)] = split_folds(fd001_train, 1, 0.2, seed=1)
    assert (len(a), len(b)) == (80, 20)
    assert not {r.run_id for r in a} & {r.run_id for r in b}
    assert [r.run_id for r in b] == [r.run_id for r in split_folds(fd001_train, 1, 0.2, 1)[0][1]]
    assert [r.run_id for r in b] != [r.run_id for r in split_folds(fd001_train, 1, 0.2, 2)[0][1]]


def test_folds_hold_out_every_engine_once(fd001_train: list[Run]) -> None:
    pairs = split_folds(fd001_train, 5, 0.2, seed=0)
    held = [r.run_id for _, val in pairs for r in val]
    assert sorted(held) == sorted(r.run_id for r in fd001_train)
    for train, val in pairs:
        assert (len(train), len(val)) == (80, 20)
        assert not {r.run_id for r in train} & {r.run_id for r in val}
    with pytest.raises(DataError, match="into 200 folds"):
        split_folds(fd001_train, 200, 0.2, seed=0)


def test_windows_and_capped_targets(fd001_train: list[Run], fd001_test: list[Run]) -> None:
    norm = fit_normalizer(fd001_train, INFORMATIVE_SENSORS)
    x, y = windows(fd001_train, InputSpec(norm))
    assert x.shape == (20631 - 100 * 29, 30, 14)
    assert y.shape == (len(x),)
    assert y.max() == RUL_CAP
    assert y.min() == 0
    xt, yt = final_windows(fd001_test, InputSpec(norm))
    assert xt.shape == (100, 30, 14)
    assert yt[0] == 112
    assert yt.max() > RUL_CAP
