"""Per-asset state kept by a worker for the assets of its partitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streams.schema import Telemetry

if TYPE_CHECKING:
    from models.monitor import AssetMonitor, MonitorResult
    from models.rul.serve import AssetWindow
    from streams.alerts import RulSignal
    from streams.history import History

_SENSOR_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(names: frozenset[str]) -> frozenset[str]:
    """One frozenset object per distinct sensor set, shared by every asset that has it."""
    return _SENSOR_SETS.setdefault(names, names)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class AssetState:
    """What the worker knows of one asset: bookkeeping, its models, its latest outputs."""

    asset_id: str
    partition: int
    first_seen_ms: int
    last_seen_ms: int = 0
    records: int = 0
    sensors: frozenset[str] = field(default_factory=frozenset)
    site: str | None = None
    line: str | None = None
    monitor: AssetMonitor | None = None
    asset_type: str | None = None  # the record's ``type``: which RUL model serves it
    window: AssetWindow | None = None
    window_key: str = ""  # inputs of the model the window was built for
    last: MonitorResult | None = None
    rul: RulSignal | None = None
    history: History | None = None
    since_checkpoint: int = 0
    checkpointed_at: float = 0.0
    since_rul: int = 0
    restored: bool = False
    alerts: dict[str, str] = field(default_factory=dict)  # open alerts: kind -> severity

    def observe(self, record: Telemetry) -> None:
        """Take one record into account (records may arrive out of order)."""
        self.records += 1
        self.last_seen_ms = max(self.last_seen_ms, record.ts_ms)
        if not self.sensors.issuperset(record.sensors):
            self.sensors = _shared(self.sensors.union(record.sensors))
        self.site = record.site or self.site
        self.line = record.line or self.line
        self.asset_type = record.type or self.asset_type

    def summary(self, history: bool = False) -> dict[str, object]:
        """A JSON-ready view for ``/assets`` (with the recent history if asked)."""
        out: dict[str, object] = {
            "asset_id": self.asset_id,
            "partition": self.partition,
            "records": self.records,
            "sensors": len(self.sensors),
            "last_seen": _iso(self.last_seen_ms),
            "site": self.site,
            "line": self.line,
            "type": self.asset_type,
            "restored": self.restored,
            "open_alerts": dict(self.alerts),
        }
        if self.last is not None:
            out |= {
                "score": round(self.last.score, 4),
                "threshold": round(self.last.threshold, 4),
                "is_anomaly": self.last.is_anomaly,
                "warming_up": self.last.warming_up,
                "top_sensors": [[s, round(c, 3)] for s, c in self.last.top_sensors],
            }
        if self.rul is not None:
            out |= {
                "rul": round(self.rul.rul, 1),
                "rul_p10": round(self.rul.rul_p10, 1),
                "rul_p90": round(self.rul.rul_p90, 1),
                "model_version": self.rul.model_version,
            }
        if history:
            out["history"] = self.history.points() if self.history is not None else []
        return out


class Fleet:
    """The assets of one worker, by id.

    ``restore`` is called for each asset the worker has not seen yet (to resume it from its
    checkpoint); ``forget`` for each asset of a partition the worker lost.

    >>> fleet = Fleet()
    >>> state = fleet.observe(Telemetry("p7", 1767225600000, {"s1": 1.0}), partition=2)
    >>> state.records, sorted(state.sensors), len(fleet)
    (1, ['s1'], 1)
    >>> fleet.drop_partitions({2}); len(fleet)
    0
    """

    def __init__(
        self,
        restore: Callable[[AssetState], None] | None = None,
        forget: Callable[[str], None] | None = None,
    ) -> None:
        self.assets: dict[str, AssetState] = {}
        self.restore = restore
        self.forget = forget

    def __len__(self) -> int:
        return len(self.assets)

    def observe(self, record: Telemetry, partition: int) -> AssetState:
        state = self.assets.get(record.asset_id)
        if state is None:
            state = AssetState(record.asset_id, partition, record.ts_ms)
            if self.restore is not None:
                self.restore(state)
            self.assets[record.asset_id] = state
        state.partition = partition
        state.observe(record)
        return state

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the assets of partitions this worker no longer owns."""
        gone = [k for k, v in self.assets.items() if v.partition in partitions]
        for asset_id in gone:
            del self.assets[asset_id]
            if self.forget is not None:
                self.forget(asset_id)
