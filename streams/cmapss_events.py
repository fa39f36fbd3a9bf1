"""The maintenance log of a C-MAPSS file, so that it can be used as a history + events pair.

Training files run to failure: each engine fails at its last cycle. Test files stop early:
engine ``i`` fails ``RUL[i]`` cycles after its last one (an event beyond the last record)::

    python -m streams.cmapss_events data/cmapss/train_FD001.txt > train_events.csv
    python -m streams.cmapss_events data/cmapss/test_FD001.txt --rul data/cmapss/RUL_FD001.txt

Asset ids are those :func:`streams.gateway.read_cmapss` gives the records (``unit-001``, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.errors import DataError
from models.rul.data import read_rul
from streams.gateway import read_cmapss


def cmapss_events(path: Path, rul: Path | None = None) -> str:
    """Events CSV text: one ``failure`` per engine at its last cycle (plus its true RUL).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> row = "1 {} 0 0 100 " + " ".join(["1.0"] * 21) + "\\n"
    >>> _ = (d / "test.txt").write_text(row.format(1) + row.format(2))
    >>> _ = (d / "RUL.txt").write_text("40\\n")
    >>> print(cmapss_events(d / "test.txt", d / "RUL.txt"), end="")
    asset_id,event,cycle
    unit-001,failure,42
    """
    last: dict[str, int] = {}
    for record in read_cmapss(path):
        last[record["asset_id"]] = max(last.get(record["asset_id"], 0), record["cycle"])
    assets = sorted(last)
    extra = read_rul(rul).tolist() if rul is not None else [0.0] * len(assets)
    if len(extra) != len(assets):
        raise DataError(f"{path}: {len(assets)} engines but {len(extra)} RUL values")
    rows = [f"{a},failure,{last[a] + round(e)}" for a, e in zip(assets, extra, strict=True)]
    return "\n".join(["asset_id,event,cycle", *rows]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the events CSV of a C-MAPSS train or test file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cmapss", type=Path, help="train_FD00x.txt or test_FD00x.txt (or .gz)")
    parser.add_argument("--rul", type=Path, help="RUL_FD00x.txt for a test file")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(cmapss_events(args.cmapss, args.rul))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
