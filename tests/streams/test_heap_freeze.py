"""A worker freezes its long-lived heap as soon as it starts, not a freeze interval later: until
then every full garbage collection scans the libraries' and the app's objects (hundreds of
thousands) and holds the event loop for it."""

from __future__ import annotations

import asyncio
import gc

from streams.app import create_app
from streams.settings import Settings


def frozen_after_start(settings: Settings) -> int:
    """Objects frozen once the worker's start-up tasks have run (what faust runs when the app
    has started)."""
    gc.unfreeze()
    app, _ = create_app(settings)

    async def start() -> None:
        await app.on_started_init_extra_tasks()
        await asyncio.sleep(0.05)

    try:
        asyncio.run(start())
        return gc.get_freeze_count()
    finally:
        gc.unfreeze()


def test_a_worker_freezes_its_heap_when_it_starts() -> None:
    assert frozen_after_start(Settings(gc_freeze_s=600)) > 100_000


def test_a_worker_with_freezing_off_freezes_nothing() -> None:
    assert frozen_after_start(Settings(gc_freeze_s=0)) == 0
