"""Telemetry contract: decode and validate Kafka message bytes into records or dead letters.

A message carries one record or a frame ``{"records": [...]}``. Each record is either accepted
as a :class:`Telemetry` or turned into a :class:`DeadLetter` with a machine-readable reason
(``invalid_json``, ``missing_field:asset_id``, ``non_finite:s7``, ...). A frame keeps its good
records. :func:`decode` never raises: arbitrary bytes give a :class:`Decoded` result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from streams.core.frame_split import split_frame
from streams.core.line_protocol import line_safe

MIN_TS_MS = 946_684_800_000  # 2000-01-01: older timestamps are clock errors, not telemetry
MAX_NAME = 128


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits; a message or record beyond them is a dead letter."""

    max_bytes: int = 1_048_576
    max_records: int = 10_000
    max_sensors: int = 1_000
    max_future_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One validated telemetry record (``ts_ms``: event time, epoch milliseconds)."""

    asset_id: str
    ts_ms: int
    sensors: dict[str, float]
    cycle: int | None = None
    settings: dict[str, float] | None = None
    site: str | None = None
    line: str | None = None
    type: str | None = None  # asset type: picks its RUL model and its detector settings
    life: str | None = None  # names the asset's current life: a change starts a new one


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An unusable message, or one unusable record of a frame."""

    reason: str
    payload: bytes
    asset_id: str | None = None
    frame_index: int | None = None


@dataclass(slots=True)
class Decoded:
    """What one message gave: accepted records and dead letters."""

    records: list[Telemetry] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class _Invalid(Exception):  # noqa: N818 (internal signal, never escapes)
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _name_ok(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME
        and value.isprintable()
        and value.strip() == value
        and line_safe(value)
    )


