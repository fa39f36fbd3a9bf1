"""Alert lifecycle: model signals in, idempotent alert events out.

What flows through: the worker turns each scored record into small typed signals
(:mod:`streams.core.signals`) and hands them to the :class:`AlertEngine` with the asset's
:class:`AlertState` (which the asset's :class:`~streams.core.fleet.AssetState` owns and
checkpoints).
For every (asset, alert kind) the engine runs the same small state machine, its thresholds and
timings those of the :class:`~streams.core.alert_policy.AlertPolicy`::

    idle ──condition holds K records or T s (debounce)──▶ open
    open ──severity changes, or every N min of event time──▶ update
    open ──exit condition (looser than the enter one: hysteresis)──▶ resolved ──cooldown──▶ idle

``anomaly`` and ``rul`` follow it as is; a ``drift`` event opens at once and resolves after a
quiet period; ``data_quality`` opens at once when an asset stops reporting (found by
``tick(now)``) or a sensor repeats the same value for M records. Time is only ever the event time
passed in, never the clock, so replaying a stream yields the same events with the same
``alert_id`` (:func:`~streams.core.alert_event.alert_id`, a hash of asset, kind and opened-at time):
downstream writes are idempotent.

The per-asset state is a few slotted numbers (see :meth:`AlertState.to_data`) so the worker can
hold a large fleet and checkpoint it; :class:`~streams.core.alert_book.AlertBook` keeps a fleet's
states by asset for tools and tests that feed signals without a worker.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import eq, itemgetter
from typing import Any

from models.interning import Interner
from streams.core.alert_event import KINDS, SEVERITIES, AlertEvent, Kind, State, alert_id, message
from streams.core.alert_policy import AlertPolicy
from streams.core.signals import AnomalySignal, DriftSignal, ReadingSignal, RulSignal, Signal

__all__ = ["KINDS", "SEVERITIES", "AlertEngine", "AlertEvent", "AlertState"]

_IDLE, _PENDING, _OPEN = 0, 1, 2
_STALE, _STUCK = 1, 2


class _Track:
    """Lifecycle state of one (asset, kind)."""

    __slots__ = (
        "cause", "count", "emitted", "last", "opened", "phase", "resolved", "severity", "since",
    )  # fmt: skip

    def __init__(self, values: Sequence[float | None] = (0, 0, 0, 0, 0, 0, None, 0, 0)) -> None:
        phase, count, since, opened, severity, emitted, resolved, last, cause = (
            -math.inf if v is None else v for v in values
        )
        self.phase, self.count, self.since = int(phase), int(count), float(since)
        self.opened, self.severity, self.emitted = float(opened), int(severity), float(emitted)
        self.resolved, self.last, self.cause = float(resolved), float(last), int(cause)

    def to_list(self) -> list[float | None]:
        resolved = None if self.resolved == -math.inf else self.resolved  # JSON has no -inf
        return [self.phase, self.count, self.since, self.opened, self.severity, self.emitted,
                resolved, self.last, self.cause]  # fmt: skip


class AlertState:
    """The alert state of one asset (its tracks per kind, its stuck-sensor counts): owned by the
    asset's :class:`~streams.core.fleet.AssetState`, acted on by :class:`AlertEngine`."""

    __slots__ = ("keys", "names", "runs", "seen", "tracks", "values", "varied")

    def __init__(self) -> None:
        self.seen = -math.inf
        self.tracks: dict[str, _Track] = {}
        self.names: tuple[str, ...] = ()
        self.keys: tuple[str, ...] | None = None  # the last reading's sensors, in its order
        self.values = array("d")
        self.runs = array("I")
        self.varied = array("B")  # 1 once a sensor changed: constant-by-design is not stuck

    def open_alerts(self) -> dict[str, str]:
        """The open alerts: kind -> severity."""
        return {k: SEVERITIES[t.severity] for k, t in self.tracks.items() if t.phase == _OPEN}

    def to_data(self) -> dict[str, Any]:
        """As plain JSON-able data (see :meth:`from_data`)."""
        tracks = {k: t.to_list() for k, t in self.tracks.items()}
        data: dict[str, Any] = {"seen": self.seen, "tracks": tracks}
        if self.names:
            data["stuck"] = [
                list(self.names), self.values.tolist(), self.runs.tolist(), self.varied.tolist()
            ]  # fmt: skip
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AlertState:
        """Restore from :meth:`to_data` output (ValueError/KeyError/TypeError if malformed)."""
        a = cls()
        a.seen = float(data["seen"])
        a.tracks = {KINDS[KINDS.index(k)]: _Track(v) for k, v in data["tracks"].items()}
        if "stuck" in data:
            names, values, runs, varied = data["stuck"]
            a.names = _NAMES.shared(tuple(names))
            a.values, a.runs = array("d", values), array("I", runs)
            a.varied = array("B", varied)
        return a


