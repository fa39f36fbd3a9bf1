"""An asset monitor's settings: which detectors alarm, and how each part learns and judges.

One :class:`MonitorConfig` is shared by every asset of a policy rule (it is immutable, and a
checkpoint's copy decodes to the shared instance). :mod:`models.policy` builds them from a
policy file; :class:`models.monitor.AssetMonitor` builds its parts from one.
"""

from __future__ import annotations

from dataclasses import dataclass

from models import state_codec
from models.errors import ConfigError

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


@dataclass(frozen=True)
class MonitorConfig(state_codec.Shareable):
    """Settings of an :class:`~models.monitor.AssetMonitor` (shared by all assets of a worker).

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
