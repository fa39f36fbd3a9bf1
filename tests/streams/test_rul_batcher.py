from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from models.errors import DataError
from models.rul.artifact import Architecture, ArtifactMetadata
from models.rul.data import fit_normalizer, simulated_runs
from models.rul.serve import RulPrediction, RulPredictor
from streams.rul_batcher import BatcherClosedError, RulBatcher, RulForecast

W, F = 30, 14


class FakePredictor:
    """p50 = the window's first value, so every caller can check it got its own answer."""

    version = "rul-fake"
    rul_unit = "cycles"
    data_source = "fake"
    window = W
    n_features = F

    def __init__(self, delay_s: float = 0.0, poison: float | None = None) -> None:
        self.delay_s = delay_s
        self.poison = poison
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()

    def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
        self.threads.add(threading.current_thread().name)
        self.batch_sizes.append(len(windows))
        if self.delay_s:
            time.sleep(self.delay_s)
        first = windows[:, 0, 0].astype(np.float32)
        if self.poison is not None and np.any(first == self.poison):
            raise RuntimeError("model failed on this batch")
        return RulPrediction(first - 1, first, first + 1)


def window(value: float) -> NDArray[np.float32]:
    return np.full((W, F), value, dtype=np.float32)


def test_many_concurrent_callers_form_batches() -> None:
    fake = FakePredictor(delay_s=0.002)

    async def main() -> list[RulForecast]:
        async with RulBatcher(fake, max_batch=64, max_wait_ms=5) as batcher:

            async def caller(i: int) -> RulForecast:
                await asyncio.sleep((i % 7) * 0.0005)
                return await batcher.predict(f"asset-{i}", window(float(i)))

            results = await asyncio.gather(*(caller(i) for i in range(1000)))
            assert batcher.stats.requests == 1000
            assert batcher.stats.batches == len(fake.batch_sizes) < 1000 // 8
            assert batcher.stats.max_batch_seen == max(fake.batch_sizes) <= 64
        return results

    results = asyncio.run(main())
    assert [r.rul for r in results] == [float(i) for i in range(1000)]
    assert all(r.rul_p10 == r.rul - 1 and r.rul_p90 == r.rul + 1 for r in results)
    assert {r.model_version for r in results} == {"rul-fake"}
    assert max(fake.batch_sizes) == 64  # full batches formed
    assert fake.threads
    assert threading.main_thread().name not in fake.threads


def test_lone_request_waits_at_most_max_wait() -> None:
    async def main() -> float:
        async with RulBatcher(FakePredictor(), max_batch=256, max_wait_ms=20) as batcher:
            start = time.perf_counter()
            await batcher.predict("a", window(1.0))
            return time.perf_counter() - start

    assert 0.015 <= asyncio.run(main()) < 0.5


def test_event_loop_keeps_running_during_forward_pass() -> None:
    async def main() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.005)

        async with RulBatcher(FakePredictor(delay_s=0.3), max_wait_ms=1) as batcher:
            task = asyncio.create_task(ticker())
            await batcher.predict("a", window(1.0))
            done = True
            await task
        return ticks

    assert asyncio.run(main()) >= 20


def test_failed_batch_fails_its_callers_and_the_batcher_survives() -> None:
    fake = FakePredictor(poison=13.0)

    async def main() -> None:
        async with RulBatcher(fake, max_batch=8, max_wait_ms=50) as batcher:
            outcome = await asyncio.gather(
                *(batcher.predict(f"a{i}", window(float(i))) for i in (1, 2, 13)),
                return_exceptions=True,
            )
            assert all(isinstance(o, RuntimeError) for o in outcome)
            assert batcher.stats.failed_batches == 1
            ok = await asyncio.gather(*(batcher.predict(f"b{i}", window(float(i))) for i in (4, 5)))
            assert [r.rul for r in ok] == [4.0, 5.0]
            with pytest.raises(DataError, match="window shape"):
                await batcher.predict("bad", np.zeros((W - 1, F), dtype=np.float32))

    asyncio.run(main())


def test_forecasts_that_do_not_fit_the_batch_fail_it() -> None:
    class Short(FakePredictor):
        def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
            p = super().predict(windows)
            return RulPrediction(p.p10[1:], p.p50[1:], p.p90[1:]) if len(windows) > 1 else p

    async def main() -> None:
        async with RulBatcher(Short(), max_batch=2, max_wait_ms=50) as batcher:
            outcome = await asyncio.gather(
                *(batcher.predict(f"a{i}", window(float(i))) for i in (1, 2)),
                return_exceptions=True,
            )
            assert all("1 forecasts for 2 windows" in str(o) for o in outcome)
            assert (await batcher.predict("b", window(3.0))).rul == 3.0

    asyncio.run(main())


def test_cancelled_caller_does_not_break_the_batcher() -> None:
    async def main() -> None:
        async with RulBatcher(FakePredictor(delay_s=0.05), max_wait_ms=1) as batcher:
            gone = asyncio.create_task(batcher.predict("gone", window(1.0)))
            await asyncio.sleep(0.01)
            gone.cancel()
            assert (await batcher.predict("next", window(2.0))).rul == 2.0

    asyncio.run(main())


def test_start_stop_lifecycle_flushes_pending_requests() -> None:
    async def main() -> None:
        batcher = RulBatcher(FakePredictor(delay_s=0.01), max_batch=4, max_wait_ms=1000)
        with pytest.raises(BatcherClosedError):
            await batcher.predict("early", window(0.0))
        await batcher.start()
        await batcher.start()  # idempotent
        tasks = [asyncio.create_task(batcher.predict(f"a{i}", window(float(i)))) for i in range(10)]
        await asyncio.sleep(0)
        start = time.perf_counter()
        await batcher.stop()  # serves the queue without waiting max_wait_ms for company
        assert time.perf_counter() - start < 0.5
        assert [t.result().rul for t in tasks] == [float(i) for i in range(10)]
        with pytest.raises(BatcherClosedError):
            await batcher.predict("late", window(0.0))
        await batcher.stop()  # idempotent
        await batcher.start()  # restartable
        again = asyncio.create_task(batcher.predict("again", window(3.0)))
        await asyncio.sleep(0)
        await batcher.stop()
        assert again.result().rul == 3.0

    asyncio.run(main())


def test_batched_forecasts_equal_direct_predictions() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=3)
    norm = fit_normalizer(runs, ("s2", "s3", "s4"))
    arch = Architecture(3, hidden=8, layers=1)
    predictor = RulPredictor(arch.build(), ArtifactMetadata(norm, W, 125.0, arch, 0, "0"))
    rng = np.random.default_rng(0)
    windows = rng.random((50, W, 3), dtype=np.float32)
    direct = predictor.predict(windows)

    async def main() -> list[RulForecast]:
        async with RulBatcher(predictor, max_batch=16, max_wait_ms=5) as batcher:
            return await asyncio.gather(
                *(batcher.predict(str(i), w) for i, w in enumerate(windows))
            )

    results = asyncio.run(main())
    np.testing.assert_allclose([r.rul for r in results], direct.p50, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose([r.rul_p90 for r in results], direct.p90, rtol=1e-5, atol=1e-4)
