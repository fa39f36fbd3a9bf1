"""Lives and RUL labels from a plant's own telemetry history and maintenance log.

A history is a list of :class:`HistoryRecord` (the telemetry contract, already parsed) and a
maintenance log a list of :class:`Event`. A ``failure`` or ``replacement`` ends a life of its
asset: every record of the asset up to the event (by ``ts``, or by ``cycle`` when the event gives
no time) belongs to that life, and its RUL is the distance to the event: in cycles when every
record carries ``cycle`` and every life-ending event gives one, else in hours from ``ts``. An
event may lie beyond the asset's last record. ``repair`` and ``maintenance`` do not end a life.

Records after an asset's last life-ending event form a *right-censored* life: it has not failed
within the history, so its RUL is only known to exceed the time to the history's end. Such lives
are left out of training and scoring (and counted), never labelled with a guessed failure.

Sensors and settings are chosen from the data (:func:`select_columns`): columns missing in some
records, constant or near-constant columns and sensors without a trend towards failure are
dropped, each with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError
from models.rul.data import Run

ENDS_LIFE = ("failure", "replacement")
EVENTS = ("failure", "replacement", "repair", "maintenance")
UNITS = ("cycles", "hours")
NEAR_CONSTANT_SHARE = 0.95  # one value in this share of the records: near-constant
MIN_TREND = 0.05  # |correlation with the capped RUL| below this: no trend towards failure
MAX_MISSING_SHARE = 0.01  # a column missing in more of the records is dropped


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One telemetry record of the history: event time in epoch ms and the numbers."""

    asset_id: str
    ts_ms: int
    sensors: Mapping[str, float]
    settings: Mapping[str, float] = field(default_factory=dict)
    cycle: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A maintenance-log row: ``event`` is one of :data:`EVENTS`; ``line`` for messages."""

    asset_id: str
    event: str
    ts_ms: int | None = None
    cycle: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Columns:
    """The sensors and settings a model uses, and why the others were dropped."""

    sensors: tuple[str, ...]
    settings: tuple[str, ...]
    dropped: dict[str, str]
    kept: dict[str, str]


@dataclass(frozen=True)
class Lives:
    """Labelled lives (:class:`Run`, RUL in ``unit``), censored lives and the columns used.

    ``last`` maps each asset to the index in ``runs`` of the life holding its last record, when
    that life ended in a failure; ``unfailed`` are the assets whose last life is censored.
    """

    runs: list[Run]
    censored: list[Run]
    unit: str
    columns: Columns
    last: dict[str, int]
    unfailed: frozenset[str] = frozenset()

    def report(self) -> dict[str, object]:
        """What was read and chosen, for the training report."""
        return {
            "lives": len(self.runs),
            "censored_lives": len(self.censored),
            "unit": self.unit,
            "sensors": list(self.columns.sensors),
            "settings": list(self.columns.settings),
            "dropped": self.columns.dropped,
        }


def rul_unit(records: Sequence[HistoryRecord], events: Sequence[Event]) -> str:
    """``cycles`` when every record has ``cycle`` and every life-ending event gives one.

    >>> r = [HistoryRecord("a", 0, {"s": 1.0}, cycle=1)]
    >>> rul_unit(r, [Event("a", "failure", cycle=9)]), rul_unit(r, [Event("a", "failure", 60)])
    ('cycles', 'hours')
    """
    ends = [e for e in events if e.event in ENDS_LIFE]
    cycles = all(r.cycle is not None for r in records) and all(e.cycle is not None for e in ends)
    return "cycles" if cycles else "hours"


def _split(
    recs: list[HistoryRecord], ends: list[Event], unit: str
) -> list[tuple[list[HistoryRecord], Event]]:
    """Cut one asset's records (in time order) at its life-ending events (in order)."""
    lives: list[tuple[list[HistoryRecord], Event]] = []
    i = 0
    for e in ends:
        j = i
        while j < len(recs) and _before(recs[j], recs[j - 1] if j > i else None, e, unit):
            j += 1
        if j > i:
            lives.append((recs[i:j], e))
        i = j
    lives.append((recs[i:], Event(recs[0].asset_id, "") if recs else Event("", "")))
    return lives


def _before(r: HistoryRecord, prev: HistoryRecord | None, e: Event, unit: str) -> bool:
    if unit == "cycles" and e.ts_ms is None:
        assert r.cycle is not None and e.cycle is not None
        restarted = prev is not None and prev.cycle is not None and r.cycle < prev.cycle
        return r.cycle <= e.cycle and not restarted
    if e.ts_ms is None:
        raise DataError(f"events:{e.line}: {e.event} of {e.asset_id} needs ts (RUL in hours)")
    return r.ts_ms <= e.ts_ms


def _rul(recs: list[HistoryRecord], e: Event, unit: str) -> NDArray[np.float64]:
    if unit == "cycles":
        assert e.cycle is not None
        return np.array([float(e.cycle - (r.cycle or 0)) for r in recs])
    assert e.ts_ms is not None
    return np.array([(e.ts_ms - r.ts_ms) / 3_600_000.0 for r in recs])


def _matrix(
    recs: Sequence[HistoryRecord], names: Sequence[str], settings: bool
) -> NDArray[np.float64]:
    rows = [r.settings if settings else r.sensors for r in recs]
    return np.array([[float(row.get(n, np.nan)) for n in names] for row in rows], dtype=float)


