"""Model state as bytes that cannot run code: a versioned, schema-checked msgpack codec.

Checkpoints come back from a Kafka topic, so anyone who can write that topic controls the bytes
a worker decodes. Unlike pickle, decoding here never calls a constructor named by the data, never
imports anything outside ``models.``, and recreates objects only of allowed classes: those
defined under ``models.`` and the few River classes the monitors hold (:data:`RIVER_CLASSES`).
An object is rebuilt with ``cls.__new__(cls)`` and its attributes (``__dict__`` and
``__slots__``, frozen dataclasses included); River's Rust-backed statistics from their own
byte state. Values are None, bool, int, float (inf and nan too), str, bytes, list, tuple, dict
(any allowed keys), set, frozenset, ``collections.deque`` (with ``maxlen``), ``random.Random``,
numpy arrays and scalars, nested. Anything else is refused on encode and on decode with a
:class:`~models.errors.ArtifactError`.

Decoding shares what many checkpoints repeat: a name (a string of up to 128 characters, a tuple
of strings) or a :class:`Shareable` object (immutable settings) equal to one decoded before is
that object, so the restored models of a fleet hold each sensor name and setting once.

Layout: ``MAGIC`` + version byte + zlib(msgpack(tree)). In the tree every container is an
array whose first item is a tag, so data never passes for structure.

Examples
--------
>>> from collections import deque
>>> value = {"a": [1, 2.5, float("inf")], (1, "b"): {3, 4}, "q": deque([1], maxlen=3)}
>>> decode(encode(value)) == value
True
>>> encode(object())
Traceback (most recent call last):
...
models.errors.ArtifactError: cannot encode a builtins:object
>>> decode(b"\\x80\\x04garbage")
Traceback (most recent call last):
...
models.errors.ArtifactError: not a pmaint state (bad magic)
"""

from __future__ import annotations

import importlib
import random
import sys
import zlib
from collections import defaultdict, deque
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import msgpack
import numpy as np

from models.errors import ArtifactError
from models.interning import Interner

MAGIC = b"pmst"
VERSION = 1
MAX_DECODED_BYTES = 64 * 1024**2  # a checkpoint inflating past this is refused (zip bomb)
MAX_DEPTH = 200

# River classes the monitors hold (HalfSpaceTrees and its nodes; quantile; ADWIN), with the
# Rust-backed ones rebuilt from their own __getstate__ bytes.
RIVER_CLASSES = frozenset({
    "river.anomaly.hst:HalfSpaceTrees",
    "river.tree.padded:PaddedBranch",
    "river.tree.padded:PaddedLeaf",
    "river.stats.quantile:Quantile",
    "river.drift.adwin:ADWIN",
})  # fmt: skip
NATIVE_CLASSES = frozenset({
    "river._river_rust.stats:RsQuantile",
    "river._river_rust.drift:AdaptiveWindowing",
})  # fmt: skip

# tags of the tree's arrays
_LIST, _TUPLE, _DICT, _SET, _FROZENSET, _DEQUE, _OBJECT, _NDARRAY, _NPSCALAR = range(9)
_NATIVE, _RANDOM, _DEFAULTDICT, _REF = 9, 10, 11, 12
_FACTORIES = {t.__name__: t for t in (list, dict, set, tuple, int, float, str)}
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
# Decoded names (strings up to _SHARED_LENGTH characters, tuples of strings) and Shareable
# objects are shared with every equal one decoded before: a thousand restored assets with the
# same sensors hold each name once.
_SHARED_LENGTH = 128
_SHARED: Interner[Any] = Interner(max_entries=16384)


# Classes moved to another module after checkpoints named them: each keeps the name it was
# checkpointed under (where it was defined then), so checkpoints written before and after the
# move, by old and new workers alike, restore the same.
CHECKPOINT_NAMES = {
    "models.monitor_config:MonitorConfig": "models.monitor:MonitorConfig",
    "models.regimes:OperatingRegimes": "models.anomaly:OperatingRegimes",
    "models.threshold:AdaptiveThreshold": "models.anomaly:AdaptiveThreshold",
}
_HOMES = {name: home for home, name in CHECKPOINT_NAMES.items()}


