"""``/assets`` as pages: the fleet ranked by risk (or by id), filtered, cut to a bounded page.

Ranking a large fleet costs a pass over every asset, so a :class:`FleetView` keeps the last
ranking for ``max_age_s`` and concurrent requests share it; the pass runs in a thread, so the
event loop (and ``/health``) keeps answering while it sorts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from models.errors import PmaintError
from streams.core.fleet import AssetState

Sort = Literal["risk", "asset_id"]
SORTS: tuple[Sort, ...] = ("risk", "asset_id")
DEFAULT_LIMIT = 100


def risk_key(state: AssetState) -> tuple[float, float, str]:
    """The fleet page's order: lowest RUL P10 first, then highest score over threshold.

    >>> from streams.core.signals import RulSignal
    >>> a, b = AssetState("a", 0, 0), AssetState("b", 0, 0)
    >>> b.rul = RulSignal("b", 0.0, 30.0, 12.0, 50.0)
    >>> [s.asset_id for s in sorted([a, b], key=risk_key)]
    ['b', 'a']
    """
    p10 = state.rul.rul_p10 if state.rul is not None else math.inf
    last = state.last
    over = last.score / max(last.threshold, 1e-9) if last is not None else 0.0
    return (p10, -over, state.asset_id)


@dataclass(frozen=True)
class PageRequest:
    """What ``/assets`` was asked for; :meth:`parse` turns bad query values into one line."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    sort: Sort = "risk"
    asset: str = ""
    history: bool = False

    @classmethod
    def parse(cls, query: Mapping[str, str], max_limit: int) -> PageRequest:
        """
        >>> PageRequest.parse({"limit": "5", "sort": "asset_id", "asset": "pump"}, 500)
        PageRequest(limit=5, offset=0, sort='asset_id', asset='pump', history=False)
        >>> PageRequest.parse({"limit": "9999"}, 500)
        Traceback (most recent call last):
        ...
        models.errors.PmaintError: limit must be an integer from 1 to 500 (got '9999')
        """
        sort = query.get("sort", "risk")
        if sort not in SORTS:
            raise PmaintError(f"sort must be one of {', '.join(SORTS)} (got {sort!r})")
        return cls(
            limit=_int(query, "limit", min(DEFAULT_LIMIT, max_limit), 1, max_limit),
            offset=_int(query, "offset", 0, 0, 10**9),
            sort=sort,
            asset=query.get("asset", "")[:200],
            history=query.get("history") == "1",
        )


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise PmaintError(f"{name} must be an integer from {low} to {high} (got {raw!r})")
    return int(raw)


@dataclass
class Ranking:
    """One pass over the fleet: its assets in both orders and the fleet-wide figures."""

    by_risk: list[AssetState]
    by_id: list[AssetState]
    totals: dict[str, object]
    made_at: float = field(default=0.0)


def rank(states: Sequence[AssetState]) -> Ranking:
    """Sort a snapshot of the fleet and count what the page's header shows.

    >>> r = rank([AssetState("b", 0, 0), AssetState("a", 0, 0)])
    >>> [s.asset_id for s in r.by_id], r.totals["assets"]
    (['a', 'b'], 2)
    """
    anomalous = sum(1 for s in states if s.last is not None and s.last.is_anomaly)
    alerts = sum(len(s.alerts) for s in states)
    p10s = [s.rul.rul_p10 for s in states if s.rul is not None]
    totals: dict[str, object] = {
        "assets": len(states),
        "anomalous": anomalous,
        "open_alerts": alerts,
        "min_rul_p10": round(min(p10s), 1) if p10s else None,
    }
    return Ranking(sorted(states, key=risk_key), sorted(states, key=lambda s: s.asset_id), totals)


class FleetView:
    """Pages of a fleet, ranked at most once per ``max_age_s`` however many ask."""

    def __init__(
        self,
        assets: Callable[[], Sequence[AssetState]],
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assets = assets
        self.max_age_s = max_age_s
        self.clock = clock
        self._ranking: Ranking | None = None
        self._lock = asyncio.Lock()

    async def ranking(self) -> Ranking:
        async with self._lock:  # one pass at a time; waiters reuse its result
            current = self._ranking
            if current is None or self.clock() - current.made_at >= self.max_age_s:
                snapshot = list(self.assets())  # taken on the loop: the dict is not changing
                current = await asyncio.to_thread(rank, snapshot)
                current.made_at = self.clock()
                self._ranking = current
            return current

    async def page(self, request: PageRequest) -> dict[str, object]:
        """The JSON body of one ``/assets`` page."""
        ranking = await self.ranking()
        ordered = ranking.by_risk if request.sort == "risk" else ranking.by_id
        if request.asset:
            ordered = [s for s in ordered if request.asset in s.asset_id]
        chosen = ordered[request.offset : request.offset + request.limit]
        return {
            "assets": [s.summary(history=request.history) for s in chosen],
            "total": len(ordered),
            "offset": request.offset,
            "limit": request.limit,
            "sort": request.sort,
            "fleet": ranking.totals,
        }