def _tag(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if type(value) is str and value in _KNOWN_NAMES:
        return value
    if not _name_ok(value):
        raise _Invalid(f"bad_field:{key}")
    _remember([value])
    return str(value)


def _number(value: object, reason: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"non_numeric:{reason}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise _Invalid(f"non_finite:{reason}") from None
    if not math.isfinite(number):
        raise _Invalid(f"non_finite:{reason}")
    return number


_FLOAT = {float}
_KNOWN_NAMES: set[str] = set()  # names already validated: sensor names repeat in every record


def _names_ok(names: dict[str, Any]) -> bool:
    if _KNOWN_NAMES.issuperset(names):
        return True
    if not all(_name_ok(n) for n in names):
        return False
    _remember(names)
    return True


def _remember(names: Iterable[str]) -> None:
    if len(_KNOWN_NAMES) < 100_000:
        _KNOWN_NAMES.update(names)


def _numbers(value: object, key: str, limit: int, prefix: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _Invalid(f"bad_field:{key}")
    if not value:
        raise _Invalid(f"empty_field:{key}")
    if len(value) > limit:
        raise _Invalid(f"too_many_fields:{key}")
    if not _names_ok(value):
        raise _Invalid(f"bad_name:{key}")
    values = value.values()
    if set(map(type, values)) == _FLOAT and math.isfinite(sum(values)):
        return value  # fast path: a fresh dict from the decoder, all finite floats
    return {name: _number(raw, prefix + name) for name, raw in value.items()}


def parse_ts(value: object) -> int:
    """Event time as epoch ms from epoch milliseconds or an RFC 3339 string.

    >>> parse_ts(1767225600000), parse_ts("2026-01-01T00:00:00Z")
    (1767225600000, 1767225600000)
    >>> parse_ts(10**400)
    Traceback (most recent call last):
    ...
    ValueError: bad timestamp
    >>> parse_ts("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: bad timestamp
    """
    if isinstance(value, bool):
        raise ValueError("bad timestamp")
    if isinstance(value, int) and abs(value) < 2**63:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and len(value) <= 40 and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return round(parsed.timestamp() * 1000)
    raise ValueError("bad timestamp")


def validate(record: object, limits: Limits, now_ms: int) -> Telemetry:
    """Check one record against the contract; raises ``_Invalid`` with the reason."""
    if not isinstance(record, dict):
        raise _Invalid("not_object")
    for key in ("asset_id", "ts", "sensors"):
        if key not in record or record[key] is None:
            raise _Invalid(f"missing_field:{key}")
    asset_id = _tag(record, "asset_id")
    assert asset_id is not None
    try:
        ts_ms = parse_ts(record["ts"])
    except ValueError:
        raise _Invalid("bad_field:ts") from None
    if ts_ms < MIN_TS_MS:
        raise _Invalid("ts_too_old")
    if ts_ms > now_ms + limits.max_future_ms:
        raise _Invalid("ts_in_future")
    sensors = _numbers(record["sensors"], "sensors", limits.max_sensors, "")
    cycle = record.get("cycle")
    if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 0):
        raise _Invalid("bad_field:cycle")
    settings = record.get("settings")
    if settings is not None:
        settings = _numbers(settings, "settings", limits.max_sensors, "settings.")
    return Telemetry(
        asset_id, ts_ms, sensors, cycle, settings,
        _tag(record, "site"), _tag(record, "line"), _tag(record, "type"), _tag(record, "life"),
    )  # fmt: skip


_INVALID = object()


def _lenient_json(raw: bytes) -> Any:
    """Second chance for JSON that strict parsing refuses only for ``NaN``/``Infinity`` literals
    or out-of-range numbers (as Python's ``json.dumps`` writes them), so those values become
    per-record ``non_finite`` dead letters instead of costing a whole frame."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _INVALID


def _parse(raw: bytes) -> Any:
    """The JSON value of ``raw``, or ``_INVALID``."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _lenient_json(raw)


def _dump(record: object, raw: bytes, index: int) -> bytes:
    """The offending record of a frame, as JSON (``NaN`` kept as written); one too deep to
    encode is cut from the frame's bytes instead."""
    try:
        return json.dumps(record, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        elements = split_frame(raw)
        return elements[index] if elements is not None and index < len(elements) else b""


def _asset_of(record: object) -> str | None:
    value = record.get("asset_id") if isinstance(record, dict) else None
    return value if _name_ok(value) else None


def decode(raw: bytes, limits: Limits, now_ms: int) -> Decoded:
    """Decode one Kafka message value. Never raises: input that breaks the decoder in a way
    not foreseen here becomes one ``invalid_message`` dead letter.

    >>> lim, now = Limits(), 1767225600000
    >>> ok = decode(b'{"asset_id": "p7", "ts": 1767225600000, "sensors": {"s1": 1.5}}', lim, now)
    >>> ok.records[0].sensors, ok.dead
    ({'s1': 1.5}, [])
    >>> frame = b'{"records": [{"asset_id": "p7", "ts": 1767225600000, "sensors": {"s1": "x"}},'
    >>> frame += b' {"asset_id": "p8", "ts": 1767225600000, "sensors": {"s1": 2}}]}'
    >>> d = decode(frame, lim, now)
    >>> [r.asset_id for r in d.records], [(x.reason, x.frame_index) for x in d.dead]
    (['p8'], [('non_numeric:s1', 0)])
    >>> decode(b'{"asset_id": ', lim, now).dead[0].reason
    'invalid_json'
    """
    try:
        return _decode(raw, limits, now_ms)
    except Exception:
        return Decoded(dead=[DeadLetter("invalid_message", raw)])


def _decode(raw: bytes, limits: Limits, now_ms: int) -> Decoded:
    out = Decoded()
    if len(raw) > limits.max_bytes:
        out.dead.append(DeadLetter("too_large", raw))
        return out
    message, elements = _parse(raw), None
    if message is _INVALID:
        elements = split_frame(raw)  # a frame with one record too deep keeps the others
        if elements is None:
            out.dead.append(DeadLetter("invalid_json", raw))
            return out
        message = {"records": [_parse(e) for e in elements]}
    if not isinstance(message, dict):
        out.dead.append(DeadLetter("not_object", raw))
        return out
    if "records" not in message:
        if "asset_id" not in message and "sensors" not in message:
            out.dead.append(DeadLetter("unknown_type", raw))
            return out
        try:
            out.records.append(validate(message, limits, now_ms))
        except _Invalid as exc:
            out.dead.append(DeadLetter(exc.reason, raw, _asset_of(message)))
        return out
    records = message["records"]
    if not isinstance(records, list):
        out.dead.append(DeadLetter("frame_not_list", raw))
        return out
    if not records:
        out.dead.append(DeadLetter("empty_frame", raw))
        return out
    if len(records) > limits.max_records:
        out.dead.append(DeadLetter("too_many_records", raw))
        return out
    seen: set[tuple[str, int]] = set()
    for index, record in enumerate(records):
        if record is _INVALID:
            payload = elements[index] if elements else b""
            out.dead.append(DeadLetter("invalid_json", payload, None, index))
            continue
        try:
            good = validate(record, limits, now_ms)
            if (good.asset_id, good.ts_ms) in seen:
                raise _Invalid("duplicate_record")
        except _Invalid as exc:
            payload = _dump(record, raw, index)
            out.dead.append(DeadLetter(exc.reason, payload, _asset_of(record), index))
            continue
        seen.add((good.asset_id, good.ts_ms))
        out.records.append(good)
    return out
