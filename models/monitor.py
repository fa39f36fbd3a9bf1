"""One asset's online model set: detectors by kind, adaptive threshold, explanation, drift.

Detectors, each good at one kind of abnormal (``MonitorConfig.detectors`` picks those that
alarm): ``spike``, ``shift`` and ``variance`` (:class:`models.detectors.novelty.NoveltyDetector`),
``deviation`` (the slow-deviation scorer below, over regime-aware scaling), ``correlation``
(:class:`models.detectors.correlation.CorrelationDetector`, assets with several sensors),
``seasonal`` (:class:`models.detectors.seasonal.SeasonalDetector`, a daily cycle broken),
``flatline`` (:class:`models.detectors.flatline.FlatlineDetector`, a value repeated for longer
than ever before), ``pattern`` (:class:`models.detectors.pattern.PatternDetector`, a recent
subsequence with no near neighbour among the sensor's past ones) and ``level``
(:class:`models.detectors.level.LevelDetector`, a smoothed level outside its lagged range);
all on by default (``DETECTORS``). Their findings go through the
policy by kind (:class:`models.detectors.alarm.KindAlarm`): ``MonitorResult.alarm`` says
whether the asset is in alarm, ``kind`` for which kind, ``since`` since when.

The worker keeps one :class:`AssetMonitor` per asset and hands it each run of that asset's
records in a batch (:meth:`AssetMonitor.update_run`, results as columns in a
:class:`MonitorRun`); :meth:`AssetMonitor.update` is the run of one record. The monitor's state
is checkpointed with :meth:`AssetMonitor.to_bytes`.

Learning policy. A record scored above the threshold is, by default, not learned, so a
developing fault does not become the new normal. Two mechanisms make sure that a permanent
change is still re-learned instead of alarming forever:

* after ``max_skipped`` consecutive skipped records the monitor accepts the state and learns
  again until the asset is back below its threshold (a capped protection);
* when the drift detector reports a level shift of some sensors, their baselines are dropped
  and re-learned from the following records (``relearn_on_drift``); the event itself is
  reported, so the change is never silent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from models import state_codec
from models.anomaly import AdaptiveThreshold, DeviationScorer, HalfSpaceScorer
from models.detectors.alarm import KindAlarm
from models.detectors.correlation import CorrelationDetector
from models.detectors.flatline import FlatlineDetector
from models.detectors.level import LevelDetector
from models.detectors.novelty import NoveltyDetector
from models.detectors.novelty_run import NoveltyRun
from models.detectors.pattern import PatternDetector
from models.detectors.seasonal import SeasonalDetector
from models.drift import DriftEvent, SensorDriftDetector
from models.errors import ArtifactError, ConfigError, PmaintError
from models.run_values import RunValues

# the detectors; every one alarms unless a policy names fewer
DETECTORS = (
    "spike",
    "shift",
    "variance",
    "deviation",
    "correlation",
    "seasonal",
    "flatline",
    "level",
    "pattern",
)
_NOVELTY = frozenset(("spike", "shift", "variance"))


@dataclass(frozen=True)
class MonitorConfig(state_codec.Shareable):
    """Settings of an :class:`AssetMonitor` (shared by all assets of a worker).

    Examples
    --------
    >>> MonitorConfig(warm_up=50).detector
    'deviation'
    """

    detector: str = "deviation"  # "deviation" | "hst"
    aggregate: str = "top2"  # how the deviation scorer combines sensors
    window: int = 5000  # memory of the running statistics (records per regime)
    min_count: int = 30  # records of a sensor in a regime before it is scored
    warm_up: int = 300  # records learned before any alarm
    quantile: float = 0.95  # adaptive threshold: quantile of the asset's own scores ...
    floor: float | None = None  # ... never below this score (None: 2.5 sd, or 0 for "hst")
    learn_flagged: bool = False  # learn records scored above the threshold
    max_skipped: int = 288  # consecutive skipped records before a state is accepted
    relearn_on_drift: bool = False
    relearn_on_cap: bool = True
    drift_method: str = "cusum"
    drift_merge_s: float = 6 * 3600.0
    top_k: int = 3
    seed: int = 0
    # detectors that alarm, and the policy by kind (see models.detectors)
    detectors: tuple[str, ...] = DETECTORS
    debounce: int = 12  # records in a row a sustained deviation needs before it alarms ...
    weak_debounce: int = 48  # ... or one whose peak is at most deviation_history times the
    deviation_history: float = 1.5  # peak of the asset's earlier sustained runs (0: off)
    variance_history: float = 1.0  # a variance finding alarms only above this times its earlier
    # peak on the asset (0: off); earlier peaks are forgotten by novelty_decay per record
    threshold_cap: float = 2.0  # scores count towards the threshold up to this times the floor
    deviation_exit: float = 0.8  # ... and it lasts while score/threshold stays above this
    hold: int = 12  # records an alarm holds after the last record that showed something
    spike_margin: float = 0.4  # novelty margins, in widths of each feature's own range
    shift_margin: float = 0.05
    variance_margin: float = 0.1
    correlation_margin: float = 0.1
    novelty_decay: float = 0.9999  # per-record contraction of the novelty ranges
    novelty_warm_up: int = 300  # records the novelty ranges learn before they are scored
    shift_settle: int = 700  # until a sensor has this many records, a shift must be larger ...
    settle_boost: float = 2.0  # ... by up to 1 + this times (falling linearly to 1 by then)
    seasonal_margin: float = 1.0  # daily-cycle residual novelty margin, in widths of its range
    seasonal_explained: float = 0.5  # share of variance a daily profile must explain to score
    pattern_margin: float = 0.3  # subsequence discord novelty margin (chosen in sample)
    pattern_length: int = 32  # records a subsequence spans (8 segment means)
    pattern_sensors: int = 4  # sensors the pattern detector watches (the first ones)
    pattern_reservoir: int = 32  # past subsequences it keeps per sensor (96 of 32: a day of 5 min)
    pattern_history: float = 1.0  # as variance_history, for the pattern detector's findings
    flatline_ratio: float = 1.25  # a run of one repeated value is a flatline when longer than
    flatline_min_run: int = 36  # this times the sensor's longest earlier run and this many records
    flatline_changes: int = 300  # changes of value a sensor needs before its runs are judged
    level_margin: float = 0.25  # smoothed-level novelty margin, in widths of its range
    level_settle: int = 1500  # until a sensor has this many records, a level must be larger ...
    level_boost: float = 5.0  # ... by up to 1 + this times (falling linearly to 1 by then)
    level_step: int = 4  # records between the level range's updates (its lag: 48 records)
    forecast_alpha: float = 0.5  # one-step level forecast of the spike detector
    spread_alpha: float = 0.1  # short-term residual spread of the variance detector

    def __post_init__(self) -> None:
        unknown = set(self.detectors) - set(DETECTORS)
        if unknown:
            raise ConfigError(f"unknown detectors {sorted(unknown)}; known: {', '.join(DETECTORS)}")
        if self.debounce < 1 or self.hold < 0:
            raise ConfigError("debounce must be at least 1 and hold not negative")
        if min(self.deviation_history, self.variance_history, self.pattern_history) < 0:
            raise ConfigError("deviation, variance and pattern history must not be negative")
        if not 0.0 < self.novelty_decay <= 1.0:
            raise ConfigError(f"novelty_decay must be in (0, 1], not {self.novelty_decay}")
        if self.pattern_length < 16 or self.pattern_length % 8:
            raise ConfigError(
                f"pattern_length must be a multiple of 8, at least 16, not {self.pattern_length}"
            )
        if self.level_step < 1 or 48 % self.level_step:
            raise ConfigError(f"level_step must divide 48 (the level's lag), not {self.level_step}")
        if self.pattern_reservoir < 1:
            raise ConfigError(f"pattern_reservoir must be at least 1, not {self.pattern_reservoir}")
        if self.flatline_min_run < 2:
            raise ConfigError(f"flatline_min_run must be at least 2, not {self.flatline_min_run}")
        if self.detector not in ("deviation", "hst"):
            raise ConfigError(f"detector must be 'deviation' or 'hst', not {self.detector!r}")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"quantile must be in (0, 1), not {self.quantile}")
        if self.warm_up < 0 or self.max_skipped < 0 or self.window < 1:
            raise ConfigError("warm_up, max_skipped and window must not be negative")


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


def _level_detector(cfg: MonitorConfig) -> LevelDetector:
    """The level detector with ``cfg``'s settings (its ranges forget and settle like novelty's)."""
    return LevelDetector(
        margin=cfg.level_margin,
        decay=cfg.novelty_decay,
        warm_up=cfg.novelty_warm_up,
        settle=cfg.level_settle,
        boost=cfg.level_boost,
        step=cfg.level_step,
    )


class RunFailedError(PmaintError):
    """Record ``index`` of a run raised ``__cause__``; ``done`` holds the records before it (their
    learning stands; the records after it were not touched)."""

    def __init__(self, index: int, done: MonitorRun) -> None:
        super().__init__(f"record {index} of the run failed")
        self.index = index
        self.done = done


class AssetMonitor:
    """Online anomaly and drift monitoring of one asset.

    Parameters
    ----------
    config
        Settings; defaults to :class:`MonitorConfig` ``()``.

    Examples
    --------
    >>> m = AssetMonitor(MonitorConfig(warm_up=20, min_count=5))
    >>> for i in range(40):
    ...     r = m.update({"s1": 10.0 + (i % 4) * 0.1, "s2": 5.0 + (i % 3) * 0.1}, None, 60.0 * i)
    >>> r.warming_up, r.is_anomaly, r.records_seen
    (False, False, 40)
    >>> r = m.update({"s1": 14.0, "s2": 5.1}, None, 2400.0)
    >>> r.is_anomaly, r.top_sensors[0][0], r.top_sensors[0][1] > 0
    (True, 's1', True)
    >>> AssetMonitor.from_bytes(m.to_bytes()).records_seen
    41
    """

    # a checkpoint written before the seasonal, pattern or flatline detector restores without it
    _seasonal: SeasonalDetector | None = None
    _pattern: PatternDetector | None = None
    _flatline: FlatlineDetector | None = None
    _level: LevelDetector | None = None

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = cfg = config or MonitorConfig()
        common = {"window": cfg.window, "min_count": cfg.min_count}
        self._scorer: DeviationScorer | HalfSpaceScorer = (
            DeviationScorer(how=cfg.aggregate, **common)
            if cfg.detector == "deviation"
            else HalfSpaceScorer(seed=cfg.seed, **common)
        )
        default_floor = 2.5 if cfg.detector == "deviation" else 0.0
        floor = cfg.floor if cfg.floor is not None else default_floor
        self._threshold = AdaptiveThreshold(q=cfg.quantile, floor=floor)
        self._drift = SensorDriftDetector(method=cfg.drift_method, merge_s=cfg.drift_merge_s)
        self._novelty = NoveltyDetector(
            spike_margin=cfg.spike_margin,
            shift_margin=cfg.shift_margin,
            variance_margin=cfg.variance_margin,
            decay=cfg.novelty_decay,
            forecast_alpha=cfg.forecast_alpha,
            spread_alpha=cfg.spread_alpha,
            min_count=max(cfg.min_count, cfg.novelty_warm_up),
            shift_settle=cfg.shift_settle,
            settle_boost=cfg.settle_boost,
        )
        self._correlation = (
            CorrelationDetector(
                margin=cfg.correlation_margin,
                decay=cfg.novelty_decay,
                min_count=cfg.novelty_warm_up,
            )
            if "correlation" in cfg.detectors
            else None
        )
        self._seasonal = (
            SeasonalDetector(
                margin=cfg.seasonal_margin,
                decay=cfg.novelty_decay,
                min_explained=cfg.seasonal_explained,
            )
            if "seasonal" in cfg.detectors
            else None
        )
        self._pattern = (
            PatternDetector(
                margin=cfg.pattern_margin,
                decay=cfg.novelty_decay,
                length=cfg.pattern_length,
                max_sensors=cfg.pattern_sensors,
                reservoir=cfg.pattern_reservoir,
            )
            if "pattern" in cfg.detectors
            else None
        )
        self._flatline = (
            FlatlineDetector(cfg.flatline_ratio, cfg.flatline_min_run, cfg.flatline_changes)
            if "flatline" in cfg.detectors
            else None
        )
        self._level = _level_detector(cfg) if "level" in cfg.detectors else None
        self._alarm = KindAlarm(
            debounce=cfg.debounce,
            hold=cfg.hold,
            weak_debounce=cfg.weak_debounce,
            deviation_history=cfg.deviation_history,
            history={"variance": cfg.variance_history, "pattern": cfg.pattern_history},
            decay=cfg.novelty_decay,
        )
        self._seen = 0
        self._skipped = 0
        self._accepting = False

    def adopt(self, config: MonitorConfig) -> None:
        """Run under ``config`` from now on (a monitor restored from a checkpoint written under
        other settings: a changed policy file, new defaults). Each part whose construction the
        change alters (a detector turned on, a margin changed) starts afresh, the rest keeps
        what it learned; the asset's warm-up is not repeated (a new detector has its own).

        >>> old = AssetMonitor(MonitorConfig(detectors=("spike",), warm_up=5))
        >>> for i in range(10):
        ...     _ = old.update({"s": float(i % 3)}, None, 60.0 * i)
        >>> m = AssetMonitor.from_bytes(old.to_bytes())
        >>> m.adopt(MonitorConfig(detectors=("spike", "level"), warm_up=5))
        >>> m._level is not None, m._novelty.snapshot().tolist() == old._novelty.snapshot().tolist()
        (True, True)
        """
        changed = _changed_parts(self.config, config) if config != self.config else ()
        if changed:
            fresh = AssetMonitor(config)
            for part in changed:
                setattr(self, part, getattr(fresh, part))
        self.config = config  # one instance shared by the assets of a policy rule

    @property
    def records_seen(self) -> int:
        """Records this monitor has processed."""
        return self._seen

    def _split(
        self, sensors: Mapping[str, float], settings: Mapping[str, float] | None
    ) -> tuple[Mapping[str, float], Mapping[str, float]]:
        """The scorer's ``(sensors, settings)`` of a record: settings named with the regime
        prefix; a sensor whose name starts with it counts as a setting."""
        prefix = self._scorer.regime_prefix
        if _prefixed(tuple(sensors), prefix):
            x = dict(sensors)
            for k, v in (settings or {}).items():
                x[k if k.startswith(prefix) else prefix + k] = v
            return self._scorer.split(x)
        if not settings:
            return sensors, {}
        if all(map(str.startswith, settings, repeat(prefix))):
            return sensors, settings
        return sensors, {k if k.startswith(prefix) else prefix + k: v for k, v in settings.items()}

    def update(
        self,
        sensors: Mapping[str, float],
        settings: Mapping[str, float] | None,
        now: float,
    ) -> MonitorResult:
        """Score one record, then learn from it according to the learning policy: the run of
        one record (:meth:`update_run`).

        ``now`` is the record's event time in seconds.
        """
        try:
            return self.update_run((sensors,), (settings,), (now,)).result(0)
        except RunFailedError as exc:
            cause = exc.__cause__
            assert cause is not None
            raise cause from None

    def update_run(
        self,
        sensors: Sequence[Mapping[str, float]],
        settings: Sequence[Mapping[str, float] | None],
        times: Sequence[float],
    ) -> MonitorRun:
        """Score and learn a run of this asset's records in order (``times``: event times in
        seconds), exactly as :meth:`update` one after another would.

        What does not depend on the records before (reading the values, splitting off the
        settings, locating the operating regimes) is done for the whole run at once
        (:class:`~models.run_values.RunValues`), and so is the novelty detector
        (compiled, :class:`~models.detectors.novelty_run.NoveltyRun`: its findings depend only
        on the sensor values); the other recursions (running statistics, threshold,
        detectors, drift, alarm) go record by record.

        Raises
        ------
        RunFailedError
            When a record raises: the exception is its ``__cause__``, the results before it are
            in ``done``.
        """
        if not len(sensors) == len(settings) == len(times):
            raise ValueError("sensors, settings and times of a run differ in length")
        scorer = self._scorer
        try:
            usual = RunValues.of(sensors)
            rows = usual.size if usual is not None else 0  # records with a row of values
            parts = [self._split(x, s) for x, s in zip(sensors, settings, strict=True)]
            regimes = scorer.regimes_of([s for _, s in parts])
        except Exception:  # a malformed record: record by record, so that it fails alone
            return self._update_each(sensors, settings, times)
        known = scorer.n_regimes
        run = MonitorRun(first_seen=self._seen + 1)
        novelty = None
        if not _NOVELTY.isdisjoint(self.config.detectors):
            first_scored = max(0, self.config.warm_up - self._seen)
            novelty = NoveltyRun.plan(self._novelty, usual, first_scored)
        for i, now in enumerate(times):
            if scorer.n_regimes != known:  # the last record opened a regime: locate the rest
                regimes[i:] = scorer.regimes_of([s for _, s in parts[i:]])
                known = scorer.n_regimes
            values = usual.values[i] if usual is not None and i < rows else None
            try:
                self._step(
                    sensors[i], parts[i][0], parts[i][1], regimes[i], now, run, novelty, values
                )
            except Exception as exc:
                if novelty is not None:
                    novelty.rewind()
                raise RunFailedError(i, run) from exc
        return run

    def _update_each(
        self,
        sensors: Sequence[Mapping[str, float]],
        settings: Sequence[Mapping[str, float] | None],
        times: Sequence[float],
    ) -> MonitorRun:
        run = MonitorRun(first_seen=self._seen + 1)
        for i, now in enumerate(times):
            try:
                part = self._split(sensors[i], settings[i])
                regime = self._scorer.regimes_of([part[1]])[0]
                self._step(sensors[i], part[0], part[1], regime, now, run)
            except Exception as exc:
                raise RunFailedError(i, run) from exc
        return run

    def _step(
        self,
        raw: Mapping[str, float],
        sensors: Mapping[str, float],
        settings: Mapping[str, float],
        regime: int | None,
        now: float,
        run: MonitorRun,
        novelty: NoveltyRun | None = None,
        values: NDArray[np.float64] | None = None,
    ) -> None:
        """Score one record (its ``sensors`` and ``settings`` split off ``raw`` and located in
        ``regime``), learn from it, and append its results to ``run`` (``novelty``: the run's
        novelty findings where planned; ``values``: ``raw``'s values, when already read)."""
        cfg = self.config
        own = values if sensors is raw else None  # (the scorer's sensors are raw's, in order)
        explained = self._scorer.explain(sensors, regime, cfg.top_k, own)
        score, top = explained.score, explained.top
        keys, z = explained.row()  # the scored sensors' deviations
        threshold = self._threshold.get()
        self._seen += 1
        warming_up = self._seen <= cfg.warm_up
        above = score > threshold
        is_anomaly = above and not warming_up
        # a lasting fault must not teach the threshold that it is normal: no score counts above
        # threshold_cap times the floor
        self._threshold.update(min(score, self._threshold.floor * cfg.threshold_cap))
        novel = None
        if novelty is not None and len(run) < novelty.size:
            novel = novelty.take(len(run))
        findings = self._findings(
            raw, keys, z, top, score, threshold, is_anomaly, warming_up, now, novel, values
        )
        alarm = self._alarm.update(findings, now)
        event = None if warming_up else self._drift.update_row(keys, z, now)
        if event is not None and cfg.relearn_on_drift:
            drifted = [s for s, _ in event.sensors]
            self._scorer.forget(drifted)
            self._drift.reset(drifted)
        learn = cfg.learn_flagged or not is_anomaly or self._accepting
        if not learn:
            self._skipped += 1
            if self._skipped >= cfg.max_skipped:
                self._accepting = learn = True
                if cfg.relearn_on_cap:
                    changed = [s for s, _ in top]
                    self._scorer.forget(changed)
                    self._drift.reset(changed)
        if not above:
            self._accepting = False
        if learn:
            self._skipped = 0
            self._scorer.learn_located(sensors, settings, regime, own)
        run.score.append(score)
        run.threshold.append(threshold)
        run.is_anomaly.append(is_anomaly)
        run.warming_up.append(warming_up)
        run.top_sensors.append(self._top_sensors(explained.as_dict(), top) if alarm else top)
        run.drift.append(event)
        run.learned.append(learn)
        run.alarm.append(alarm)
        run.kind.append(self._alarm.kind)
        run.since.append(self._alarm.since)
        run.magnitude.append(self._alarm.magnitude)

    def _top_sensors(
        self, z: Mapping[str, float], top: tuple[tuple[str, float], ...]
    ) -> tuple[tuple[str, float], ...]:
        """In alarm: the alarm's sensors first (with their deviations), then the largest
        deviations (``top``)."""
        named = tuple((s, round(z.get(s, 0.0), 3)) for s in self._alarm.sensors)
        rest = tuple(t for t in top if t[0] not in self._alarm.sensors)
        return (named + rest)[: self.config.top_k]

    def _findings(
        self,
        sensors: Mapping[str, float],
        keys: tuple[str, ...],
        z: NDArray[np.float64],
        top: tuple[tuple[str, float], ...],
        score: float,
        threshold: float,
        is_anomaly: bool,
        warming_up: bool,
        now: float,
        novel: dict[str, tuple[float, tuple[str, ...]]] | None,
        values: NDArray[np.float64] | None,
    ) -> dict[str, tuple[float, tuple[str, ...]]]:
        """What each enabled detector sees in this record (then learns it); ``z``: the
        deviations of the sensors ``keys``, ``top`` the largest of them; ``novel``: the novelty
        findings when already known; ``values``: ``sensors``' values, when already read."""
        wanted = self.config.detectors
        found = {}
        if novel is not None:
            found = novel
        elif not _NOVELTY.isdisjoint(wanted):
            found = self._novelty.score_learn_one(sensors, score=not warming_up)
        if self._correlation is not None:
            found.update(self._correlation.score_learn_row(keys, z, score=not warming_up))
        if self._seasonal is not None:
            found.update(self._seasonal.score_learn_one(sensors, now, score=not warming_up))
        if self._pattern is not None:
            found.update(self._pattern.score_learn_one(sensors, score=not warming_up))
        if self._flatline is not None:
            found.update(self._flatline.score_learn_one(sensors, score=not warming_up))
        if self._level is not None:
            found.update(self._level.score_learn_one(sensors, not warming_up, values))
        ratio = score / threshold if threshold > 0 else score
        lasting = self._alarm.sustained and ratio >= self.config.deviation_exit
        if is_anomaly or (lasting and not warming_up):
            found["deviation"] = (ratio, tuple(s for s, _ in top))
        if not found:
            return found
        return {k: v for k, v in found.items() if k in wanted}

    def to_bytes(self) -> bytes:
        """Checkpoint the whole state (:mod:`models.state_codec`: decoding runs no code)."""
        return state_codec.encode(self, level=6)

    @classmethod
    def from_bytes(cls, data: bytes) -> AssetMonitor:
        """Restore a monitor written by :meth:`to_bytes`.

        Raises
        ------
        ArtifactError
            If ``data`` is not a checkpoint of this format (a pickle, another version, a class
            outside :mod:`models` and the allowed River ones, garbage).
        """
        obj = state_codec.decode(data)
        if not isinstance(obj, cls):
            raise ArtifactError("checkpoint does not hold an asset monitor")
        return obj


# the parts of a monitor built from its settings
_PARTS = (
    "_scorer",
    "_threshold",
    "_drift",
    "_novelty",
    "_correlation",
    "_seasonal",
    "_pattern",
    "_flatline",
    "_level",
    "_alarm",
)


@lru_cache(maxsize=256)
def _prefixed(keys: tuple[str, ...], prefix: str) -> bool:
    """Whether a name of ``keys`` starts with ``prefix`` (a fleet's records share a few key
    orders).

    >>> _prefixed(("s1", "setting_a"), "setting_"), _prefixed(("s1",), "setting_")
    (True, False)
    """
    return any(map(str.startswith, keys, repeat(prefix)))


@lru_cache(maxsize=64)
def _changed_parts(old: MonitorConfig, new: MonitorConfig) -> tuple[str, ...]:
    """The parts a monitor built under ``new`` builds differently from one under ``old``.

    >>> _changed_parts(MonitorConfig(), MonitorConfig(hold=3, shift_margin=0.2))
    ('_novelty', '_alarm')
    """
    before, after = AssetMonitor(old), AssetMonitor(new)
    return tuple(
        part
        for part in _PARTS
        if state_codec.encode(getattr(before, part)) != state_codec.encode(getattr(after, part))
    )
