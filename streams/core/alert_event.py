"""The alert event contract (JSON on ``pm.alerts``) and its one-line human message."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, get_args

import orjson

from models.errors import DataError

Kind = Literal["anomaly", "rul", "drift", "data_quality"]
Severity = Literal["info", "warning", "critical"]
State = Literal["open", "update", "resolved"]
KINDS: tuple[Kind, ...] = get_args(Kind)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
STATES: tuple[State, ...] = get_args(State)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_rfc3339(ts: float) -> str:
    """Epoch seconds → RFC 3339 UTC with milliseconds.

    >>> to_rfc3339(1700000000.5)
    '2023-11-14T22:13:20.500Z'
    """
    return (
        (_EPOCH + timedelta(milliseconds=round(ts * 1000)))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def from_rfc3339(text: str) -> float:
    """RFC 3339 → epoch seconds (millisecond precision); naive times are taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return ((dt - _EPOCH) // _MS) / 1000


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One state change of one alert; ``opened_at`` and ``ts`` are epoch seconds (ms precision)."""

    alert_id: str
    asset_id: str
    kind: Kind
    severity: Severity
    state: State
    opened_at: float
    ts: float
    message: str
    score: float | None = None
    threshold: float | None = None
    rul: float | None = None
    rul_p10: float | None = None
    rul_p90: float | None = None
    top_sensors: tuple[tuple[str, float], ...] = ()
    model_version: str | None = None
    detector: str | None = None  # anomaly: the kind seen (spike, shift, variance, ...)
    since: float | None = None  # anomaly: event time the abnormal episode began

    def __post_init__(self) -> None:
        # times are carried at millisecond precision, so JSON round trips are exact
        object.__setattr__(self, "opened_at", round(self.opened_at * 1000) / 1000)
        object.__setattr__(self, "ts", round(self.ts * 1000) / 1000)
        if self.since is not None:
            object.__setattr__(self, "since", round(self.since * 1000) / 1000)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract as a dict (times as RFC 3339 strings, sensors as pairs)."""
        data = asdict(self)
        data["opened_at"], data["ts"] = to_rfc3339(self.opened_at), to_rfc3339(self.ts)
        if self.since is not None:
            data["since"] = to_rfc3339(self.since)
        data["top_sensors"] = [[n, c] for n, c in self.top_sensors]
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        try:
            values = dict(data)
            for key, allowed in (("kind", KINDS), ("severity", SEVERITIES), ("state", STATES)):
                if values[key] not in allowed:
                    raise ValueError(f"{key} {values[key]!r} not one of {', '.join(allowed)}")
            values["opened_at"] = from_rfc3339(values["opened_at"])
            values["ts"] = from_rfc3339(values["ts"])
            if values.get("since") is not None:
                values["since"] = from_rfc3339(values["since"])
            top = values.get("top_sensors") or ()
            values["top_sensors"] = tuple((str(n), float(c)) for n, c in top)
            return cls(**{k: v for k, v in values.items() if k in _FIELDS})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not an alert event: {exc!r}") from None

    @classmethod
    def from_json(cls, raw: bytes | str) -> AlertEvent:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"not an alert event: {exc}") from None
        if not isinstance(data, dict):
            raise DataError("not an alert event: not a JSON object")
        return cls.from_dict(data)


_FIELDS = frozenset(AlertEvent.__dataclass_fields__)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 or x == int(x) else f"{x:.2g}"


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _trend(top: Sequence[tuple[str, float]], up: str, down: str, each: bool) -> str:
    if each:
        return ", ".join(f"{n} {up if c >= 0 else down}" for n, c in top[:3])
    rising = [n for n, c in top[:3] if c >= 0]
    falling = [n for n, c in top[:3] if c < 0]
    parts = [f"{_and(rising)} {up}"] if rising else []
    return "; ".join([*parts, f"{_and(falling)} {down}"] if falling else parts)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def message(
    asset_id: str, kind: Kind, state: State, severity: Severity, x: Mapping[str, Any]
) -> str:
    """The one-line human sentence of an alert event, from its evidence ``x``."""
    top = cast(Sequence[tuple[str, float]], x.get("top_sensors") or ())
    done = " resolved:" if state == "resolved" else ":"
    if kind == "anomaly":
        ratio = x["ratio"]
        rel = "over" if x["score"] > x["threshold"] else "under"
        scale = f" (x{ratio:.1f})" if math.isfinite(ratio) and rel == "over" else ""
        text = f"anomaly score {x['score']:.2f} {rel} threshold {x['threshold']:.2f}{scale}"
        if x.get("detector") and state != "resolved":
            since = f" since {to_rfc3339(x['since'])}" if x.get("since") is not None else ""
            text = f"{x['detector']}{since}; {text}"
        trend = _trend(top, "up", "down", each=True) if state != "resolved" else ""
    elif kind == "rul":
        unit = x.get("unit", "cycles")
        text = f"RUL {_num(x['rul'])} {unit} (P10 {_num(x['rul_p10'])}, P90 {_num(x['rul_p90'])})"
        if not x.get("in_domain", True):
            source = x.get("data_source") or "other data"
            text += f"; model trained on {source}, this asset looks different"
        trend = _trend(top, "rising", "falling", each=False) if state != "resolved" else ""
    elif kind == "drift":
        if "quiet_s" in x:
            text, trend = f"no drift for {_duration(x['quiet_s'])}", ""
        else:
            direction = f" ({x['direction']})" if x.get("direction") else ""
            text, trend = f"{severity} drift in {_and([n for n, _ in top])}{direction}", ""
    else:
        problems = []
        if x.get("stale_for") is not None:
            problems.append(f"no data for {_duration(x['stale_for'])}")
        problems += [f"{n} stuck at {v:g} for {r:.0f} records" for n, r, v in x.get("stuck", ())]
        text, trend = ("; ".join(problems) or "reporting normally again"), ""
    return f"{asset_id}{done} {text}" + (f"; {trend}" if trend else "")


def alert_id(asset_id: str, kind: str, opened_at: float) -> str:
    """The deterministic id of the alert of ``kind`` on ``asset_id`` opened at ``opened_at``.

    >>> alert_id("asset-7", "rul", 1.5) == alert_id("asset-7", "rul", 1.5)
    True
    """
    key = f"{asset_id}\x1f{kind}\x1f{round(opened_at * 1000)}".encode()
    return hashlib.blake2b(key, digest_size=10).hexdigest()
