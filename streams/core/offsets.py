"""Offset continuity: catch messages the consumer skipped, so they can be read again.

Around a rebalance, faust can hand the agent records it fetched before seeking back to the
committed offsets; it then treats the offsets in between as done and drops them when they
arrive again (faust-streaming issues 216 and 221). An agent that acks only what it processed
would still lose them. :class:`OffsetTracker` knows the next offset the agent expects from each
partition it kept through the rebalance; a batch that jumps past it is cut at the jump, and the
caller rewinds the partition to the first missing offset.

A jump that is still there after one rewind is a real hole in the log (compaction, transaction
markers, retention) and is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.core.processor import Inbound


class Skip(NamedTuple):
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of ``partition`` never arrived."""

    partition: int
    start: int
    end: int


@dataclass
class OffsetTracker:
    """The next offset expected from each partition (unknown for a partition just assigned).

    >>> t = OffsetTracker()
    >>> kept, skips = t.admit([Inbound("t", 0, o, b"") for o in (5, 6, 7)])
    >>> len(kept), skips, t.expected
    (3, [], {0: 8})
    >>> kept, skips = t.admit([Inbound("t", 0, o, b"") for o in (3, 4, 8, 20, 21)])
    >>> [m.offset for m in kept], skips
    ([3, 4, 8], [Skip(partition=0, start=9, end=20)])
    >>> kept, skips = t.admit([Inbound("t", 0, o, b"") for o in (20, 21)])  # still a hole
    >>> [m.offset for m in kept], skips, t.expected
    ([20, 21], [], {0: 22})
    """

    expected: dict[int, int] = field(default_factory=dict)
    _rewound: set[Skip] = field(default_factory=set)

    def admit(self, batch: Sequence[Inbound]) -> tuple[list[Inbound], list[Skip]]:
        """The messages to process now, and the skips to rewind (their messages are held back:
        they arrive again after the rewind)."""
        kept: list[Inbound] = []
        skips: dict[int, Skip] = {}
        for message in batch:
            p = message.partition
            if p in skips:
                continue
            expected = self.expected.get(p)
            if expected is not None and message.offset > expected:
                skip = Skip(p, expected, message.offset)
                if skip not in self._rewound:
                    self._rewound.add(skip)
                    skips[p] = skip
                    continue
            kept.append(message)
            self.expected[p] = max(expected or 0, message.offset + 1)
        return kept, list(skips.values())

    def keep(self, owned: Iterable[int]) -> None:
        """After a rebalance: forget every partition not ``owned``, so one assigned anew starts
        wherever its committed offset says.

        >>> t = OffsetTracker({0: 8, 1: 3})
        >>> t.keep([1, 2]); t.expected
        {1: 3}
        """
        owned = set(owned)
        self.expected = {p: o for p, o in self.expected.items() if p in owned}
        self._rewound = {s for s in self._rewound if s.partition in owned}
