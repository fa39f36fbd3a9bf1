"""Line protocol escaping: arbitrary strings survive a reference parser and real InfluxDB 1.6.7."""

from __future__ import annotations

import itertools
import json
import math
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.line_protocol import FieldValue, Point, clean_name, encode, line_safe
from streams.harness import Server

any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
text = any_text.filter(lambda s: line_safe(clean_name(s)))  # the rest is refused, see below
names = text.filter(lambda s: clean_name(s).strip() != "" and clean_name(s) != "time")
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    text,
)


def _split(s: str, sep: str) -> list[str]:
    """Split on unescaped ``sep``."""
    out, cur, i = [], "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            cur, i = cur + s[i : i + 2], i + 2
        elif s[i] == sep:
            out, cur, i = [*out, cur], "", i + 1
        else:
            cur, i = cur + s[i], i + 1
    return [*out, cur]


def _fields(s: str) -> list[tuple[str, str]]:
    """``k=v,k="v"`` pairs: quotes only count in values, escapes only outside them."""
    pairs, key, cur, in_value, quoted, i = [], "", "", False, False, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur, i = cur + s[i : i + 2], i + 2
            continue
        if in_value and c == '"':
            quoted = not quoted
        if not quoted and not in_value and c == "=":
            key, cur, in_value = cur, "", True
        elif not quoted and c == ",":
            pairs.append((key, cur))
            key, cur, in_value = "", "", False
        else:
            cur += c
        i += 1
    return [*pairs, (key, cur)]


def _unescape(s: str, chars: str) -> str:
    for c in chars:
        s = s.replace("\\" + c, c)
    return s


def parse(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue], int]:
    """A small reference parser of one line (InfluxDB 1.x rules)."""
    head, rest = _split(line, " ")[0], " ".join(_split(line, " ")[1:])
    fields_part, ts = rest.rsplit(" ", 1)
    measurement, *tag_parts = _split(head, ",")
    tags = {}
    for part in tag_parts:
        k, v = _split(part, "=")
        tags[_unescape(k, ",= ")] = _unescape(v, ",= ")
    fields: dict[str, FieldValue] = {}
    for k, raw in _fields(fields_part):
        value: FieldValue
        if raw.startswith('"'):
            value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif raw in ("true", "false"):
            value = raw == "true"
        elif raw.endswith("i"):
            value = int(raw[:-1])
        else:
            value = float(raw)
        fields[_unescape(k, ',= "')] = value
    return _unescape(measurement, ", "), tags, fields, int(ts)


@settings(max_examples=400)
@given(
    names.filter(lambda s: not clean_name(s).startswith("#")),
    st.dictionaries(names, text, max_size=4),
    st.dictionaries(names, values, min_size=1, max_size=4),
    st.integers(0, 2**53),
)
def test_encoded_lines_parse_back(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], ts: int
) -> None:
    clean_fields = {clean_name(k): v for k, v in fields.items()}
    if len(clean_fields) < len(fields):
        return  # two keys that clean to the same name: last one wins, not interesting here
    line = encode(Point(measurement, tags, fields, ts)).decode()
    m, t, f, parsed_ts = parse(line)
    assert m == clean_name(measurement)
    expected_tags = {clean_name(k): clean_name(v) for k, v in tags.items() if clean_name(v)}
    assert t == expected_tags
    assert f == clean_fields
    assert parsed_ts == ts


def test_rejects_unusable_points() -> None:
    with pytest.raises(ValueError, match="no usable field"):
        encode(Point("m", {}, {"x": math.nan}, 1))
    with pytest.raises(ValueError, match="invalid measurement"):
        encode(Point("#m", {}, {"x": 1.0}, 1))
    assert encode(Point("m", {"t": ""}, {"x": math.inf, "y": 1.0}, 1)) == b"m y=1.0 1"
    for name in ("tr\\", "a\\\\b", "c\\,d", "e\\ f", "g\\=h", 'q\\"t', "n\\\n"):
        with pytest.raises(ValueError, match="backslash"):
            encode(Point("m", {"asset_id": name}, {"x": 1.0}, 1))
        with pytest.raises(ValueError, match="backslash"):
            encode(Point("m", {}, {name: 1.0}, 1))


@given(any_text)
def test_only_unambiguous_backslashes_are_encoded(name: str) -> None:
    point = Point("m", {"t": name}, {"x": 1.0}, 1)
    if line_safe(clean_name(name)):
        assert encode(point).count(b"\\\\") == 0  # never two backslashes in a row
    else:
        with pytest.raises(ValueError):
            encode(point)


def _query(url: str, q: str, db: str) -> dict[str, object]:
    data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ms"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/query", data=data)) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


_ts = itertools.count(1_000)


@pytest.mark.integration
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tag=text, string=text, number=st.floats(allow_nan=False, allow_infinity=False))
def test_round_trip_through_influxdb_1_6(
    influxdb1: Server, tag: str, string: str, number: float
) -> None:
    url = influxdb1.extra["url"]
    _query(url, "CREATE DATABASE lp", "lp")
    ts = next(_ts)
    line = encode(Point("lp m", {"t k": tag}, {"s": string, "x,y=": number}, ts))
    req = urllib.request.Request(f"{url}/write?db=lp&precision=ms", data=line)
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
    result = _query(url, f'SELECT * FROM "lp m" WHERE time = {ts}ms', "lp")
    series = result["results"][0]["series"][0]  # type: ignore[index]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row["s"] == string
    assert float(row["x,y="]) == number
    assert row.get("t k") == (clean_name(tag) or None)
