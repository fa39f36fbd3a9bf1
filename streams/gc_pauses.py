"""Keeping a worker's long-lived heap out of the garbage collector's full passes.

A worker holds a large heap that lives as long as it does (each asset's online models). A full
collection scans every tracked object, and holds the event loop while it does: the latency
benchmark saw 300-430 ms pauses, the longest single wait a reading met. ``gc.freeze()`` moves
every object alive now to a permanent generation that collections skip, so the worker freezes its
heap when it starts and every ``PMAINT_GC_FREEZE_S`` seconds after, and a full pass scans only
what was allocated since.
Garbage that is only reachable through a reference cycle among frozen objects is not collected
while frozen (objects freed by their reference count are, frozen or not): once an hour the heap is
unfrozen and collected in full, one pause of the old length.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FULL_EVERY_S = 3600.0  # a full collection of the unfrozen heap, for cycles among frozen objects


class HeapFreezer:
    """Call :meth:`tick` from a timer: freezes what is alive, and collects in full (then
    freezes again) once ``full_every_s`` has passed since the last full pass.

    >>> freezer = HeapFreezer(full_every_s=3600.0, clock=lambda: 0.0)
    >>> freezer.tick()
    False
    >>> gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """

    def __init__(
        self, full_every_s: float = FULL_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self.last_full = self.clock()

    def tick(self) -> bool:
        """Freeze the heap; ``True`` when this tick collected in full first."""
        now = self.clock()
        full = now - self.last_full >= self.full_every_s
        if full:
            gc.unfreeze()
            gc.collect()
            self.last_full = now
        else:
            gc.collect(1)  # young garbage (cycles included) is not frozen
        gc.freeze()
        return full
