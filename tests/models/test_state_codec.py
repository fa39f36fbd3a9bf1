"""The checkpoint codec: exact round trips, and nothing outside its allowlist in or out."""

from __future__ import annotations

import math
import pickle
import random
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import msgpack
import numpy as np
import pytest

from models import state_codec
from models.anomaly import DeviationScorer
from models.errors import ArtifactError
from models.monitor import AssetMonitor
from models.monitor_config import MonitorConfig


@dataclass(frozen=True, slots=True)
class Slotted:  # a frozen, slotted dataclass; its module is tests.*, not models.*
    a: int


def trained(detector: str, drift: str) -> AssetMonitor:
    m = AssetMonitor(MonitorConfig(detector=detector, drift_method=drift, warm_up=20, min_count=5))
    rng = random.Random(0)
    for i in range(300):
        shift = 6.0 if i > 200 else 0.0
        sensors = {"s1": rng.gauss(10, 1), "s2": rng.gauss(5, 1) + shift}
        m.update(sensors, {"setting1": rng.choice([0.1, 0.7])}, 60.0 * i)
    return m


@pytest.mark.parametrize(("detector", "drift"), [("deviation", "cusum"), ("hst", "adwin")])
def test_trained_monitor_round_trip_scores_identically(detector: str, drift: str) -> None:
    m = trained(detector, drift)
    clone = AssetMonitor.from_bytes(m.to_bytes())
    rng = random.Random(1)
    for i in range(150):
        x = {"s1": rng.gauss(10, 1) + (8 if i % 40 == 0 else 0), "s2": rng.gauss(11, 1)}
        settings = {"setting1": rng.choice([0.1, 0.7])}
        assert m.update(x, settings, 1e5 + i) == clone.update(x, settings, 1e5 + i)
    assert clone.to_bytes() == m.to_bytes()  # and the state evolved identically


def test_values_round_trip() -> None:
    value = {
        "floats": [0.0, -1.5, math.inf, -math.inf, 1e308],
        "mixed": [1.0, "a", [2.5, (3,)], None, 4],
        (1, "t"): frozenset({"a"}),
        3: {None, True, b"\x00raw"},
        "dq": deque([1, 2], maxlen=4),
        "dd": defaultdict(list, {"k": [1]}),
        "limits": defaultdict(partial(tuple, (0.0, 1.0))),  # as river's HalfSpaceTrees has
        "arr": np.arange(6, dtype=np.float32).reshape(2, 3),
        "scalar": np.int64(7),
        "rng": random.Random(5),
    }
    back = state_codec.decode(state_codec.encode(value))
    assert back["floats"] == value["floats"] and back[(1, "t")] == frozenset({"a"})
    assert back["mixed"] == value["mixed"]
    assert back[3] == {None, True, b"\x00raw"}
    assert back["dq"] == deque([1, 2]) and back["dq"].maxlen == 4
    assert back["dd"]["new"] == [] and back["dd"]["k"] == [1]
    assert back["limits"]["x"] == (0.0, 1.0)
    assert back["arr"].dtype == np.float32 and back["arr"].tolist() == value["arr"].tolist()
    assert back["scalar"] == 7 and back["scalar"].dtype == np.int64
    assert back["rng"].random() == random.Random(5).random()
    nan = state_codec.decode(state_codec.encode([math.nan]))[0]
    assert math.isnan(nan)


def test_shared_objects_stay_shared() -> None:
    scorer = DeviationScorer()
    back = state_codec.decode(state_codec.encode({"a": scorer, "b": [scorer]}))
    assert back["a"] is back["b"][0] and isinstance(back["a"], DeviationScorer)
    assert "_located" not in vars(back["a"])  # the class's __getstate__ leaves its cache out


def test_decoded_names_and_settings_are_shared_between_checkpoints() -> None:
    long_name = "x" * 200
    config = MonitorConfig(warm_up=7)
    blob = state_codec.encode({"names": ("s1", "s2"), "key": "s1", "long": long_name, "c": config})
    a, b = state_codec.decode(blob), state_codec.decode(blob)
    assert a["names"] is b["names"] and a["key"] is b["key"] is a["names"][0]
    assert a["c"] is b["c"] and a["c"] == config
    assert a["long"] == long_name and a["long"] is not b["long"]  # long strings: not kept


