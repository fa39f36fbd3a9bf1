"""The repository carries its reference data, intact, and loaders read it compressed."""

import hashlib

from models.datafiles import REFERENCE_DATA, read_bytes
from models.rul.data import read_cmapss


def test_reference_data_matches_its_checksums() -> None:
    lines = (REFERENCE_DATA / "SHA256SUMS").read_text().splitlines()
    assert len(lines) > 50
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256(read_bytes(REFERENCE_DATA / name)).hexdigest() == digest, name


def test_loaders_read_the_gzip_twin_of_a_plain_name() -> None:
    runs = read_cmapss(REFERENCE_DATA / "cmapss" / "train_FD001.txt")
    assert len(runs) == 100
    assert sum(len(r) for r in runs) == 20631