def label_lives(
    records: Sequence[HistoryRecord],
    events: Sequence[Event],
    columns: Columns | None = None,
    cap: float = 125.0,
) -> Lives:
    """Cut each asset's records into lives at its failures/replacements and label their RUL.

    ``columns`` fixes the sensors and settings (a trained model's); without it they are chosen
    by :func:`select_columns` on the labelled lives. Records missing a chosen column are
    dropped. Raises ``DataError`` when no life ends in a failure.

    Examples
    --------
    >>> recs = [HistoryRecord("a", c * 60_000, {"s1": float(c), "s2": 5.0}, cycle=c)
    ...         for c in range(1, 7)]
    >>> lives = label_lives(recs, [Event("a", "failure", cycle=4), Event("a", "repair", cycle=5)])
    >>> [r.rul.tolist() for r in lives.runs], len(lives.censored[0]), lives.unit
    ([[3.0, 2.0, 1.0, 0.0]], 2, 'cycles')
    >>> lives.columns.dropped
    {'s2': 'constant'}
    """
    unit = rul_unit(records, events)
    by_asset: dict[str, list[HistoryRecord]] = {}
    for r in records:
        by_asset.setdefault(r.asset_id, []).append(r)
    ends: dict[str, list[Event]] = {}
    for e in events:
        if e.event in ENDS_LIFE:
            ends.setdefault(e.asset_id, []).append(e)
    raw: list[tuple[str, list[HistoryRecord], NDArray[np.float64] | None]] = []
    for asset, recs in by_asset.items():
        recs.sort(key=lambda r: r.ts_ms)
        asset_ends = ends.get(asset, [])
        if all(e.ts_ms is not None for e in asset_ends):
            asset_ends = sorted(asset_ends, key=lambda e: e.ts_ms or 0)
        for k, (life, e) in enumerate(_split(recs, asset_ends, unit)):
            if life:
                rul = _rul(life, e, unit) if e.event else None
                raw.append((f"{asset}/{k}" if k else asset, life, rul))
    labelled = [(i, life, rul) for i, life, rul in raw if rul is not None]
    if not labelled:
        raise DataError("no life in the history ends in a failure or replacement")
    if columns is None:
        all_recs = [r for _, life, _ in labelled for r in life]
        all_rul = np.concatenate([rul for _, _, rul in labelled])
        columns = select_columns(all_recs, np.minimum(all_rul, cap))
    runs: list[Run] = []
    censored: list[Run] = []
    last: dict[str, int] = {}
    unfailed: set[str] = set()
    for run_id, life, rul in raw:
        x = _matrix(life, columns.sensors, False)
        s = _matrix(life, columns.settings, True) if columns.settings else np.zeros((len(x), 1))
        ok = np.isfinite(x).all(axis=1) & np.isfinite(s).all(axis=1)
        if not ok.any():
            continue
        y = rul[ok] if rul is not None else np.zeros(int(ok.sum()))
        run = Run(run_id, s[ok], x[ok], y, columns.sensors)
        asset = life[0].asset_id
        if rul is None:
            censored.append(run)
            last.pop(asset, None)
            unfailed.add(asset)
        else:
            last[asset] = len(runs)
            runs.append(run)
    return Lives(runs, censored, unit, columns, last, frozenset(unfailed))


def select_columns(records: Sequence[HistoryRecord], rul: NDArray[np.float64]) -> Columns:
    """Choose sensors and settings from labelled records, with the reason for each choice.

    A column missing in more than 1% of records is dropped, so is a constant one or one whose
    most common value fills 95% of the records (near-constant). Settings are kept when they
    vary (they define operating regimes); a sensor is also dropped when its correlation with
    the capped RUL is under 0.05 in size (no trend towards failure).

    >>> recs = [HistoryRecord("a", t, {"up": t * 1.0, "flat": 1.0, "hump": (t - 4.5) ** 2})
    ...         for t in range(10)]
    >>> cols = select_columns(recs, np.arange(10.0)[::-1])
    >>> cols.sensors, sorted(cols.dropped)
    (('up',), ['flat', 'hump'])
    """
    out_sensors: list[str] = []
    out_settings: list[str] = []
    dropped: dict[str, str] = {}
    kept: dict[str, str] = {}
    for is_setting, target in ((False, out_sensors), (True, out_settings)):
        names = sorted(
            {k for r in records for k in (r.settings if is_setting else r.sensors)}, key=_natural
        )
        for name in names:
            col = _matrix(records, [name], is_setting)[:, 0]
            present = np.isfinite(col)
            label = f"setting {name}" if is_setting else name
            if 1.0 - present.mean() > MAX_MISSING_SHARE:
                dropped[label] = f"missing in {1.0 - present.mean():.1%} of records"
                continue
            values, counts = np.unique(col[present], return_counts=True)
            if len(values) <= 1:
                dropped[label] = "constant"
                continue
            share = counts.max() / present.sum()
            if share >= NEAR_CONSTANT_SHARE:
                dropped[label] = f"near-constant: one value in {share:.1%} of records"
                continue
            if is_setting:
                kept[label] = f"varies ({len(values)} values): operating regimes"
                target.append(name)
                continue
            corr = _correlation(col[present], rul[present])
            if abs(corr) < MIN_TREND:
                dropped[label] = f"no trend towards failure: |corr with RUL| {abs(corr):.3f}"
                continue
            kept[label] = f"varies ({len(values)} values), corr with RUL {corr:+.2f}"
            target.append(name)
    if not out_sensors:
        raise DataError(f"no informative sensor in the history (dropped: {dropped})")
    return Columns(tuple(out_sensors), tuple(out_settings), dropped, kept)


def _correlation(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _natural(name: str) -> tuple[str, int]:
    """Sort key: ``s2`` before ``s10``."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return (stem, int(digits) if digits else -1)
