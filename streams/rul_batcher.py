"""Asyncio micro-batcher for RUL inference across assets.

Agents call ``await batcher.predict(asset_id, window[, predictor])`` per record. Requests queue
up; one background task takes the first waiting request, gathers more until ``max_batch``
requests or ``max_wait_ms`` have passed, and runs a single batched forward pass per model (a
mixed fleet has one model per asset type) in a worker thread so the event loop keeps serving.
Each caller gets its own forecast, or the exception of its batch; an error never stops the
batcher.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError, PmaintError
from models.rul.serve import RulPrediction


class BatcherClosedError(PmaintError):
    """The batcher is not running (not started yet, or stopped)."""


class Predictor(Protocol):
    """What the batcher needs from a model (``RulPredictor`` fits)."""

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
class BatcherStats:
    """Counters for /metrics: requests served, batches run, failed batches, largest batch."""

    requests: int = 0
    batches: int = 0
    failed_batches: int = 0
    max_batch_seen: int = 0

    @property
    def mean_batch(self) -> float:
        """Average requests per batch."""
        return self.requests / self.batches if self.batches else 0.0


_Request = tuple[str, NDArray[np.float32], "asyncio.Future[RulForecast]", Predictor]


class RulBatcher:
    """Collects per-asset RUL requests into batched forward passes.

    Parameters
    ----------
    predictor
        The model of requests that name none, e.g. ``RulPredictor.load(dir)``.
    max_batch
        Most windows per forward pass.
    max_wait_ms
        Longest time the first request of a batch waits for company.
    executor
        Where forward passes run; by default a private single-thread pool.
    """

    def __init__(
        self,
        predictor: Predictor | None,
        max_batch: int = 256,
        max_wait_ms: float = 5.0,
        executor: Executor | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatcherStats()
        self._executor = executor
        self._own_executor = executor is None
        self._pending: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def running(self) -> bool:
        """Whether the batcher accepts requests."""
        return self._task is not None and not self._closing

    async def start(self) -> None:
        """Start the background batching task (idempotent)."""
        if self._task is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rul-batcher")
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="rul-batcher")

    async def stop(self) -> None:
        """Serve what is queued, then stop; later ``predict`` calls raise ``BatcherClosedError``."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._own_executor and self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    async def __aenter__(self) -> RulBatcher:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def predict(
        self, asset_id: str, window: NDArray[np.float32], predictor: Predictor | None = None
    ) -> RulForecast:
        """Forecast one asset from its normalised window ``(W, F)`` with ``predictor`` (default:
        the batcher's).

        Raises ``DataError`` at once for a window of the wrong shape (it never joins a batch),
        ``BatcherClosedError`` when not running, and the model's exception if its batch failed.
        """
        if not self.running:
            raise BatcherClosedError("RUL batcher is not running")
        model = predictor if predictor is not None else self.predictor
        if model is None:
            raise DataError(f"asset {asset_id}: no RUL model to forecast with")
        x = np.asarray(window, dtype=np.float32)
        shape = (model.window, model.n_features)
        if x.shape != shape:
            raise DataError(f"asset {asset_id}: window shape {x.shape}, expected {shape}")
        future: asyncio.Future[RulForecast] = asyncio.get_running_loop().create_future()
        self._pending.append((asset_id, x, future, model))
        if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
            self._wakeup.set()  # the batcher waits for a first request or a full batch
        return await future

    async def _gather(self) -> bool:
        """Wait for a first request, then for company until full or the deadline; False: stop."""
        while not self._pending:
            if self._closing:
                return False
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(self._pending) < self.max_batch and not self._closing:
            left = deadline - loop.time()
            if left <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                break
        return True

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:  # cancelled from outside: nobody waits forever
            self._fail(list(self._pending), BatcherClosedError("RUL batcher stopped"))
            self._pending.clear()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while await self._gather():
            model, batch = self._take()
            live = [r for r in batch if not r[2].done()]  # callers may have given up
            if not live:
                continue
            try:
                windows = np.stack([r[1] for r in live])  # one copy into the batch
                pred = await loop.run_in_executor(self._executor, model.predict, windows)
                columns = (pred.p50.tolist(), pred.p10.tolist(), pred.p90.tolist())
                if any(len(c) != len(live) for c in columns):
                    raise PmaintError(f"{len(columns[0])} forecasts for {len(live)} windows")
            except asyncio.CancelledError:
                self._fail(live, BatcherClosedError("RUL batcher was cancelled"))
                raise
            except Exception as exc:  # a failed batch fails its callers, not the batcher
                self.stats.failed_batches += 1
                self._fail(live, exc)
                continue
            domain = pred.in_domain.tolist()
            version, unit, source = model.version, model.rul_unit, model.data_source
            for (_, _, fut, _), p50, p10, p90, ok in zip(live, *columns, domain, strict=True):
                if not fut.done():
                    fut.set_result(RulForecast(p50, p10, p90, version, ok, unit, source))
            self.stats.requests += len(live)
            self.stats.batches += 1
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(live))

    def _take(self) -> tuple[Predictor, list[_Request]]:
        """The oldest waiting request's model and up to ``max_batch`` requests for it, in order."""
        model = self._pending[0][3]
        if all(r[3] is model for r in self._pending):
            n = min(self.max_batch, len(self._pending))
            return model, [self._pending.popleft() for _ in range(n)]
        batch: list[_Request] = []
        rest: deque[_Request] = deque()
        for request in self._pending:
            (batch if request[3] is model and len(batch) < self.max_batch else rest).append(request)
        self._pending = rest
        return model, batch

    @staticmethod
    def _fail(batch: list[_Request], exc: BaseException) -> None:
        for _, _, fut, _ in batch:
            if not fut.done():
                fut.set_exception(exc)
