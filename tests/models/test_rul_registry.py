"""The model registry: promote copies in and switches CURRENT atomically; list; refusals."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import ArtifactError, ConfigError
from models.features import Normalizer
from models.rul.artifact import (
    METADATA,
    WEIGHTS,
    Architecture,
    ArtifactMetadata,
    load_artifact,
    save_artifact,
)
from models.rul.registry import (
    VERSIONS,
    current_file,
    current_versions,
    list_versions,
    promote,
    version_dir,
)


def tiny_artifact(directory: Path, seed: int, source: str = "unit test") -> str:
    """A small untrained artifact; ``seed`` makes its weights, hence its version, differ."""
    norm = Normalizer.fit(np.eye(2), np.zeros((2, 3)), ("s2", "s3"))
    arch = Architecture(2, hidden=4, layers=1)
    torch.manual_seed(seed)
    meta = ArtifactMetadata(norm, 5, 125.0, arch, seed, "0" * 64, data_source=source,
                            metrics={"val_cut_rmse": 10.0 + seed})  # fmt: skip
    return save_artifact(directory, arch.build(), meta).version


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, str, Path, str]:
    a, b = tmp_path / "a", tmp_path / "b"
    return a, tiny_artifact(a, 1, "sim A"), b, tiny_artifact(b, 2, "sim B")


def test_promote_copies_in_and_switches_current(
    tmp_path: Path, two: tuple[Path, str, Path, str]
) -> None:
    a, va, b, vb = two
    reg = tmp_path / "reg"
    first = promote(reg, a)
    assert (first.version, first.previous) == (va, None)
    assert current_file(reg).read_text() == f"{va}\n"
    second = promote(reg, b)
    assert (second.version, second.previous) == (vb, va)
    assert current_versions(reg) == {None: vb}
    _, meta = load_artifact(version_dir(reg, vb))  # a complete copy, verified on load
    assert meta.data_source == "sim B"
    promote(reg, a)  # roll back: the version is already in, only CURRENT moves
    assert current_versions(reg) == {None: va}
    assert sorted(p.name for p in (reg / VERSIONS).iterdir()) == sorted([va, vb])
    assert not [p for p in reg.rglob(".*")], "temporary files left behind"


def test_one_current_per_asset_type(tmp_path: Path, two: tuple[Path, str, Path, str]) -> None:
    a, va, b, vb = two
    reg = tmp_path / "reg"
    promote(reg, a)
    promote(reg, b, asset_type="pump")
    assert current_versions(reg) == {None: va, "pump": vb}
    assert (reg / "CURRENT.pump").read_text().strip() == vb
    entries = {e.version: e for e in list_versions(reg)}
    assert entries[va].current_for == (None,) and entries[vb].current_for == ("pump",)
    assert entries[vb].data_source == "sim B" and entries[vb].metrics == {"val_cut_rmse": 12.0}
    with pytest.raises(ConfigError, match="bad asset type"):
        promote(reg, a, asset_type="../escape")


@pytest.fixture
def reg(tmp_path: Path, two: tuple[Path, str, Path, str]) -> Path:
    """A registry serving A."""
    promote(tmp_path / "reg", two[0])
    return tmp_path / "reg"


def test_broken_or_incompatible_artifact_changes_nothing(
    tmp_path: Path, two: tuple[Path, str, Path, str], reg: Path
) -> None:
    a, va, b, _ = two
    weights = bytearray((b / WEIGHTS).read_bytes())
    weights[-1] ^= 0xFF
    (b / WEIGHTS).write_bytes(bytes(weights))
    with pytest.raises(ArtifactError, match="does not match its metadata"):
        promote(reg, b)
    text = (a / METADATA).read_text().replace('"format_version": 3', '"format_version": 99')
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / METADATA).write_text(text)
    (tmp_path / "old" / WEIGHTS).write_bytes((a / WEIGHTS).read_bytes())
    with pytest.raises(ArtifactError, match="incompatible artifact format version 99"):
        promote(reg, tmp_path / "old")
    assert current_versions(reg) == {None: va}
    assert [e.version for e in list_versions(reg)] == [va]
    with pytest.raises(ConfigError, match="is a model artifact"):
        promote(a, b)
    (tmp_path / "file").write_text("")
    with pytest.raises(ArtifactError, match="cannot promote into"):
        promote(tmp_path / "file", a)


def test_a_concurrent_reader_always_sees_a_complete_current_version(
    two: tuple[Path, str, Path, str], reg: Path
) -> None:
    a, va, b, vb = two
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                version = current_versions(reg)[None]
                load_artifact(version_dir(reg, version))
                seen.append(version)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            promote(reg, b if i % 2 == 0 else a)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors[0]
    assert seen and set(seen) <= {va, vb}
    assert current_versions(reg) == {None: va}
