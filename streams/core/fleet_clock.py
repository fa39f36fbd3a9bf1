"""The fleet's event-time "now", against which each asset's silence is judged.

The newest event time seen is not a clock: one gateway whose clock runs 20 min ahead (within
``PMAINT_MAX_FUTURE_S``) would make every other asset look 20 min silent. Here each asset that
reported since the last reading casts one vote, its newest event time, and the clock moves to
the lower median of the votes once at least ``quorum`` assets voted (fewer when the fleet is
smaller). Gateways ahead move it only when they hold most of the reporting assets; assets that
stopped do not vote, so the rest of the fleet keeps the clock going and they turn stale. The
clock never goes back. Pure and deterministic: event times in, event time out.
"""

from __future__ import annotations

import math


class FleetClock:
    """Robust event-time clock of a fleet.

    >>> clock = FleetClock()
    >>> for asset, ts in [("a", 100.0), ("b", 101.0), ("c", 99.0), ("ahead", 1300.0)]:
    ...     clock.observe(asset, ts)
    >>> clock.advance(fleet_size=4)
    100.0
    >>> clock.observe("ahead", 1400.0)
    >>> clock.advance(fleet_size=4)  # one voter is no quorum: the clock waits
    100.0
    """

    def __init__(self, quorum: int = 3) -> None:
        self.quorum = quorum
        self.now = -math.inf
        self._votes: dict[str, float] = {}

    def observe(self, asset_id: str, ts: float) -> None:
        """An asset reported a record with event time ``ts`` (epoch seconds)."""
        if ts > self._votes.get(asset_id, -math.inf):
            self._votes[asset_id] = ts

    def advance(self, fleet_size: int) -> float:
        """Move the clock on from the votes cast since it last moved; ``-inf`` until it can."""
        if len(self._votes) >= min(self.quorum, max(fleet_size, 1)):
            votes = sorted(self._votes.values())
            self.now = max(self.now, votes[(len(votes) - 1) // 2])
            self._votes.clear()
        return self.now
