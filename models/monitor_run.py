"""What a run of an asset's records did to its monitor: results as columns, one record's as
a value, and the error of a run that failed part way."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.drift import DriftEvent
from models.errors import PmaintError


@dataclass(frozen=True)
class MonitorResult:
    """What one record did to its asset's models."""

    score: float
    threshold: float
    is_anomaly: bool
    warming_up: bool
    top_sensors: tuple[tuple[str, float], ...]
    drift: DriftEvent | None
    records_seen: int
    learned: bool = True
    alarm: bool = False  # the asset is in alarm (policy by kind)
    kind: str | None = None  # which kind of abnormal started the alarm
    since: float | None = None  # event time the alarm's episode began
    magnitude: float = 0.0  # strongest finding so far, in multiples of its kind's threshold


@dataclass
class MonitorRun:
    """What a run of records did to an asset's models, one column per field of
    :class:`MonitorResult` (item ``i`` is the run's ``i``-th record); :meth:`result` builds the
    record's :class:`MonitorResult`."""

    first_seen: int  # records_seen of the run's first record
    score: list[float] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    is_anomaly: list[bool] = field(default_factory=list)
    warming_up: list[bool] = field(default_factory=list)
    top_sensors: list[tuple[tuple[str, float], ...]] = field(default_factory=list)
    drift: list[DriftEvent | None] = field(default_factory=list)
    learned: list[bool] = field(default_factory=list)
    alarm: list[bool] = field(default_factory=list)
    kind: list[str | None] = field(default_factory=list)
    since: list[float | None] = field(default_factory=list)
    magnitude: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.score)

    def records_seen(self, i: int) -> int:
        """The monitor's count of the run's ``i``-th record (its first record is 1)."""
        return self.first_seen + i

    def result(self, i: int) -> MonitorResult:
        """The :class:`MonitorResult` of the run's ``i``-th record."""
        return MonitorResult(
            score=self.score[i],
            threshold=self.threshold[i],
            is_anomaly=self.is_anomaly[i],
            warming_up=self.warming_up[i],
            top_sensors=self.top_sensors[i],
            drift=self.drift[i],
            records_seen=self.records_seen(i),
            learned=self.learned[i],
            alarm=self.alarm[i],
            kind=self.kind[i],
            since=self.since[i],
            magnitude=self.magnitude[i],
        )


class RunFailedError(PmaintError):
    """Record ``index`` of a run raised ``__cause__``; ``done`` holds the records before it (their
    learning stands; the records after it were not touched)."""

    def __init__(self, index: int, done: MonitorRun) -> None:
        super().__init__(f"record {index} of the run failed")
        self.index = index
        self.done = done
