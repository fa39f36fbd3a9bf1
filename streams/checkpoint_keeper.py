"""A worker's checkpoints, from the moment they fall due to the moment they are in the table.

An asset's checkpoint is taken when the pipeline asks for one, when its changes are older than
the checkpoint interval, or when it is evicted; it reaches the table (the changelog) only after
the outputs of the records it has seen are acknowledged (:attr:`CheckpointKeeper.unwritten`
until then), and an asset whose RUL forecasts are running is checkpointed once they are in. A
fleet whose checkpoints fall due together is saved over several parts, each within a share of a
part's budget, so no part stalls on all of them.

The keeper also reads the stored assets of this worker's partitions (those not in memory) to
watch them for silence.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, MutableMapping
from functools import partial

from models.errors import ArtifactError
from streams.core.fleet import AssetState, Fleet, stored_alerts
from streams.core.metrics import Metrics
from streams.core.pipeline import ModelPipeline
from streams.core.routing import partition_for
from streams.core.time_budget import TimeBudget

WRITES_PER_YIELD = 16  # checkpoints written to the table between yields to the event loop


class CheckpointKeeper:
    """Takes a fleet's checkpoints, a few at a time, and writes them to ``table``."""

    def __init__(
        self,
        fleet: Fleet,
        pipeline: ModelPipeline,
        table: MutableMapping[str, bytes],
        metrics: Metrics,
        partitions: int,
    ) -> None:
        self.fleet = fleet
        self.pipeline = pipeline
        self.table = table
        self.metrics = metrics
        self.partitions = partitions
        # checkpoints not yet in the table (outputs of what they saw not acked yet), latest per
        # asset; and those taken since the last part was handed on
        self.unwritten: dict[str, bytes] = {}
        self._taken: dict[str, bytes] = {}
        # checkpoints the pipeline asked for and not taken yet: assets that fall due together
        # are checkpointed over several parts, within each part's budget
        self._due: dict[str, AssetState] = {}
        # assets whose RUL forecasts are running while the next part is scored: their
        # checkpoints wait for the forecasts (``_deferred``)
        self.forecasting: set[str] = set()
        self._deferred: dict[str, AssetState] = {}
        self._stored: dict[str, None] = {}  # stored assets to watch for silence, an ordered set

    def ask(self, states: Iterable[AssetState]) -> None:
        """Checkpoints the pipeline asked for, taken by :meth:`save_idle` in the order asked."""
        for state in states:
            self._due.setdefault(state.asset_id, state)

    def evicted(self, state: AssetState) -> None:
        """Checkpoint an asset evicted from memory, unless nothing changed since its last one."""
        if state.since_checkpoint or self._due.get(state.asset_id) is state:
            self.save(state)

    def save_idle(self, seconds: float) -> int:
        """Checkpoint the assets the pipeline asked for, then those whose changes are older than
        the checkpoint interval, oldest first, for at most ``seconds`` (a share of a part's
        budget: a fleet whose checkpoints fall due together is saved over several parts instead
        of stalling one). Returns how many were saved."""
        budget = TimeBudget(seconds)
        fleet = self.fleet
        assets, saved = fleet.assets, 0
        # at least one chunk (16) a call, so the oldest requests are always taken
        for chunk in budget.chunks_of(self._pop_due):
            for state in chunk:
                if assets.get(state.asset_id) is state:  # not dropped or evicted since
                    self.save(state)
                    saved += 1
        if budget.spent:
            return saved
        before = time.monotonic() - self.pipeline.config.checkpoint_interval_s
        for chunk in budget.chunks_of(partial(fleet.unsaved_since, before), check_first=True):
            for state in chunk:
                self.save(state)
            saved += len(chunk)
        return saved

    def _pop_due(self, limit: int) -> list[AssetState]:
        """The first ``limit`` checkpoints the pipeline asked for, no longer asked for."""
        return [self._due.pop(k) for k in list(self._due)[:limit]]

    def save(self, state: AssetState, into: dict[str, bytes] | None = None) -> None:
        """Checkpoint ``state`` now (into the checkpoints taken since the last part, or
        ``into``); it goes into the table once the outputs of the records it has seen are
        acknowledged (:attr:`unwritten` until then). An asset whose RUL forecasts are running is
        checkpointed once they are in (:meth:`forecasts_in`)."""
        if state.asset_id in self.forecasting:
            self._deferred[state.asset_id] = state
            return
        raw = self.pipeline.checkpoint(state)
        state.since_checkpoint = 0
        self._due.pop(state.asset_id, None)
        self.fleet.saved(state.asset_id)
        if raw is None:
            self.metrics.checkpoints_too_large.inc()
            return
        self.unwritten[state.asset_id] = raw
        self.metrics.checkpoints.inc()
        (self._taken if into is None else into)[state.asset_id] = raw

    def forecasts_started(self, assets: Iterable[str]) -> None:
        """The RUL forecasts of ``assets`` are running: their checkpoints wait for them."""
        self.forecasting.update(assets)

    def forecasts_in(self, assets: Iterable[str], into: dict[str, bytes]) -> None:
        """The RUL forecasts of ``assets`` are in: take the checkpoints that waited for them
        ``into`` the part's."""
        self.forecasting.difference_update(assets)
        for asset_id in assets:
            if (state := self._deferred.pop(asset_id, None)) is not None:
                self.save(state, into=into)

    def forecasts_dropped(self) -> None:
        """No forecast is coming (cancelled): what waited for one is due with the next part."""
        self.forecasting.clear()
        self._due.update(self._deferred)
        self._deferred.clear()

    def take(self) -> dict[str, bytes]:
        """The checkpoints taken since the last call, to go out with a part."""
        taken, self._taken = self._taken, {}
        return taken

    async def write(self, checkpoints: dict[str, bytes]) -> None:
        """Put ``checkpoints`` into the table (the outputs of what they saw are acknowledged)."""
        for i, (asset_id, raw) in enumerate(checkpoints.items(), 1):
            self.table[asset_id] = raw  # the table's store and changelog send
            if i % WRITES_PER_YIELD == 0:  # a fleet's worth would hold the event loop
                await asyncio.sleep(0)
            if self.unwritten.get(asset_id) is raw:
                del self.unwritten[asset_id]

    def checkpoint_of(self, asset_id: str) -> bytes | None:
        """The asset's latest checkpoint: taken and not yet written, or from the table."""
        raw = self.unwritten.get(asset_id)
        return raw if raw is not None else self.table.get(asset_id)

    def scan_stored(self, asset_ids: Iterable[str | bytes]) -> None:
        """Watch for silence these stored assets of this worker's partitions (those not in
        memory): the table's keys once it is recovered, and those recovery adds later; their
        checkpoints are read by :meth:`watch_stored`."""
        self._stored.update(
            dict.fromkeys(k.decode() if isinstance(k, bytes) else k for k in asset_ids)
        )

    def watch_stored(self, seconds: float) -> int:
        """Read the alert state of stored assets found by :meth:`scan_stored`, for at most
        ``seconds``, and watch each until its silence matters; returns how many were taken."""
        budget, taken = TimeBudget(seconds), 0
        fleet, engine = self.fleet, self.pipeline.engine
        for chunk in budget.chunks_of(self._pop_stored, check_first=True):
            taken += len(chunk)
            for asset_id in chunk:
                if asset_id in fleet.assets or asset_id in fleet.silent:
                    continue
                raw = self.checkpoint_of(asset_id)
                if raw is None:
                    continue
                try:
                    alert = stored_alerts(raw)
                except ArtifactError:
                    continue  # refused with a warning if the asset reports again
                partition = partition_for(asset_id, self.partitions)
                fleet.silent.watch(asset_id, partition, engine.next_look(alert))
        return taken

    def _pop_stored(self, limit: int) -> list[str]:
        """The first ``limit`` stored assets found by :meth:`scan_stored`, no longer waiting."""
        chunk = list(itertools.islice(self._stored, limit))
        for asset_id in chunk:
            del self._stored[asset_id]
        return chunk
