"""The worker's RUL predictor service: the windows due in a batch in, their forecasts out.

The agent collects the windows a batch of records made due and hands those of one model to
:meth:`RulService.predict_many` in one call. The service stacks them and runs the model's
batched forward pass (every ensemble member, :meth:`~models.rul.serve.RulPredictor.predict`) in
its own thread, so the event loop keeps serving meanwhile, and returns one forecast per window,
in order. Nothing waits for more windows: the stream's batch is the model's batch. A forward
that fails raises to its caller, who loses those forecasts and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from models.errors import PmaintError
from streams.core.forecasts import Predictor, RulForecast, forecasts


class ServiceClosedError(PmaintError):
    """The RUL service is not running (not started yet, or stopped)."""


@dataclass
class ServiceStats:
    """Counters: windows forecast, forward passes run, failed passes, largest pass."""

    requests: int = 0
    batches: int = 0
    failed_batches: int = 0
    max_batch_seen: int = 0


class RulService:
    """Runs RUL forward passes off the event loop, one call per model and batch.

    ``executor``: where forward passes run; by default a private single thread (on a CPU,
    passes from two threads would bring two OpenMP thread teams that slow each other down).
    """

    def __init__(self, executor: Executor | None = None) -> None:
        self.stats = ServiceStats()
        self._executor = executor
        self._own_executor = executor is None
        self._running = False
        self._inflight: set[asyncio.Future[list[RulForecast]]] = set()

    @property
    def running(self) -> bool:
        """Whether the service accepts calls."""
        return self._running

    async def start(self) -> None:
        """Start serving (idempotent; a stopped service starts again)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rul-forward")
        self._running = True

    async def stop(self) -> None:
        """Finish the passes in flight, then stop; later calls raise ``ServiceClosedError``."""
        self._running = False
        if self._inflight:
            await asyncio.wait(set(self._inflight))
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)  # nothing runs on it any more
            self._executor = None

    async def __aenter__(self) -> RulService:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def predict_many(
        self, model: Predictor, windows: Sequence[NDArray[np.float32]]
    ) -> list[RulForecast]:
        """Forecasts for normalised ``windows`` (each ``(W, F)``) from ``model``, in order.

        Raises ``ServiceClosedError`` when not running, ``DataError`` for a window of the wrong
        shape, and the model's exception if its forward pass failed (all of the call's
        forecasts are then lost, nothing else).
        """
        if not self._running:
            raise ServiceClosedError("RUL service is not running")
        if not windows:
            return []
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, forecasts, model, windows)
        self._inflight.add(future)
        try:
            result = await future
        except Exception:
            self.stats.failed_batches += 1
            raise
        finally:
            self._inflight.discard(future)
        self.stats.requests += len(result)
        self.stats.batches += 1
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(result))
        return result
