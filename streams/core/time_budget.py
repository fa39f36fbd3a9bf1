"""Work taken from a source in chunks, for at most a time budget.

The agent's periodic chores (checkpointing, reviving silent assets, reading stored ones) hold the
event loop; each takes a chunk of items at a time and reads the clock between chunks, so a large
backlog is worked through over several calls instead of stalling one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

CHUNK = 16  # items taken between two readings of the clock


class TimeBudget:
    """``seconds`` of work from now, on ``clock``; :attr:`spent` is what its last reading said."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()
        self.spent = False

    def check(self) -> bool:
        """Read the clock: is the budget spent (``seconds`` or more gone)?"""
        self.spent = self.clock() - self.started >= self.seconds
        return self.spent

    def chunks_of(
        self, take: Callable[[int], Sequence[T]], *, check_first: bool = False
    ) -> Iterator[Sequence[T]]:
        """Chunks of ``take(CHUNK)``, until it gives none or the budget is spent. The clock is
        read after each chunk's work, and with ``check_first`` before the first chunk too (without
        it the first chunk is taken whatever the budget). A chunk is taken only to be yielded:
        items not reached stay with the source."""
        if check_first and self.check():
            return
        while chunk := take(CHUNK):
            yield chunk
            if self.check():
                return
