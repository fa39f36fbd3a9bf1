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
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError, PmaintError
from models.rul.serve import RulPrediction


class ServiceClosedError(PmaintError):
    """The RUL service is not running (not started yet, or stopped)."""


class Predictor(Protocol):
    """What the service needs from a model (``RulPredictor`` fits)."""

    @property
    def version(self) -> str: ...

    @property
    def rul_unit(self) -> str: ...

    @property
    def data_source(self) -> str: ...

    @property
    def window(self) -> int: ...

    @property
    def n_features(self) -> int: ...

    def predict(self, windows: NDArray[np.float32]) -> RulPrediction: ...


class RulForecast(NamedTuple):
    """One asset's forecast: median RUL with its P10-P90 band in ``unit`` (cheap to create), and
    whether its window looks like the data the model was trained on (``data_source``)."""

    rul: float
    rul_p10: float
    rul_p90: float
    model_version: str
    in_domain: bool = True
    unit: str = "cycles"
    data_source: str = ""


@dataclass
class ServiceStats:
    """Counters: windows forecast, forward passes run, failed passes, largest pass."""

    requests: int = 0
    batches: int = 0
    failed_batches: int = 0
    max_batch_seen: int = 0


def forecasts(model: Predictor, windows: Sequence[NDArray[np.float32]]) -> list[RulForecast]:
    """One forward pass of ``model`` over ``windows`` (each ``(W, F)``), one forecast each.

    Raises ``DataError`` for a window of the wrong shape and ``PmaintError`` when the model
    answers with a different number of forecasts.

    >>> from models.rul.serve import RulPrediction
    >>> class Half:
    ...     version, rul_unit, data_source, window, n_features = "v1", "cycles", "sim", 2, 1
    ...     def predict(self, x):
    ...         p50 = x[:, 0, 0] / 2
    ...         return RulPrediction(p50 - 1, p50, p50 + 1)
    >>> [f.rul for f in forecasts(Half(), [np.full((2, 1), 8.0, np.float32)] * 2)]
    [4.0, 4.0]
    """
    shape = (model.window, model.n_features)
    bad = [np.shape(w) for w in windows if np.shape(w) != shape]
    if bad:
        raise DataError(f"{len(bad)} windows of shape {bad[0]}, expected {shape}")
    pred = model.predict(np.stack(windows).astype(np.float32, copy=False))
    p50, p10, p90 = pred.p50.tolist(), pred.p10.tolist(), pred.p90.tolist()
    if not len(p50) == len(p10) == len(p90) == len(windows):
        raise PmaintError(f"{len(p50)} forecasts for {len(windows)} windows")
    version, unit, source = model.version, model.rul_unit, model.data_source
    return [
        RulForecast(mid, low, high, version, ok, unit, source)
        for mid, low, high, ok in zip(p50, p10, p90, pred.in_domain.tolist(), strict=True)
    ]


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