_NAMES = Interner[tuple[str, ...]]()  # bounded: a sensor-churning asset cannot grow it
_GETTERS: dict[tuple[str, ...], Callable[[Mapping[str, float]], Any]] = {}  # names -> getter


def _values(names: tuple[str, ...], sensors: Mapping[str, float]) -> array[float]:
    """``sensors``' values of ``names``, in that order, as floats (one getter per names tuple)."""
    get = _GETTERS.get(names)
    if get is None:
        if len(_GETTERS) >= 4096:  # bounded, as the names
            _GETTERS.clear()
        get = _GETTERS[names] = itemgetter(*names) if len(names) > 1 else _one_or_none(names)
    try:
        return array("d", get(sensors))
    except TypeError:  # a value that is not a float already (not from a validated record)
        return array("d", [float(sensors[k]) for k in names])


def _one_or_none(names: tuple[str, ...]) -> Callable[[Mapping[str, float]], tuple[float, ...]]:
    return lambda sensors: tuple(sensors[k] for k in names)


@dataclass
class _Evidence:
    asset_id: str
    kind: Kind
    extra: dict[str, Any] = field(default_factory=dict)


class AlertEngine:
    """The alert lifecycle: ``observe`` a signal on an asset's :class:`AlertState`, ``tick``
    the event-time clock over the fleet's. Holds no asset's state itself.

    >>> engine, state = AlertEngine(AlertPolicy(debounce_records=2)), AlertState()
    >>> engine.observe(state, AnomalySignal("a1", 0.0, 0.9, 0.5))
    []
    >>> [(e.state, e.severity) for e in engine.observe(state, AnomalySignal("a1", 1.0, 0.9, 0.5))]
    [('open', 'warning')]
    >>> state.open_alerts()
    {'anomaly': 'warning'}
    >>> [e.state for e in engine.observe(state, AnomalySignal("a1", 2.0, 0.1, 0.5))]
    ['resolved']
    """

    def __init__(self, policy: AlertPolicy | None = None) -> None:
        self.policy = policy or AlertPolicy()

    def observe(self, asset: AlertState, signal: Signal) -> list[AlertEvent]:
        """Feed one signal of the asset whose state is ``asset``; return the alert events it
        causes (often none)."""
        now = signal.ts
        out: list[AlertEvent] = []
        asset.seen = now if now > asset.seen else asset.seen  # max(asset.seen, now), cheaper
        if "drift" in asset.tracks:
            self._quiet_drift(signal.asset_id, asset, now, out)
        if isinstance(signal, ReadingSignal):  # every record's
            self._stuck(asset, signal)
        elif isinstance(signal, AnomalySignal):
            self._anomaly(asset, signal, out)
        elif isinstance(signal, RulSignal):
            self._rul(asset, signal, out)
        else:
            self._drift(asset, signal, out)
        self._quality(signal.asset_id, asset, now, stale_for=0.0, out=out)
        return out

    def tick(self, now: float, assets: Iterable[tuple[str, AlertState]]) -> list[AlertEvent]:
        """Advance event time for the fleet's ``(asset_id, state)``: stale assets, quiet drift
        alerts. ``now`` is the stream's event-time watermark (e.g. the newest record time seen).
        """
        out: list[AlertEvent] = []
        for asset_id, asset in assets:
            self._quiet_drift(asset_id, asset, now, out)
            stale_for = now - asset.seen
            if stale_for >= self.policy.stale_after_s or "data_quality" in asset.tracks:
                self._quality(asset_id, asset, now, stale_for, out)
        return out

    def next_look(self, asset: AlertState) -> float:
        """The event time at which :meth:`tick` would next change the alerts of ``asset`` if
        it stays silent (``inf``: never): its silence turning stale, then critical; an open
        drift alert going quiet. (A silent asset out of memory is watched until then: see
        :mod:`streams.core.silence`.)

        >>> engine, state = AlertEngine(AlertPolicy(stale_after_s=600)), AlertState()
        >>> state.seen = 1000.0
        >>> engine.next_look(state)
        1600.0
        >>> _ = engine.tick(1700.0, [("a1", state)])  # stale: a warning opens
        >>> engine.next_look(state)  # then critical after stale_critical_s
        4600.0
        >>> _ = engine.tick(4600.0, [("a1", state)])
        >>> engine.next_look(state)
        inf
        """
        p = self.policy
        quality = asset.tracks.get("data_quality")
        stale = (
            quality.severity
            if quality and quality.phase == _OPEN and quality.cause & _STALE
            else -1
        )
        look = (
            asset.seen + p.stale_after_s if stale < 1
            else asset.seen + p.stale_critical_s if stale < 2
            else math.inf
        )  # fmt: skip
        drift = asset.tracks.get("drift")
        if drift is not None and drift.phase == _OPEN:
            look = min(look, drift.last + p.drift_quiet_s)
        return look

    def unmoved(self, asset: AlertState) -> bool:
        """Whether an anomaly signal out of alarm (``alarm`` False) would change nothing on
        ``asset`` but the time it was last seen, which the record's reading signal sets too (most
        records): no alert of any kind tracked, no sensor's value repeated long enough to be
        stuck.

        >>> engine, state = AlertEngine(AlertPolicy(stuck_records=3)), AlertState()
        >>> engine.unmoved(state)
        True
        >>> for ts in range(3):
        ...     _ = engine.observe(state, ReadingSignal("a1", float(ts), {"s1": 1.0}))
        >>> engine.unmoved(state)
        False
        """
        return not asset.tracks and not self._may_stick(asset)

    def _may_stick(self, asset: AlertState) -> bool:
        runs = asset.runs
        return bool(runs) and max(runs) >= self.policy.stuck_records

    # -- kinds ---------------------------------------------------------------------------

    def _anomaly(self, asset: AlertState, s: AnomalySignal, out: list[AlertEvent]) -> None:
        p = self.policy
        if s.alarm is False and "anomaly" not in asset.tracks:
            return  # no alarm and no alert of this kind: nothing to do (most records)
        if s.threshold > 0:
            ratio = s.score / s.threshold
        else:
            ratio = math.inf if s.score > s.threshold else 0.0
        if s.alarm is not None:  # the monitor debounced by kind: open and resolve with it
            magnitude = max(s.magnitude, p.anomaly_levels[0])
            level: int | None = max(i for i, lv in enumerate(p.anomaly_levels) if magnitude >= lv)
            level, clear, debounce = (level if s.alarm else None), not s.alarm, 1
        else:
            level = max((i for i, lv in enumerate(p.anomaly_levels) if ratio >= lv), default=None)
            clear, debounce = ratio < p.anomaly_exit_ratio, p.debounce_records
        ev = _Evidence(s.asset_id, "anomaly", {
            "score": s.score, "threshold": s.threshold, "ratio": ratio,
            "top_sensors": s.top_sensors, "model_version": s.model_version,
            "detector": s.detector, "since": s.since,
        })  # fmt: skip
        self._step(asset, ev, s.ts, level, clear=clear, debounce=debounce, out=out)

    def _rul(self, asset: AlertState, s: RulSignal, out: list[AlertEvent]) -> None:
        p = self.policy
        levels = [(i, lv) for i, lv in enumerate(p.rul_levels) if lv is not None]
        level = max((i for i, lv in levels if s.rul_p10 < lv), default=None)
        clear = s.rul_p10 >= max(lv for _, lv in levels) + p.rul_exit_margin
        ev = _Evidence(s.asset_id, "rul", {
            "rul": s.rul, "rul_p10": s.rul_p10, "rul_p90": s.rul_p90,
            "top_sensors": s.top_sensors, "model_version": s.model_version,
            "in_domain": s.in_domain, "unit": s.unit, "data_source": s.data_source,
        })  # fmt: skip
        self._step(asset, ev, s.ts, level, clear=clear, debounce=p.debounce_records, out=out)

    def _drift(self, asset: AlertState, s: DriftSignal, out: list[AlertEvent]) -> None:
        level = 1 if len(s.sensors) >= self.policy.drift_warning_sensors else 0
        sign = -1.0 if s.direction == "down" else 1.0
        ev = _Evidence(s.asset_id, "drift", {
            "top_sensors": [(name, sign) for name in s.sensors],
            "model_version": s.model_version, "direction": s.direction,
        })  # fmt: skip
        self._step(asset, ev, s.ts, level, clear=False, debounce=1, out=out)
        track = asset.tracks.get("drift")
        if track is not None and track.phase == _OPEN:
            track.last = max(track.last, s.ts)

    def _quiet_drift(
        self, asset_id: str, asset: AlertState, now: float, out: list[AlertEvent]
    ) -> None:
        track = asset.tracks.get("drift")
        quiet = self.policy.drift_quiet_s
        if track is not None and track.phase == _OPEN and now - track.last >= quiet:
            ev = _Evidence(asset_id, "drift", {"quiet_s": now - track.last})
            self._step(asset, ev, now, None, clear=True, debounce=1, out=out)

    def _stuck(self, asset: AlertState, s: ReadingSignal) -> None:
        sensors = s.sensors
        keys = tuple(sensors)
        if keys == asset.keys:  # the last record's sensors in its order: the same names
            values = _values(asset.names, sensors)
        else:
            names = tuple(sorted(k for k in sensors if k not in self.policy.stuck_ignore))
            values = array("d", [float(sensors[k]) for k in names])
            asset.keys = _NAMES.shared(keys)  # (shared: one tuple for a fleet's assets)
            if names != asset.names:  # sensor set changed: start counting again
                asset.names = _NAMES.shared(names)
                asset.values, asset.runs = values, array("I", [1] * len(names))
                asset.varied = array("B", [0] * len(names))
                return
        last, runs, varied = asset.values, asset.runs, asset.varied
        n = len(values)
        if any(map(eq, values, last)) or not len(last) == len(runs) == len(varied) == n:
            for i, v in enumerate(values):
                if v == last[i]:
                    runs[i] += 1
                else:
                    runs[i] = varied[i] = 1
        else:  # every value changed (the usual reading): every run starts again
            if runs.count(1) != n:
                runs[:] = array("I", [1]) * n
            if varied.count(1) != n:
                varied[:] = array("B", [1]) * n
        asset.values = values

    def _quality(
        self, asset_id: str, asset: AlertState, now: float, stale_for: float, out: list[AlertEvent]
    ) -> None:
        p, runs = self.policy, asset.runs
        judged = self._may_stick(asset) or stale_for >= p.stale_after_s
        if not judged and "data_quality" not in asset.tracks:
            return  # nothing to judge (most records)
        stuck = [
            (name, float(runs[i]), asset.values[i])
            for i, name in enumerate(asset.names)
            if runs[i] >= p.stuck_records and asset.varied[i]
        ]
        level, cause = None, 0
        if stale_for >= p.stale_after_s:
            level, cause = (2 if stale_for >= p.stale_critical_s else 1), _STALE
        if stuck:
            level, cause = max(level or 0, 1), cause | _STUCK
        track = asset.tracks.get("data_quality")
        if level is None and track is None:
            return
        ev = _Evidence(asset_id, "data_quality", {
            "top_sensors": [(n, r) for n, r, _ in stuck], "stuck": stuck,
            "stale_for": stale_for if cause & _STALE else None, "seen": asset.seen,
        })  # fmt: skip
        changed = track is not None and track.phase == _OPEN and cause != track.cause
        self._step(
            asset, ev, now, level, clear=level is None, debounce=1, out=out, force_update=changed
        )
        track = asset.tracks.get("data_quality")
        if track is not None:
            track.cause = cause if track.phase == _OPEN else 0

    # -- the state machine ---------------------------------------------------------------

    def _step(
        self,
        asset: AlertState,
        ev: _Evidence,
        now: float,
        level: int | None,
        *,
        clear: bool,
        debounce: int,
        out: list[AlertEvent],
        force_update: bool = False,
    ) -> None:
        """One record's effect on one (asset, kind): ``level`` is the severity index when the
        enter condition holds (else None), ``clear`` whether the exit condition holds."""
        p = self.policy
        track = asset.tracks.get(ev.kind)
        if track is None:
            if level is None:
                return
            track = asset.tracks[ev.kind] = _Track()
        if track.phase == _OPEN:
            now = max(now, track.opened)  # late records never act before the opening
            if clear:
                track.phase, track.count, track.resolved = _IDLE, 0, now
                out.append(self._event(ev, track, "resolved", now))
                return
            new = track.severity if level is None else level
            if new != track.severity or force_update or now - track.emitted >= p.update_every_s:
                track.severity, track.emitted = new, now
                out.append(self._event(ev, track, "update", now))
            return
        cooling = now <= track.resolved or now < track.resolved + p.cooldown_s
        if level is None or cooling:
            track.phase, track.count = _IDLE, 0
            if track.resolved == -math.inf:
                del asset.tracks[ev.kind]  # never opened: keep no state
            return
        if track.phase == _IDLE:
            track.phase, track.count, track.since = _PENDING, 0, now
        track.count += 1
        if track.count >= debounce or now - track.since >= p.debounce_s:
            track.phase, track.opened, track.emitted = _OPEN, now, now
            track.severity, track.last = level, now
            out.append(self._event(ev, track, "open", now))

    def _event(self, ev: _Evidence, track: _Track, state: State, now: float) -> AlertEvent:
        x = ev.extra
        return AlertEvent(
            alert_id=alert_id(ev.asset_id, ev.kind, track.opened),
            asset_id=ev.asset_id,
            kind=ev.kind,
            severity=SEVERITIES[track.severity],
            state=state,
            opened_at=track.opened,
            ts=now,
            score=x.get("score"),
            threshold=x.get("threshold"),
            rul=x.get("rul"),
            rul_p10=x.get("rul_p10"),
            rul_p90=x.get("rul_p90"),
            top_sensors=tuple((str(n), float(c)) for n, c in x.get("top_sensors", ())),
            model_version=x.get("model_version") or None,
            detector=x.get("detector") or None,
            since=x.get("since"),
            message=message(ev.asset_id, ev.kind, state, SEVERITIES[track.severity], x),
        )
