"""When an asset is in alarm, and for which kind of abnormal: the policy by kind.

* ``spike``, ``shift``, ``variance``, ``correlation``, ``seasonal``, ``flatline``, ``level``
  (novelty detectors) alarm at the record that shows them; a novelty detector takes the new
  value into its range at once, so a shift alarms once per change, not for as long as it lasts
  (a flatline run is reported once);
* ``deviation`` (the slow-deviation scorer) alarms only after ``debounce`` records in a row
  above its threshold: a sustained deviation, not one noisy record. A run whose peak stays at
  or below ``deviation_history`` times the peak of the asset's earlier sustained runs
  (forgetting by ``decay`` per record) must last ``weak_debounce`` records: this asset has
  shown as much before, so only a longer run says more;
* the asset's own history of findings: a kind named in ``history`` alarms only when its
  magnitude exceeds that many times the largest the same kind showed earlier on this asset
  (forgetting by ``decay`` per record). Every finding counts towards that peak, whether it
  alarmed or not.

An alarm holds for ``hold`` records after the last record that showed anything, so one episode
is one alarm. The alarm reports the kind that started it, its strongest magnitude so far (in
multiples of the kind's threshold: the severity) and since when it lasts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType


class KindAlarm:
    """The alarm state of one asset.

    Parameters
    ----------
    debounce
        Records in a row a sustained ``deviation`` needs before it alarms.
    hold
        Records an alarm stays on after the last record that showed something.
    weak_debounce
        Records in a row a weak deviation run needs (``debounce`` or less: no difference).
    deviation_history
        A run whose peak is at most this many times the asset's earlier sustained runs' peak
        is weak (0: off).
    history
        Kind -> factor: a finding of that kind alarms only above factor times the kind's
        earlier peak on this asset.
    decay
        Per-record forgetting of the earlier peaks.

    Examples
    --------
    >>> a = KindAlarm(debounce=2, hold=1)
    >>> a.update({"spike": (3.0, ("s1",))}, 0.0), a.kind, a.magnitude
    (True, 'spike', 3.0)
    >>> a.update({}, 1.0), a.update({}, 2.0), a.since
    (True, False, None)
    >>> a.update({"deviation": (1.6, ("s2",))}, 3.0), a.update({"deviation": (1.3, ())}, 4.0)
    (False, True)
    >>> a.kind, a.since
    ('deviation', 3.0)

    A deviation no larger than the asset's earlier ones must last ``weak_debounce`` records; a
    variance finding no larger than one the asset showed before does not alarm:

    >>> b = KindAlarm(2, 0, weak_debounce=3, deviation_history=1.0, history={"variance": 1.0})
    >>> [b.update({"deviation": (2.0, ())}, t) for t in (0.0, 1.0)], b.update({}, 2.0)
    ([False, True], False)
    >>> [b.update({"deviation": (1.5, ())}, t) for t in (3.0, 4.0, 5.0)], b.update({}, 6.0)
    ([False, False, True], False)
    >>> b.update({"variance": (2.0, ())}, 7.0), b.update({}, 8.0)
    (True, False)
    >>> b.update({"variance": (1.9, ())}, 9.0), b.update({"variance": (2.5, ())}, 10.0)
    (False, True)
    """

    # set only by the constructor: checkpoints written before these existed restore with them
    weak_debounce = 0
    deviation_history = 0.0
    history: Mapping[str, float] = MappingProxyType({})
    decay = 1.0
    _n = 0  # records seen
    _peaks: Mapping[str, tuple[float, int]] = MappingProxyType({})  # kind -> (peak, its record)
    _run_peak = 0.0  # largest magnitude of the running deviation

    def __init__(
        self,
        debounce: int = 12,
        hold: int = 12,
        weak_debounce: int = 0,
        deviation_history: float = 0.0,
        history: Mapping[str, float] | None = None,
        decay: float = 1.0,
    ) -> None:
        self.debounce = debounce
        self.hold = hold
        self.weak_debounce = weak_debounce
        self.deviation_history = deviation_history
        self.history = {k: f for k, f in (history or {}).items() if f > 0.0}
        self.decay = decay
        self.kind: str | None = None
        self.since: float | None = None
        self.magnitude = 0.0
        self.sensors: tuple[str, ...] = ()
        self._left = 0  # records the alarm still holds without new evidence
        self._run = 0  # deviation records in a row
        self._run_since = math.nan
        self._run_peak = 0.0
        self._n = 0
        self._peaks = {}

    @property
    def sustained(self) -> bool:
        """Whether a sustained deviation is running (it keeps the alarm under hysteresis)."""
        return self._run >= self.debounce

    @property
    def on(self) -> bool:
        """Whether the asset is in alarm."""
        return self.kind is not None

    def _peak(self, kind: str) -> float:
        """The kind's earlier peak on this asset, forgotten by ``decay`` per record since."""
        peak, at = self._peaks.get(kind, (0.0, 0))
        return peak * self.decay ** (self._n - at) if peak else 0.0

    def _remember(self, kind: str, magnitude: float) -> None:
        if magnitude > self._peak(kind):  # a new mapping: rare, and never the class default
            self._peaks = {**self._peaks, kind: (magnitude, self._n)}

    def _deviation_due(self) -> bool:
        """Whether the running deviation has lasted long enough to alarm."""
        if self._run < self.debounce:
            return False
        if self._run >= self.weak_debounce:
            return True
        return self._run_peak > self.deviation_history * self._peak("deviation")

    def update(self, seen: Mapping[str, tuple[float, tuple[str, ...]]], now: float) -> bool:
        """Take one record's findings (kind -> (magnitude, sensors)); return whether in alarm."""
        self._n += 1
        found = dict(seen)
        for kind, factor in self.history.items():
            if kind in found:
                magnitude = found[kind][0]
                if magnitude <= factor * self._peak(kind):
                    del found[kind]
                self._remember(kind, magnitude)
        if "deviation" in found:
            self._run += 1
            if self._run == 1:
                self._run_since, self._run_peak = now, 0.0
            self._run_peak = max(self._run_peak, found["deviation"][0])
            if not self._deviation_due():
                del found["deviation"]
        else:
            if self._run >= self.debounce and self.deviation_history > 0.0:
                self._remember("deviation", self._run_peak)
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
