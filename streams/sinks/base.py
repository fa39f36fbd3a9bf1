"""The one interface of a worker's output sinks (InfluxDB, the alert topic).

A sink starts and stops once with the app (not per batch). The agent ``add``\\ s a part's outputs
and awaits ``flush`` before that part counts as done: its offsets are acked only after every
sink acknowledged what was added (at-least-once). ``flush`` retries until it goes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)


class Sink(Protocol[T_contra]):
    """Something that takes items and acknowledges them."""

    async def start(self) -> None:
        """Open connections and start background work (once, with the app)."""

    async def stop(self) -> None:
        """Deliver what was added, then close (once, when the app stops)."""

    async def add(self, items: Sequence[T_contra]) -> None:
        """Take ``items`` to deliver (may wait while the sink's buffer is full)."""

    async def flush(self) -> None:
        """Return once every item added so far is acknowledged."""