def _name(cls: type) -> str:
    """The name a checkpoint gives ``cls``: ``module:qualname``, where it was defined when
    checkpoints first named it (:data:`CHECKPOINT_NAMES`).

    >>> from models.monitor_config import MonitorConfig
    >>> _name(MonitorConfig), _class("models.monitor:MonitorConfig") is MonitorConfig
    ('models.monitor:MonitorConfig', True)
    """
    name = f"{cls.__module__}:{cls.__qualname__}"
    return CHECKPOINT_NAMES.get(name, name)


def _allowed(name: str) -> bool:
    return name.startswith("models.") or name in RIVER_CLASSES


def _attributes(obj: object) -> dict[str, Any]:
    """An object's attributes: the dict its class's own ``__getstate__`` returns (to leave out
    caches), else ``__dict__`` plus any ``__slots__``."""
    cls = type(obj)
    if cls.__getstate__ is not object.__getstate__:
        state = obj.__getstate__()
        if isinstance(state, dict):
            return state
    attrs = dict(getattr(obj, "__dict__", {}))
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
    return attrs


class HasCaches:
    """Base of a class whose attributes named in ``CACHES`` are caches, rebuilt on demand: they
    are left out of its state (checkpoints, copies)."""

    CACHES: ClassVar[tuple[str, ...]] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self.CACHES}


class Shareable:
    """Base of an immutable, hashable class (settings) whose decoded instances are replaced by
    an equal one decoded before, so that many restored objects share one."""


