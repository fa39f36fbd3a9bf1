"""InfluxDB line protocol, built once per point with the escaping every server agrees on.

Escaping policy (checked against InfluxDB 1.6.7 and VictoriaMetrics):

- measurement: ``,`` and space are backslash-escaped;
- tag keys, tag values, field keys: ``,``, ``=`` and space are backslash-escaped, and so is
  ``"`` in field keys (where a bare one could open a quoted section);
- in all four, control characters (newline, carriage return, tab, NUL, ...) are **replaced by a
  space** (then escaped): line protocol has no escape for a newline outside a string, and
  InfluxDB 1.x would otherwise end the line there;
- backslashes are written **as they are**: InfluxDB 1.6.7 stores ``bs\\x`` as ``bs\\x`` (and
  VictoriaMetrics, like 2.x, keeps a backslash before an ordinary character), so ``bs\\x`` and
  ``bs/x`` stay two series. A backslash at the end of a name, or before another backslash,
  ``,``, ``=``, space or ``"``, has no spelling every server reads back the same (1.6.7 keeps
  ``\\\\`` as two characters, 2.x unescapes it; a trailing one breaks the line): such a name
  is refused (:func:`line_safe`; the schema dead-letters records that carry one, and
  :func:`encode` raises ``ValueError``);
- string field values: ``\\`` and ``"`` are backslash-escaped, newlines are kept verbatim (they
  are legal inside the quotes);
- tags or fields whose key or value is empty after this are left out, and so are non-finite
  floats (InfluxDB rejects NaN and infinities); a point left with no field is an error.

Timestamps are integer epoch milliseconds (``precision=ms``), the record's event time, so writing
the same point twice overwrites it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

FieldValue = float | int | bool | str

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
_FIELD_KEY = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", '"': '\\"'})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})
_INT64 = 2**63


_AMBIGUOUS_BACKSLASH = re.compile(r'\\(?=[\\,= "]|\Z)')


def clean_name(value: str) -> str:
    """A name or tag value as it will be stored: control characters → space."""
    return _CONTROL.sub(" ", value)


def line_safe(name: str) -> bool:
    r"""Whether every server reads ``name`` back as written: no backslash at its end or before
    another backslash, ``,``, ``=``, space or ``"``.

    >>> line_safe("bs\\x"), line_safe("bs\\"), line_safe("a\\\\b"), line_safe("c\\,d")
    (True, False, False, False)
    """
    return _AMBIGUOUS_BACKSLASH.search(name) is None


def _name(value: str) -> str:
    name = clean_name(value)
    if not line_safe(name):
        raise ValueError(f"name {value!r} has a backslash line protocol cannot carry")
    return name


@dataclass(frozen=True, slots=True)
class Point:
    """One point: measurement, tags, fields and the event time in epoch milliseconds."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts_ms: int


def _field(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i" if -_INT64 <= value < _INT64 else None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    raise TypeError(f"unsupported field value {value!r}")


def encode(point: Point) -> bytes:
    """Encode one point; ``ValueError`` if it has no measurement or no usable field.

    >>> encode(Point("rul", {"asset_id": "a 1", "site": ""}, {"rul": 42.5, "n": 3}, 1000))
    b'rul,asset_id=a\\\\ 1 rul=42.5,n=3i 1000'
    >>> encode(Point("alert", {"asset_id": "x\\ny"}, {"message": 'say "hi"'}, 5))
    b'alert,asset_id=x\\\\ y message="say \\\\"hi\\\\"" 5'
    """
    measurement = _name(point.measurement)
    if not measurement or measurement.startswith("#"):
        raise ValueError(f"invalid measurement {point.measurement!r}")
    parts = [measurement.translate(_MEASUREMENT)]
    for key in sorted(point.tags):
        k, v = _name(key), _name(point.tags[key])
        if k and v:
            parts.append(f"{k.translate(_KEY)}={v.translate(_KEY)}")
    fields = []
    for key, value in point.fields.items():
        name, encoded = _name(key), _field(value)
        if name and encoded is not None:
            fields.append(f"{name.translate(_FIELD_KEY)}={encoded}")
    if not fields:
        raise ValueError(f"point {point.measurement!r} at {point.ts_ms} has no usable field")
    return f"{','.join(parts)} {','.join(fields)} {int(point.ts_ms)}".encode()
