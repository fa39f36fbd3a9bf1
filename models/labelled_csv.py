"""Labelled multivariate CSV files: one asset per file, a time column, a 0/1 label column.

Every other column whose values are numbers is a sensor (empty cells are missing readings of
that record); columns that are not numeric, and those named in ``ignore``, are left out.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.anomaly_eval import parse_time
from models.datafiles import read_text
from models.errors import DataError


@dataclass(frozen=True)
class LabelledSeries:
    """One file: event times (epoch s), sensor readings and labels per record."""

    times: tuple[float, ...]
    sensors: tuple[dict[str, float], ...]
    labels: tuple[bool, ...]


def to_seconds(text: str) -> float:
    """A time cell as epoch seconds: a number (seconds; milliseconds above 1e11) or ISO 8601.

    >>> to_seconds("12.5"), to_seconds("1700000000000"), to_seconds("1970-01-01T00:01:00")
    (12.5, 1700000000.0, 60.0)
    """
    try:
        value = float(text)
    except ValueError:
        return parse_time(text.replace("Z", "+00:00"))
    return value / 1000.0 if abs(value) > 1e11 else value


def read_labelled_csv(
    path: str | Path,
    time_column: str,
    label_column: str,
    ignore: Sequence[str] = (),
    delimiter: str = ",",
) -> LabelledSeries:
    """Read one labelled CSV file (records sorted by time).

    Raises
    ------
    DataError
        If the file is missing, lacks the named columns, has a bad time or label, or has no
        numeric sensor column.
    """
    try:
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
        rows = list(reader)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not CSV ({exc})") from exc
    columns = reader.fieldnames or []
    for name in (time_column, label_column):
        if name not in columns:
            raise DataError(f"{path}: no column {name!r} (columns: {', '.join(columns)})")
    skip = {time_column, label_column, *ignore}
    candidates = [c for c in columns if c not in skip]
    sensors = [c for c in candidates if _numeric(r.get(c) for r in rows)]
    if not sensors:
        raise DataError(f"{path}: no numeric sensor column besides {time_column}, {label_column}")
    records = []
    for n, row in enumerate(rows, 2):
        try:
            t = to_seconds(row[time_column] or "")
            label = float(row[label_column] or "nan")
        except ValueError as exc:
            raise DataError(f"{path}:{n}: bad time or label ({exc})") from exc
        if label not in (0.0, 1.0):
            raise DataError(f"{path}:{n}: label must be 0 or 1, not {row[label_column]!r}")
        values = {c: float(row[c]) for c in sensors if row.get(c) not in (None, "")}
        records.append((t, {c: v for c, v in values.items() if math.isfinite(v)}, label == 1.0))
    if not records:
        raise DataError(f"{path}: no rows")
    records.sort(key=lambda r: r[0])
    times, readings, labels = zip(*records, strict=True)
    return LabelledSeries(tuple(times), tuple(readings), tuple(labels))


def _numeric(cells: object) -> bool:
    seen = False
    for cell in cells:  # type: ignore[attr-defined]
        if cell in (None, ""):
            continue
        try:
            float(cell)
        except ValueError:
            return False
        seen = True
    return seen
