"""When an asset is in alarm, and for which kind of abnormal: the policy by kind.

* ``spike``, ``shift``, ``variance``, ``correlation``, ``seasonal`` (novelty detectors) alarm
  at the record that shows them; a novelty detector takes the new value into its range at
  once, so a shift alarms once per change, not for as long as it lasts;
* ``deviation`` (the slow-deviation scorer) alarms only after ``debounce`` records in a row
  above its threshold: a sustained deviation, not one noisy record.

An alarm holds for ``hold`` records after the last record that showed anything, so one episode
is one alarm. The alarm reports the kind that started it, its strongest magnitude so far (in
multiples of the kind's threshold: the severity) and since when it lasts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class KindAlarm:
    """The alarm state of one asset.

    Parameters
    ----------
    debounce
        Records in a row a sustained ``deviation`` needs before it alarms.
    hold
        Records an alarm stays on after the last record that showed something.

    Examples
    --------
    >>> a = KindAlarm(debounce=2, hold=1)
    >>> a.update({"spike": (3.0, ("s1",))}, 0.0), a.kind, a.magnitude
    (True, 'spike', 3.0)
    >>> a.update({}, 1.0), a.update({}, 2.0), a.since
    (True, False, None)
    >>> a.update({"deviation": (1.2, ("s2",))}, 3.0), a.update({"deviation": (1.3, ())}, 4.0)
    (False, True)
    >>> a.kind, a.since
    ('deviation', 3.0)
    """

    def __init__(self, debounce: int = 12, hold: int = 12) -> None:
        self.debounce = debounce
        self.hold = hold
        self.kind: str | None = None
        self.since: float | None = None
        self.magnitude = 0.0
        self.sensors: tuple[str, ...] = ()
        self._left = 0  # records the alarm still holds without new evidence
        self._run = 0  # deviation records in a row
        self._run_since = math.nan

    @property
    def sustained(self) -> bool:
        """Whether a sustained deviation is running (it keeps the alarm under hysteresis)."""
        return self._run >= self.debounce

    @property
    def on(self) -> bool:
        """Whether the asset is in alarm."""
        return self.kind is not None

    def update(self, seen: Mapping[str, tuple[float, tuple[str, ...]]], now: float) -> bool:
        """Take one record's findings (kind -> (magnitude, sensors)); return whether in alarm."""
        found = dict(seen)
        if "deviation" in found:
            self._run += 1
            if self._run == 1:
                self._run_since = now
            if self._run < self.debounce:
                del found["deviation"]
        else:
            self._run = 0
        if found:
            kind, (magnitude, sensors) = max(found.items(), key=lambda kv: kv[1][0])
            if self.kind is None:
                self.kind, self.magnitude, self.sensors = kind, magnitude, sensors
                self.since = self._run_since if kind == "deviation" else now
            elif magnitude > self.magnitude:
                self.magnitude, self.sensors = magnitude, sensors or self.sensors
            self._left = self.hold
        elif self.kind is not None:
            self._left -= 1
            if self._left < 0:
                self.kind, self.since, self.magnitude, self.sensors = None, None, 0.0, ()
        return self.on