@pytest.mark.parametrize(
    "value",
    [object(), Fraction(1, 3), Path("/etc"), Slotted(1), print, lambda: 0,
     np.array([object()]), defaultdict(lambda: 0), 2**70],
    ids=["object", "fraction", "path", "foreign-dataclass", "builtin-fn", "lambda",
         "object-array", "lambda-factory", "bigint"],
)  # fmt: skip
def test_encode_refuses_what_it_cannot_rebuild_safely(value: object) -> None:
    with pytest.raises(ArtifactError):
        state_codec.encode({"x": value})


def crafted(tree: object, version: int = state_codec.VERSION) -> bytes:
    packed = msgpack.packb(tree, use_bin_type=True)
    return state_codec.MAGIC + bytes([version]) + zlib.compress(packed)


OBJECT, NATIVE = 6, 9


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (pickle.dumps({"v": 2}), "bad magic"),
        (b"", "bad magic"),
        (state_codec.encode([1])[:-3], "truncated"),
        (state_codec.encode([1]) + b"x", "truncated"),
        (crafted([0, 1], version=9), "version 9"),
        (crafted([OBJECT, "os:system"]), "not allowed"),
        (crafted([OBJECT, "builtins:eval"]), "not allowed"),
        (crafted([OBJECT, "posix:system"]), "not allowed"),
        (crafted([OBJECT, "models.monitor:state_codec"]), "no class"),
        (crafted([OBJECT, "models.monitor:AssetMonitor.from_bytes"]), "no class"),
        (crafted([OBJECT, "models.nothing_here:X"]), "no module"),
        (crafted([NATIVE, "river.anomaly.hst:HalfSpaceTrees", [1], b""]), "not allowed"),
        (crafted([OBJECT, "models.anomaly:DeviationScorer", "__class__", 1]), "bad attribute"),
        (crafted([7, "|O8", [1], b"\x00" * 8]), "numpy objects"),
        (crafted({"not": "a tagged node"}), "malformed"),
        (crafted([99]), "unknown tag"),
        (crafted([0] * 1 + [[0, [0]]]), ""),
        (crafted([12, 3]), "unknown object"),
        (b"pmst\x01" + zlib.compress(b"\x00" * (65 * 1024**2), 9), "inflates past"),
        (b"pmst\x01garbage", "corrupt"),
    ],
)
def test_decode_refuses_crafted_bytes(data: bytes, why: str) -> None:
    if why == "":  # a well-formed list is fine: the codec is not the schema of a checkpoint
        assert state_codec.decode(data) == [[[]]]
        return
    with pytest.raises(ArtifactError, match=why):
        state_codec.decode(data)


def test_nesting_is_bounded() -> None:
    deep: list[object] = []
    for _ in range(state_codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ArtifactError, match="too deeply"):
        state_codec.encode(deep)
    tree: list[object] = [0]
    for _ in range(state_codec.MAX_DEPTH + 5):
        tree = [0, tree]
    with pytest.raises(ArtifactError):
        state_codec.decode(crafted(tree))


@pytest.mark.parametrize("wrap", [lambda x: (x, "s", 1.5), lambda x: {"k": x, "n": None}])
def test_names_and_attributes_keep_the_depth_bound(wrap: Callable[[object], object]) -> None:
    """Tuples and mappings of scalars (their fast path) are bounded exactly as other values: a
    value one level deeper than the bound is refused, one at the bound round-trips."""

    def nested(levels: int) -> object:
        value: object = wrap("leaf")
        for _ in range(levels):
            value = wrap(value)
        return value

    fits = nested(state_codec.MAX_DEPTH - 1)
    assert state_codec.decode(state_codec.encode(fits)) == fits
    with pytest.raises(ArtifactError, match="too deeply"):
        state_codec.encode(nested(state_codec.MAX_DEPTH))


def test_moved_classes_keep_the_names_checkpoints_gave_them() -> None:
    """A class moved to another module is written under the name it had before the move, and
    that name restores it: checkpoints of old and new workers read alike."""
    m = trained("deviation", "cusum")
    data = m.to_bytes()
    tree = zlib.decompress(data[len(state_codec.MAGIC) + 1 :])
    for home, name in state_codec.CHECKPOINT_NAMES.items():
        assert name.encode() in tree and home.encode() not in tree, name
    restored = AssetMonitor.from_bytes(data)
    assert type(restored.config) is MonitorConfig
    assert {type(restored._threshold).__module__, type(restored._scorer._regimes).__module__} == {
        "models.threshold",
        "models.regimes",
    }
    assert restored.to_bytes() == data
