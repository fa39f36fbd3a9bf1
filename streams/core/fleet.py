"""Per-asset state kept by a worker for the assets of its partitions.

Bounded: an asset has at most ``max_sensors`` distinct sensor names (a record bringing more is
refused, and the worker dead-letters it), and at most ``budget`` assets stay in memory. The
least recently seen asset beyond the budget is evicted (the worker checkpoints it to the
changelog, then drops it) and restored from its checkpoint on its next record.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models import state_codec
from models.errors import ArtifactError
from models.interning import Interner
from streams.core.alerts import AlertState
from streams.core.schema import Telemetry
from streams.core.silence import SilenceWatch

if TYPE_CHECKING:
    from models.monitor import AssetMonitor
    from models.monitor_run import MonitorResult, MonitorRun
    from models.rul.serve import AssetWindow
    from streams.core.history import History
    from streams.core.signals import RulSignal

SENSOR_SETS = Interner[frozenset[str]]()  # most assets of a fleet have the same sensors


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
    life: str | None = None  # the records' ``life``: a change starts a new life
    window: AssetWindow | None = None
    window_key: str = ""  # inputs of the model the window was built for
    latest: tuple[MonitorRun, int] | None = None  # the run and place of its latest result
    rul: RulSignal | None = None
    history: History | None = None
    since_checkpoint: int = 0  # records since the last checkpoint
    since_rul: int = 0
    restored: bool = False
    settings_due: bool = False  # restored: its monitor takes this worker's settings on its next run
    alert: AlertState = field(default_factory=AlertState)  # its alert lifecycle

    @property
    def last(self) -> MonitorResult | None:
        """The monitor's result of the asset's latest record scored (made when asked for: most
        runs' are never read)."""
        latest = self.latest
        return None if latest is None else latest[0].result(latest[1])

    @property
    def alerts(self) -> dict[str, str]:
        """The asset's open alerts: kind -> severity."""
        return self.alert.open_alerts()

    def observe(self, record: Telemetry) -> None:
        """Take one record into account (records may arrive out of order)."""
        self.records += 1
        self.last_seen_ms = max(self.last_seen_ms, record.ts_ms)
        self.add_sensors(record.sensors)
        self.site = record.site or self.site
        self.line = record.line or self.line
        self.asset_type = record.type or self.asset_type
        if record.life is not None:
            if record.life != self.life and self.life is not None and self.window is not None:
                self.window.clear()  # a replaced asset: its age and trend start afresh
            self.life = record.life

    def add_sensors(self, names: Iterable[str]) -> None:
        if not self.sensors.issuperset(names):
            self.sensors = SENSOR_SETS.shared(self.sensors.union(names))

    def new_sensors(self, record: Telemetry) -> int:
        """How many sensor names of ``record`` this asset has not had yet."""
        return (
            0
            if self.sensors.issuperset(record.sensors)
            else len(record.sensors.keys() - self.sensors)
        )

    def encode(self) -> bytes:
        """The asset's checkpoint: its models, alert state and bookkeeping as bytes of
        :mod:`models.state_codec` (reading them back runs no code)."""
        return state_codec.encode(
            {
                "v": CHECKPOINT_VERSION,
                "monitor": self.monitor,
                "alerts": self.alert.to_data(),
                "records": self.records,
                "first_seen_ms": self.first_seen_ms,
                "last_seen_ms": self.last_seen_ms,
                "sensors": sorted(self.sensors),
            }
        )

    def restore(self, raw: bytes) -> None:
        """Resume from :meth:`encode` bytes (of this version or version 2, whose open alerts
        were a copy of what the alert state holds); ArtifactError, with nothing changed, when
        they are not a checkpoint of an asset."""
        data = _checked(state_codec.decode(raw))
        alert = _alert_state(data["alerts"])
        self.monitor = data["monitor"]
        self.alert = alert
        self.records = data["records"]
        self.first_seen_ms = data["first_seen_ms"]
        self.last_seen_ms = data["last_seen_ms"]
        self.add_sensors(data["sensors"])
        self.restored = self.settings_due = True

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
            "open_alerts": self.alerts,
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


CHECKPOINT_VERSION = 3  # 1: pickle, refused since (a pickle runs code when read); 2: + open alerts
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "v": int, "monitor": object, "alerts": (dict, type(None)), "records": int,
    "first_seen_ms": int, "last_seen_ms": int, "sensors": list,
}  # fmt: skip


def _checked(data: Any) -> dict[str, Any]:
    """``data`` as a checkpoint of this version (one of version 2 converted), else
    ArtifactError."""
    from models.monitor import AssetMonitor  # (river: imported once a checkpoint is read)

    if isinstance(data, dict) and data.get("v") == 2 and "open_alerts" in data:
        data = {k: v for k, v in data.items() if k != "open_alerts"} | {"v": CHECKPOINT_VERSION}
    if not isinstance(data, dict) or data.keys() != _FIELDS.keys():
        raise ArtifactError("not a checkpoint of an asset")
    if data["v"] != CHECKPOINT_VERSION:
        raise ArtifactError(f"checkpoint version {data['v']!r} (expected {CHECKPOINT_VERSION})")
    for key, kind in _FIELDS.items():
        if not isinstance(data[key], kind):
            raise ArtifactError(f"checkpoint field {key} is not {kind}")
    if not isinstance(data["monitor"], (AssetMonitor, type(None))):
        raise ArtifactError("checkpoint field monitor is not an AssetMonitor")
    if not all(type(s) is str for s in data["sensors"]):
        raise ArtifactError("checkpoint field sensors is not a list of str")
    return data


