"""Per-asset state kept by a worker for the assets of its partitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.schema import Telemetry

_SENSOR_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(names: frozenset[str]) -> frozenset[str]:
    """One frozenset object per distinct sensor set, shared by every asset that has it."""
    return _SENSOR_SETS.setdefault(names, names)


@dataclass(slots=True)
class AssetState:
    """What the worker knows of one asset."""

    asset_id: str
    partition: int
    first_seen_ms: int
    last_seen_ms: int = 0
    records: int = 0
    sensors: frozenset[str] = field(default_factory=frozenset)
    site: str | None = None
    line: str | None = None

    def summary(self) -> dict[str, object]:
        """A JSON-ready view for ``/assets``."""
        return {
            "asset_id": self.asset_id,
            "partition": self.partition,
            "records": self.records,
            "sensors": len(self.sensors),
            "last_seen": datetime.fromtimestamp(self.last_seen_ms / 1000, UTC).isoformat(),
            "site": self.site,
            "line": self.line,
        }

    def observe(self, record: Telemetry) -> None:
        """Take one record into account (records may arrive out of order)."""
        self.records += 1
        self.last_seen_ms = max(self.last_seen_ms, record.ts_ms)
        if not self.sensors.issuperset(record.sensors):
            self.sensors = _shared(self.sensors.union(record.sensors))
        self.site = record.site or self.site
        self.line = record.line or self.line


class Fleet:
    """The assets of one worker, by id.

    >>> from streams.schema import Telemetry
    >>> fleet = Fleet()
    >>> state = fleet.observe(Telemetry("p7", 1767225600000, {"s1": 1.0}), partition=2)
    >>> state.records, sorted(state.sensors), len(fleet)
    (1, ['s1'], 1)
    >>> fleet.drop_partitions({2}); len(fleet)
    0
    """

    def __init__(self) -> None:
        self.assets: dict[str, AssetState] = {}

    def __len__(self) -> int:
        return len(self.assets)

    def observe(self, record: Telemetry, partition: int) -> AssetState:
        state = self.assets.get(record.asset_id)
        if state is None:
            state = AssetState(record.asset_id, partition, record.ts_ms)
            self.assets[record.asset_id] = state
        state.partition = partition
        state.observe(record)
        return state

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the assets of partitions this worker no longer owns."""
        self.assets = {k: v for k, v in self.assets.items() if v.partition not in partitions}
