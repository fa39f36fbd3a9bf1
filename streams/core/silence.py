"""Assets a worker owns but does not hold in memory, watched for silence.

An asset leaves memory when the fleet is over its asset budget (evicted, checkpointed first),
and a worker that starts, or takes over a partition in a rebalance, holds none of the
partition's assets until they report again. An asset that stopped reporting never reports
again: without a watch, its ``data_quality`` alert would never open. Each watched asset waits
here with the event time at which its silence next matters (see
:meth:`~streams.core.alerts.AlertEngine.next_look`); the worker brings it back into memory then,
and the alert engine judges it like any other asset.
"""

from __future__ import annotations

import heapq
import math


class SilenceWatch:
    """Watched assets by the event time at which each is next due.

    >>> watch = SilenceWatch()
    >>> watch.watch("pump-1", partition=0, due=700.0)
    >>> watch.watch("pump-2", partition=1, due=650.0)
    >>> watch.watch("pump-3", partition=1, due=math.inf)  # nothing left to judge: not watched
    >>> watch.pop_due(now=660.0), len(watch)
    ([('pump-2', 1)], 1)
    >>> watch.forget("pump-1")  # it reported again: back in memory
    >>> watch.pop_due(now=1e9), len(watch)
    ([], 0)
    """

    def __init__(self) -> None:
        self._due: dict[str, tuple[float, int]] = {}  # asset id -> (due, partition)
        self._heap: list[tuple[float, str]] = []  # (due, asset id); stale entries skipped

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._due

    def watch(self, asset_id: str, partition: int, due: float) -> None:
        """Watch ``asset_id`` until event time ``due`` (``inf``: nothing to watch for)."""
        if math.isinf(due):
            self.forget(asset_id)
            return
        self._due[asset_id] = (due, partition)
        heapq.heappush(self._heap, (due, asset_id))
        if len(self._heap) > 2 * len(self._due) + 64:  # entries replaced since: drop them
            self._heap = [(d, a) for a, (d, _) in self._due.items()]
            heapq.heapify(self._heap)

    def forget(self, asset_id: str) -> None:
        """Stop watching ``asset_id`` (it is back in memory)."""
        self._due.pop(asset_id, None)

    def pop_due(self, now: float, limit: int = 1 << 62) -> list[tuple[str, int]]:
        """The ``(asset id, partition)`` of up to ``limit`` assets due at event time ``now``,
        earliest first, no longer watched from now on."""
        out: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(out) < limit:
            due, asset_id = heapq.heappop(heap)
            entry = self._due.get(asset_id)
            if entry is not None and entry[0] == due:
                del self._due[asset_id]
                out.append((asset_id, entry[1]))
        return out

    def drop_partitions(self, partitions: set[int]) -> None:
        """Stop watching the assets of ``partitions`` (no longer this worker's)."""
        for asset_id in [a for a, (_, p) in self._due.items() if p in partitions]:
            del self._due[asset_id]