def stored_alerts(raw: bytes) -> AlertState:
    """The alert state in :meth:`AssetState.encode` bytes, its models left undecoded;
    ArtifactError when malformed."""
    return _alert_state(state_codec.peek(raw, "alerts"))


def _alert_state(data: Any) -> AlertState:
    try:
        return AlertState.from_data(data) if data else AlertState()
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"checkpoint alert state malformed ({exc!r})") from None


class Fleet:
    """The assets of one worker, by id, least recently seen first.

    ``restore`` is called for each asset not in memory (to resume it from its checkpoint);
    ``forget`` for each asset dropped from memory (evicted, or its partition lost);
    ``next_look`` gives an evicted asset's alert state the event time until which its silence
    is watched (:mod:`streams.core.silence`; none without it).

    >>> fleet = Fleet(max_sensors=2, budget=1)
    >>> state = fleet.observe(Telemetry("p7", 1767225600000, {"s1": 1.0}), partition=2)
    >>> state.records, sorted(state.sensors), len(fleet)
    (1, ['s1'], 1)
    >>> fleet.observe(Telemetry("p7", 1767225601000, {"s2": 1.0, "s3": 1.0}), partition=2)
    >>> fleet.observe(Telemetry("p8", 1767225601000, {"s1": 1.0}), partition=2).records
    1
    >>> [s.asset_id for s in fleet.over_budget()], len(fleet)
    (['p7'], 1)
    >>> fleet.drop_partitions({2}); len(fleet)
    0
    """

    def __init__(
        self,
        restore: Callable[[AssetState], None] | None = None,
        forget: Callable[[str], None] | None = None,
        *,
        max_sensors: int = 1000,
        budget: int = 0,
        clock: Callable[[], float] = time.monotonic,
        next_look: Callable[[AlertState], float] | None = None,
    ) -> None:
        self.assets: OrderedDict[str, AssetState] = OrderedDict()
        self.restore = restore
        self.forget = forget
        self.max_sensors = max_sensors
        self.budget = budget  # assets in memory; 0: no limit
        self.clock = clock
        # assets with changes not checkpointed yet -> since when, oldest first
        self.unsaved: OrderedDict[str, float] = OrderedDict()
        self.silent = SilenceWatch()  # assets owned but not in memory, watched for silence
        self.next_look = next_look

    def __len__(self) -> int:
        return len(self.assets)

    def observe(self, record: Telemetry, partition: int) -> AssetState | None:
        """The record's asset, updated; ``None`` (nothing changed) when the record would take
        the asset past ``max_sensors`` distinct sensors."""
        state = self.assets.get(record.asset_id)
        if state is None:
            state = AssetState(record.asset_id, partition, record.ts_ms)
            if self.restore is not None:
                self.restore(state)
            self.assets[record.asset_id] = state
            self.silent.forget(record.asset_id)
        else:
            self.assets.move_to_end(record.asset_id)
        if len(state.sensors) + state.new_sensors(record) > self.max_sensors:
            return None
        state.partition = partition
        state.observe(record)
        if record.asset_id not in self.unsaved:
            self.unsaved[record.asset_id] = self.clock()
        return state

    def revive(self, asset_id: str, partition: int) -> AssetState | None:
        """Bring a silent asset back into memory from its checkpoint, with no record, as the
        next to be evicted; ``None`` when it is in memory already or has no checkpoint."""
        if asset_id in self.assets or self.restore is None:
            return None
        state = AssetState(asset_id, partition, 0)
        self.restore(state)
        if not state.restored:
            return None
        self.assets[asset_id] = state
        self.assets.move_to_end(asset_id, last=False)
        return state

    def changed(self, asset_id: str) -> None:
        """Something of the asset's state other than a record changed (an alert opened at
        event time): it is due a checkpoint like after a record."""
        state = self.assets.get(asset_id)
        if state is not None:
            state.since_checkpoint += 1
            self.unsaved.setdefault(asset_id, self.clock())

    def saved(self, asset_id: str) -> None:
        """The asset's state was checkpointed."""
        self.unsaved.pop(asset_id, None)

    def unsaved_since(self, before: float, limit: int) -> list[AssetState]:
        """Up to ``limit`` assets whose changes are unsaved since ``before`` or longer (idle
        assets included), oldest first; they count as saved from now on."""
        due: list[AssetState] = []
        while self.unsaved and len(due) < limit:
            asset_id, since = next(iter(self.unsaved.items()))
            if since > before:
                break
            del self.unsaved[asset_id]
            state = self.assets.get(asset_id)
            if state is not None:
                due.append(state)
        return due

    def over_budget(self) -> Iterator[AssetState]:
        """Remove and yield the least recently seen assets until the fleet fits its budget
        (the caller checkpoints each one before it is forgotten)."""
        while self.budget and len(self.assets) > self.budget:
            _, state = self.assets.popitem(last=False)
            yield state
            self.unsaved.pop(state.asset_id, None)
            if self.next_look is not None:
                self.silent.watch(state.asset_id, state.partition, self.next_look(state.alert))
            if self.forget is not None:
                self.forget(state.asset_id)

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the assets of partitions this worker no longer owns."""
        gone = [k for k, v in self.assets.items() if v.partition in partitions]
        self.silent.drop_partitions(partitions)
        for asset_id in gone:
            del self.assets[asset_id]
            self.unsaved.pop(asset_id, None)
            if self.forget is not None:
                self.forget(asset_id)