class _Encoder:
    """Builds the tree; an allowed object met again (HalfSpaceTrees keeps its nodes twice)
    becomes a reference to its first occurrence, so shared objects stay shared."""

    def __init__(self) -> None:
        self.objects: dict[int, int] = {}  # id -> index, in order of first occurrence

    def tree(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ArtifactError("state nested too deeply (or a cycle)")
        kind = type(value)
        if kind in _SCALARS:
            return value
        d, tree = depth + 1, self.tree
        if kind is list:
            if all(type(v) is float for v in value):  # fast path: running statistics
                return [_LIST, *value]
            return [_LIST, *(tree(v, d) for v in value)]
        if kind is dict:
            return [_DICT, *self.pairs(value, d)]
        if kind is tuple:
            if d <= MAX_DEPTH and all(type(v) in _SCALARS for v in value):  # fast path: names
                return [_TUPLE, *value]
            return [_TUPLE, *(tree(v, d) for v in value)]
        if kind is set or kind is frozenset:
            return [_SET if kind is set else _FROZENSET, *(tree(v, d) for v in value)]
        if kind is deque:
            return [_DEQUE, value.maxlen, *(tree(v, d) for v in value)]
        if kind is defaultdict:
            return [_DEFAULTDICT, self.factory(value.default_factory, d), *self.pairs(value, d)]
        if kind is np.ndarray:
            if value.dtype.hasobject:
                raise ArtifactError("cannot encode a numpy array of objects")
            raw = np.ascontiguousarray(value).tobytes()
            return [_NDARRAY, value.dtype.str, list(value.shape), raw]
        if isinstance(value, np.generic) and not isinstance(value, np.object_):
            return [_NPSCALAR, value.dtype.str, value.tobytes()]
        if kind is random.Random:
            return [_RANDOM, tree(value.getstate(), d)]
        name = _name(kind)
        if name in NATIVE_CLASSES:
            newargs = value.__getnewargs__() if hasattr(value, "__getnewargs__") else ()
            return [_NATIVE, name, tree(tuple(newargs), d), value.__getstate__()]
        if not _allowed(name):
            raise ArtifactError(f"cannot encode a {name}")
        index = self.objects.get(id(value))
        if index is not None:
            return [_REF, index]
        self.objects[id(value)] = len(self.objects)
        return [_OBJECT, name, *self.pairs(_attributes(value), d)]

    def pairs(self, mapping: Mapping[Any, Any], depth: int) -> list[Any]:
        out: list[Any] = []
        tree, leaves = self.tree, depth <= MAX_DEPTH  # a scalar is its own tree
        for k, v in mapping.items():
            out.append(k if leaves and type(k) in _SCALARS else tree(k, depth))
            out.append(v if leaves and type(v) in _SCALARS else tree(v, depth))
        return out

    def factory(self, factory: Any, depth: int) -> Any:
        """A defaultdict's factory: None, a builtin type, or a ``functools.partial`` of one."""
        if factory is None or factory in _FACTORIES.values():
            return None if factory is None else factory.__name__
        if (
            type(factory) is partial
            and factory.func in _FACTORIES.values()
            and not factory.keywords
        ):
            return [factory.func.__name__, self.tree(factory.args, depth)]
        raise ArtifactError(f"cannot encode a defaultdict with factory {factory!r}")


def encode(value: Any, level: int = 1) -> bytes:
    """``value`` as checkpoint bytes (zlib ``level``); an unsupported value raises
    :class:`~models.errors.ArtifactError`."""
    try:
        packed = msgpack.packb(_Encoder().tree(value, 0), use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. an int over 64 bits
        raise ArtifactError(f"cannot encode state: {exc}") from None
    return MAGIC + bytes([VERSION]) + zlib.compress(packed, level)


def _class(name: str) -> type:
    """The allowed class called ``name`` (``module:qualname``); nothing else is imported."""
    native = name in NATIVE_CLASSES
    if not (native or _allowed(name)):
        raise ArtifactError(f"class {name} is not allowed in a checkpoint")
    module_name, _, qualname = _HOMES.get(name, name).partition(":")
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except ImportError:
        raise ArtifactError(f"no module {module_name}") from None
    cls = getattr(module, qualname, None) if qualname.isidentifier() else None
    if not isinstance(cls, type) or _name(cls) != name:
        raise ArtifactError(f"no class {name}")
    return cls


class _Decoder:
    """Rebuilds values from the tree, checking every node."""

    def __init__(self) -> None:
        self.objects: list[object] = []  # in order of first occurrence, like the encoder's
        self.classes: dict[str, type] = {}

    def pairs(self, items: list[Any], depth: int) -> list[tuple[Any, Any]]:
        if len(items) % 2:
            raise ArtifactError("odd number of items in a mapping")
        value = self.value
        return [
            (value(items[i], depth), value(items[i + 1], depth)) for i in range(0, len(items), 2)
        ]

    def value(self, node: Any, depth: int) -> Any:
        kind = type(node)
        if kind in _SCALARS:
            return _SHARED.shared(node) if kind is str and len(node) <= _SHARED_LENGTH else node
        if kind is not list or not node or type(node[0]) is not int or depth > MAX_DEPTH:
            raise ArtifactError("malformed state")
        tag, rest, d, value = node[0], node[1:], depth + 1, self.value
        if tag == _LIST:  # decoded in place: ``rest`` is a new list of just the right size
            for i, v in enumerate(rest):
                if type(v) is not float:
                    rest[i] = value(v, d)
            return rest
        if tag == _DICT:
            return dict(self.pairs(rest, d))
        if tag == _TUPLE:
            values = tuple([value(v, d) for v in rest])
            return _SHARED.shared(values) if all(type(v) is str for v in values) else values
        if tag in (_SET, _FROZENSET):
            items = [value(v, d) for v in rest]
            return set(items) if tag == _SET else frozenset(items)
        if tag == _DEQUE:
            if not rest or not (rest[0] is None or type(rest[0]) is int):
                raise ArtifactError("malformed deque")
            return deque((value(v, d) for v in rest[1:]), maxlen=rest[0])
        if tag == _DEFAULTDICT:
            return defaultdict(self.factory(rest[0], d), self.pairs(rest[1:], d))
        if tag == _NDARRAY:
            dtype, shape, raw = rest
            return np.frombuffer(raw, dtype=_dtype(dtype)).reshape(shape).copy()
        if tag == _NPSCALAR:
            return np.frombuffer(rest[1], dtype=_dtype(rest[0]))[0]
        if tag == _RANDOM:
            rng = random.Random()
            rng.setstate(value(rest[0], d))
            return rng
        if tag == _NATIVE:
            return self.native(rest, d)
        if tag == _OBJECT:
            return self.object(rest, d)
        if tag == _REF and len(rest) == 1 and type(rest[0]) is int:
            if not 0 <= rest[0] < len(self.objects):
                raise ArtifactError("reference to an unknown object")
            return self.objects[rest[0]]
        raise ArtifactError(f"unknown tag {tag}")

    def native(self, rest: list[Any], depth: int) -> Any:
        name, newargs, state = rest
        if type(name) is not str or name not in NATIVE_CLASSES or type(state) is not bytes:
            raise ArtifactError(f"class {name} is not allowed in a checkpoint")
        cls: Any = _class(name)
        obj = cls.__new__(cls, *self.value(newargs, depth))
        obj.__setstate__(state)
        return obj

    def object(self, rest: list[Any], depth: int) -> Any:
        name = rest[0]
        cls: Any = self.classes.get(name) if type(name) is str else None
        if cls is None:
            cls = self.classes[name] = _class(name)
        obj = cls.__new__(cls)
        at = len(self.objects)
        self.objects.append(obj)
        for k, v in self.pairs(rest[1:], depth):
            if type(k) is not str or not k.isidentifier() or k.startswith("__"):
                raise ArtifactError(f"bad attribute name in {name}")
            object.__setattr__(obj, k, v)
        if isinstance(obj, Shareable):
            obj = self.objects[at] = _SHARED.shared(obj)
        return obj

    def factory(self, node: Any, depth: int) -> Any:
        if node is None:
            return None
        if type(node) is str and node in _FACTORIES:
            return _FACTORIES[node]
        if type(node) is list and len(node) == 2 and node[0] in _FACTORIES:
            return partial(_FACTORIES[node[0]], *self.value(node[1], depth))
        raise ArtifactError("bad defaultdict factory")


def _dtype(spec: Any) -> np.dtype[Any]:
    if type(spec) is not str:
        raise ArtifactError("bad numpy dtype")
    dt = np.dtype(spec)
    if dt.hasobject:
        raise ArtifactError("numpy objects are not allowed in a checkpoint")
    return dt


def decode(data: bytes, max_bytes: int = MAX_DECODED_BYTES) -> Any:
    """The value :func:`encode` wrote; anything else raises :class:`~models.errors.ArtifactError`
    (nothing in ``data`` can run code; the inflated size is bounded by ``max_bytes``)."""
    return _decoded(_unpacked(data, max_bytes))


def peek(data: bytes, key: str, max_bytes: int = MAX_DECODED_BYTES) -> Any:
    """The value under ``key`` of the dict :func:`encode` wrote, none of the rest built
    (several times cheaper than :func:`decode` when the rest holds models); ArtifactError when
    ``data`` is not such a dict or has no ``key``.

    >>> peek(encode({"alerts": {"seen": 5.0}, "monitor": [1.0, 2.0]}), "alerts")
    {'seen': 5.0}
    """
    tree = _unpacked(data, max_bytes)
    if type(tree) is not list or not tree or tree[0] != _DICT or len(tree) % 2 == 0:
        raise ArtifactError("state is not a mapping")
    for i in range(1, len(tree), 2):
        if tree[i] == key:
            return _decoded(tree[i + 1])
    raise ArtifactError(f"state has no {key!r}")


def _unpacked(data: bytes, max_bytes: int) -> Any:
    """The tree :func:`encode` packed into ``data``."""
    if not data.startswith(MAGIC):
        raise ArtifactError("not a pmaint state (bad magic)")
    version = data[len(MAGIC) : len(MAGIC) + 1]
    if version != bytes([VERSION]):
        raise ArtifactError(f"state version {version[0] if version else None} (expected {VERSION})")
    try:
        inflate = zlib.decompressobj()
        packed = inflate.decompress(data[len(MAGIC) + 1 :], max_bytes)
        if inflate.unconsumed_tail:
            raise ArtifactError(f"state inflates past {max_bytes} bytes")
        if not inflate.eof or inflate.unused_data:
            raise ArtifactError("truncated state, or bytes after it")
        return msgpack.unpackb(packed, use_list=True, raw=False, strict_map_key=True)
    except ArtifactError:
        raise
    except Exception as exc:  # zlib/msgpack errors of crafted bytes
        raise ArtifactError(f"corrupt state: {type(exc).__name__}: {exc}") from None


def _decoded(tree: Any) -> Any:
    try:
        return _Decoder().value(tree, 0)
    except ArtifactError:
        raise
    except Exception as exc:  # numpy/River errors of crafted bytes
        raise ArtifactError(f"corrupt state: {type(exc).__name__}: {exc}") from None
