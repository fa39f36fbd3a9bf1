"""A plant's own history files: telemetry records and the maintenance log (events CSV).

History files are read by the gateway's replay readers (:func:`streams.gateway.read_replay`:
C-MAPSS ``.txt``, ``.csv``, ``.jsonl`` of records or frames, each optionally ``.gz``) and checked
against the telemetry contract. The events file is a CSV with the columns
``asset_id,event[,ts][,cycle][,start,end][,fault_code]``: ``event`` is ``failure``,
``replacement``, ``repair`` or ``maintenance`` (with ``ts`` and/or ``cycle``), or ``abnormal``
with ``start`` and ``end`` (a labelled abnormal interval, e.g. exported from another tool).
Times are RFC 3339 with a zone or epoch milliseconds, as in telemetry.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.datafiles import read_text, resolve
from models.errors import DataError
from models.rul.lives import EVENTS, Event, HistoryRecord
from streams.core.schema import parse_ts
from streams.gateway import read_replay

ABNORMAL = "abnormal"


@dataclass(frozen=True, slots=True)
class AbnormalInterval:
    """A labelled abnormal interval of one asset, epoch ms, ``start <= end``."""

    asset_id: str
    start_ms: int
    end_ms: int
    fault_code: str = ""


@dataclass(frozen=True)
class MaintenanceLog:
    """The events file: maintenance events and labelled abnormal intervals."""

    events: list[Event]
    abnormal: list[AbnormalInterval]


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("records"), list):
            yield from item["records"]
        else:
            yield item


def _numbers(value: Any, where: str, field: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataError(f"{where}: {field} must be an object of numbers")
    out = {}
    for name, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise DataError(f"{where}: {field}.{name} is not a finite number")
        out[str(name)] = float(v)
    return out


def to_history_record(raw: Any, where: str) -> HistoryRecord:
    """One telemetry record (as read from a file) -> :class:`HistoryRecord`.

    >>> to_history_record({"asset_id": "p1", "ts": 0, "sensors": {"s": 1}}, "x")
    HistoryRecord(asset_id='p1', ts_ms=0, sensors={'s': 1.0}, settings={}, cycle=None)
    >>> to_history_record({"asset_id": "p1", "sensors": {}}, "f.jsonl:3")
    Traceback (most recent call last):
    ...
    models.errors.DataError: f.jsonl:3: record needs asset_id, ts and sensors
    """
    if not isinstance(raw, dict) or not all(raw.get(k) is not None for k in ("asset_id", "ts")):
        raise DataError(f"{where}: record needs asset_id, ts and sensors")
    if "sensors" not in raw:
        raise DataError(f"{where}: record needs asset_id, ts and sensors")
    try:
        ts_ms = parse_ts(raw["ts"])
    except ValueError:
        raise DataError(f"{where}: bad ts {raw['ts']!r}") from None
    cycle = raw.get("cycle")
    if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int)):
        raise DataError(f"{where}: cycle must be an integer")
    return HistoryRecord(
        str(raw["asset_id"]),
        ts_ms,
        _numbers(raw["sensors"], where, "sensors"),
        _numbers(raw.get("settings"), where, "settings"),
        cycle,
    )


def read_history(paths: Sequence[Path]) -> list[HistoryRecord]:
    """All records of the history files, in file order; raises ``DataError`` naming the record."""
    out: list[HistoryRecord] = []
    for path in paths:
        for i, raw in enumerate(_flatten(read_replay(path)), 1):
            out.append(to_history_record(raw, f"{path} record {i}"))
    if not out:
        raise DataError(f"no records in {', '.join(map(str, paths))}")
    return out


def _optional(row: dict[str, str | None], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return value or None


def _time(text: str | None, where: str, key: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_ts(int(text) if text.lstrip("-").isdigit() else text)
    except ValueError:
        raise DataError(
            f"{where}: bad {key} {text!r} (RFC 3339 with a zone, or epoch ms)"
        ) from None


def read_events(path: Path) -> MaintenanceLog:
    """Read an events CSV; raises ``DataError`` naming the file and line of a bad row.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = p.write_text("asset_id,event,ts,cycle,start,end,fault_code\\n"
    ...     "a,failure,,192,,,\\n"
    ...     "a,abnormal,,,2026-01-01T00:00:00Z,2026-01-01T06:00:00Z,F7\\n")
    >>> log = read_events(p)
    >>> log.events[0].cycle, log.abnormal[0].fault_code
    (192, 'F7')
    """
    if not resolve(path).is_file():
        raise DataError(f"{path}: no such file")
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not reader.fieldnames or not {"asset_id", "event"} <= set(reader.fieldnames):
        raise DataError(f"{path}: events CSV needs the columns asset_id and event")
    events, abnormal = [], []
    for line, row in enumerate(reader, 2):
        where = f"{path}:{line}"
        asset, kind = _optional(row, "asset_id"), (_optional(row, "event") or "").lower()
        if asset is None:
            raise DataError(f"{where}: missing asset_id")
        if kind == ABNORMAL:
            start = _time(_optional(row, "start"), where, "start")
            end = _time(_optional(row, "end"), where, "end")
            if start is None or end is None or end < start:
                raise DataError(f"{where}: abnormal needs start <= end")
            abnormal.append(AbnormalInterval(asset, start, end, _optional(row, "fault_code") or ""))
            continue
        if kind not in EVENTS:
            raise DataError(
                f"{where}: unknown event {kind!r} (expected {', '.join(EVENTS)}, abnormal)"
            )
        ts = _time(_optional(row, "ts"), where, "ts")
        cycle_text = _optional(row, "cycle")
        try:
            cycle = int(cycle_text) if cycle_text is not None else None
        except ValueError:
            raise DataError(f"{where}: cycle must be an integer") from None
        if ts is None and cycle is None:
            raise DataError(f"{where}: {kind} needs ts or cycle")
        events.append(Event(asset, kind, ts, cycle, line))
    return MaintenanceLog(events, abnormal)


def abnormal_intervals(path: Path) -> dict[str, list[AbnormalInterval]]:
    """The labelled abnormal intervals of an events file, per asset, sorted by start.

    For ``pmaint evaluate anomaly --history FILE --events FILE``.
    """
    out: dict[str, list[AbnormalInterval]] = {}
    for interval in read_events(path).abnormal:
        out.setdefault(interval.asset_id, []).append(interval)
    for intervals in out.values():
        intervals.sort(key=lambda i: i.start_ms)
    return out
