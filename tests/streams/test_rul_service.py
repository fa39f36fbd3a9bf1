"""The RUL service: one forward pass per call, off the event loop, forecasts in order; a failed
pass fails that call only; start/stop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from models.errors import DataError, PmaintError
from models.rul.artifact import Architecture, ArtifactMetadata
from models.rul.data import fit_normalizer, simulated_runs
from models.rul.serve import RulPrediction, RulPredictor
from streams.core.forecasts import RulForecast
from streams.rul_service import RulService, ServiceClosedError

W, F = 30, 14


class FakePredictor:
    """p50 = the window's first value, so every window can be checked to get its own answer."""

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


def windows(*values: float) -> list[NDArray[np.float32]]:
    return [window(v) for v in values]


def test_one_call_is_one_forward_pass_off_the_loop_in_order() -> None:
    fake = FakePredictor()

    async def main() -> list[RulForecast]:
        async with RulService() as service:
            got = await service.predict_many(fake, windows(*range(1000)))
            assert await service.predict_many(fake, []) == []
            assert service.stats.requests == 1000 and service.stats.batches == 1
        return got

    results = asyncio.run(main())
    assert fake.batch_sizes == [1000]  # no second batching layer: the caller's batch is it
    assert [r.rul for r in results] == [float(i) for i in range(1000)]
    assert all(r.rul_p10 == r.rul - 1 and r.rul_p90 == r.rul + 1 for r in results)
    assert {(r.model_version, r.unit, r.data_source) for r in results} == {
        ("rul-fake", "cycles", "fake")
    }
    assert fake.threads and threading.main_thread().name not in fake.threads


def test_event_loop_keeps_running_during_forward_pass() -> None:
    async def main() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.005)

        async with RulService() as service:
            task = asyncio.create_task(ticker())
            await service.predict_many(FakePredictor(delay_s=0.3), windows(1.0))
            done = True
            await task
        return ticks

    assert asyncio.run(main()) >= 20


def test_failed_pass_fails_its_call_and_the_service_goes_on() -> None:
    fake = FakePredictor(poison=13.0)

    async def main() -> None:
        async with RulService() as service:
            with pytest.raises(RuntimeError, match="model failed"):
                await service.predict_many(fake, windows(1, 2, 13))
            assert service.stats.failed_batches == 1
            ok = await service.predict_many(fake, windows(4, 5))
            assert [r.rul for r in ok] == [4.0, 5.0]
            with pytest.raises(DataError, match=r"1 windows of shape \(29, 14\)"):
                await service.predict_many(fake, [window(1.0), np.zeros((W - 1, F), np.float32)])
            assert service.stats.requests == 2

    asyncio.run(main())


def test_forecasts_that_do_not_fit_the_windows_fail_the_call() -> None:
    class Short(FakePredictor):
        def predict(self, windows: NDArray[np.float32]) -> RulPrediction:
            p = super().predict(windows)
            return RulPrediction(p.p10[1:], p.p50[1:], p.p90[1:])

    async def main() -> None:
        async with RulService() as service:
            with pytest.raises(PmaintError, match="1 forecasts for 2 windows"):
                await service.predict_many(Short(), windows(1, 2))

    asyncio.run(main())


def test_start_stop_lifecycle_waits_for_passes_in_flight() -> None:
    async def main() -> None:
        service = RulService()
        fake = FakePredictor(delay_s=0.2)
        with pytest.raises(ServiceClosedError):
            await service.predict_many(fake, windows(0.0))
        await service.start()
        await service.start()  # idempotent
        task = asyncio.create_task(service.predict_many(fake, windows(1, 2)))
        await asyncio.sleep(0.05)  # the pass is running
        await service.stop()
        assert [r.rul for r in task.result()] == [1.0, 2.0]  # finished before stop returned
        with pytest.raises(ServiceClosedError):
            await service.predict_many(fake, windows(0.0))
        await service.stop()  # idempotent
        async with service:  # restartable
            assert (await service.predict_many(fake, windows(3.0)))[0].rul == 3.0

    asyncio.run(main())


def test_forecasts_equal_direct_predictions() -> None:
    runs = simulated_runs(assets=2, lives=1, seed=3)
    norm = fit_normalizer(runs, ("s2", "s3", "s4"))
    arch = Architecture(3, hidden=8, layers=1)
    predictor = RulPredictor(arch.build(), ArtifactMetadata(norm, W, 125.0, arch, 0, "0"))
    x = np.random.default_rng(0).random((50, W, 3), dtype=np.float32)
    direct = predictor.predict(x)

    async def main() -> list[RulForecast]:
        async with RulService() as service:
            return await service.predict_many(predictor, list(x))

    results = asyncio.run(main())
    for field, want in (("rul", direct.p50), ("rul_p10", direct.p10), ("rul_p90", direct.p90)):
        np.testing.assert_array_equal([getattr(r, field) for r in results], want)
    assert [r.in_domain for r in results] == direct.in_domain.tolist()
    assert {r.model_version for r in results} == {predictor.version}
