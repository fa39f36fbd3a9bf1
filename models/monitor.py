"""One asset's online model set: detectors by kind, adaptive threshold, explanation, drift.

Detectors, each good at one kind of abnormal (the settings'
:attr:`~models.monitor_config.MonitorConfig.detectors` pick those that alarm): ``spike``,
``shift`` and ``variance`` (:class:`models.detectors.novelty.NoveltyDetector`), ``deviation``
(the slow-deviation scorer below, over regime-aware scaling), ``correlation``
(:class:`models.detectors.correlation.CorrelationDetector`, assets with several sensors),
``seasonal`` (:class:`models.detectors.seasonal.SeasonalDetector`, a daily cycle broken),
``flatline`` (:class:`models.detectors.flatline.FlatlineDetector`, a value repeated for longer
than ever before), ``pattern`` (:class:`models.detectors.pattern.PatternDetector`, a recent
subsequence with no near neighbour among the sensor's past ones) and ``level``
(:class:`models.detectors.level.LevelDetector`, a smoothed level outside its lagged range);
all on by default (:data:`~models.monitor_config.DETECTORS`). Their findings go through the
policy by kind (:class:`models.detectors.alarm.KindAlarm`): a record's result
(:class:`~models.monitor_run.MonitorResult`) says whether the asset is in ``alarm``, ``kind``
for which kind, ``since`` since when.

The worker keeps one :class:`AssetMonitor` per asset and hands it each run of that asset's
records in a batch (:meth:`AssetMonitor.update_run`, results as columns in a
:class:`~models.monitor_run.MonitorRun`); :meth:`AssetMonitor.update` is the run of one
record. The monitor's state is checkpointed with :meth:`AssetMonitor.to_bytes`.

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
from functools import lru_cache
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from models import state_codec
from models.anomaly import DeviationScorer, HalfSpaceScorer
from models.detectors.alarm import KindAlarm
from models.detectors.correlation import CorrelationDetector
from models.detectors.flatline import FlatlineDetector
from models.detectors.level import LevelDetector
from models.detectors.novelty import NoveltyDetector
from models.detectors.novelty_run import NoveltyRun
from models.detectors.pattern import PatternDetector
from models.detectors.seasonal import SeasonalDetector
from models.drift import SensorDriftDetector
from models.errors import ArtifactError
from models.monitor_config import MonitorConfig
from models.monitor_run import MonitorResult, MonitorRun, RunFailedError
from models.run_values import RunValues
from models.threshold import AdaptiveThreshold

_NOVELTY = frozenset(("spike", "shift", "variance"))


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
