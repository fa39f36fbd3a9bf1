"""A fleet's alert states by asset, for tools and tests that feed signals without a worker.

The worker keeps each asset's :class:`~streams.core.alerts.AlertState` in its
:class:`~streams.core.fleet.AssetState`; this book is the same for a plain stream of signals.

>>> book = AlertBook(AlertPolicy(debounce_records=1))
>>> [e.state for e in book.observe(AnomalySignal("a1", 0.0, 0.9, 0.5))]
['open']
>>> len(book), book.states["a1"].open_alerts()
(1, {'anomaly': 'warning'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.core.alert_policy import AlertPolicy
from streams.core.alerts import AlertEngine, AlertEvent, AlertState
from streams.core.signals import AnomalySignal, Signal

__all__ = ["AlertBook", "AnomalySignal"]


class AlertBook:
    """Alert states by asset id, each acted on by one :class:`AlertEngine`."""

    def __init__(self, policy: AlertPolicy | None = None) -> None:
        self.engine = AlertEngine(policy)
        self.states: dict[str, AlertState] = {}

    def __len__(self) -> int:
        return len(self.states)

    def observe(self, signal: Signal) -> list[AlertEvent]:
        """Feed one signal; return the alert events it causes."""
        state = self.states.get(signal.asset_id)
        if state is None:
            state = self.states[signal.asset_id] = AlertState()
        return self.engine.observe(state, signal)

    def tick(self, now: float) -> list[AlertEvent]:
        """Advance event time for every asset of the book."""
        return self.engine.tick(now, self.states.items())

    def export_asset(self, asset_id: str) -> dict[str, Any] | None:
        """The state of one asset as plain JSON-able data (None if unknown)."""
        state = self.states.get(asset_id)
        return None if state is None else state.to_data()

    def to_dict(self) -> dict[str, Any]:
        """The whole book (see :meth:`from_dict`)."""
        return {"version": 1, "assets": {k: s.to_data() for k, s in self.states.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], policy: AlertPolicy | None = None) -> AlertBook:
        """A book restored from :meth:`to_dict`."""
        book = cls(policy)
        book.states = {k: AlertState.from_data(v) for k, v in data["assets"].items()}
        return book
