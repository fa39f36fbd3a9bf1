"""One shared object per equal immutable value (sensor names and name sets), bounded."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Interner(Generic[T]):
    """Maps each value to one shared equal object, so a thousand assets with the same sensors
    hold one set. At most ``max_entries`` values are kept; then the table starts over (sharing
    is only a saving), so values that never repeat (an asset adding sensor names record after
    record) cannot make it grow without bound.

    >>> names = Interner[tuple[str, ...]](max_entries=2)
    >>> a = names.shared(("s1", "s2")); names.shared(tuple(["s1", "s2"])) is a
    True
    >>> _ = names.shared(("x",)), names.shared(("y",)); len(names)
    1
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._values: dict[T, T] = {}

    def __len__(self) -> int:
        return len(self._values)

    def shared(self, value: T) -> T:
        found = self._values.get(value)
        if found is not None:
            return found
        if len(self._values) >= self.max_entries:
            self._values.clear()
        self._values[value] = value
        return value
