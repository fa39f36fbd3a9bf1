"""The alert lifecycle's thresholds and timings (:class:`AlertPolicy`), defaults from the
settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.errors import ConfigError
from streams.settings import default


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds and timings of the alert lifecycle (times in seconds of event time)."""

    debounce_records: int = default("alert_debounce_records")
    debounce_s: float = default("alert_debounce_s")
    cooldown_s: float = default("alert_cooldown_s")
    update_every_s: float = default("alert_update_every_s")
    # score/threshold ratios for info, warning, critical; resolve under anomaly_exit_ratio
    anomaly_levels: tuple[float, float, float] = (1.0, 1.5, 2.0)
    anomaly_exit_ratio: float = 0.8
    # P10 (cycles) under these → info, warning, critical (None: level unused)
    rul_levels: tuple[float | None, float | None, float | None] = (
        None,
        default("alert_rul_warning"),
        default("alert_rul_critical"),
    )
    rul_exit_margin: float = 10.0
    drift_warning_sensors: int = 3
    drift_quiet_s: float = 3600.0
    stale_after_s: float = default("alert_stale_after_s")
    stale_critical_s: float = 3600.0
    stuck_records: int = 30
    stuck_ignore: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        a = self.anomaly_levels
        rul = [x for x in self.rul_levels if x is not None]
        problems = [
            (self.debounce_records < 1, "debounce_records must be >= 1"),
            (self.stuck_records < 2, "stuck_records must be >= 2"),
            (not a[0] <= a[1] <= a[2], "anomaly_levels must be ascending"),
            (not 0 <= self.anomaly_exit_ratio <= a[0], "anomaly_exit_ratio not in [0, levels[0]]"),
            (not rul, "rul_levels needs at least one level"),
            (rul != sorted(rul, reverse=True), "rul_levels must be descending"),
            (self.stale_critical_s < self.stale_after_s, "stale_critical_s < stale_after_s"),
            (
                min(self.debounce_s, self.cooldown_s, self.rul_exit_margin) < 0
                or min(self.update_every_s, self.drift_quiet_s, self.stale_after_s) <= 0,
                "times and margins must be positive",
            ),
        ]
        for bad, text in problems:
            if bad:
                raise ConfigError(f"AlertPolicy: {text}")
