"""The linger wait of a batching sender: wait for a first item, then for company.

A sender that lingers sends fuller batches (one request for many writers) at the cost of at
most ``wait_s`` of latency; a full batch goes at once, and so does a batch someone waits on now
(``hurry``: a flush, after which no company is coming).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def linger(
    wake: asyncio.Event,
    queued: Callable[[], int],
    size: int,
    wait_s: float,
    hurry: Callable[[], bool] = lambda: False,
) -> None:
    """Return once something is queued and then ``size`` items are, ``wait_s`` has passed
    since the first, or ``hurry()`` is true; whoever queues an item or hurries sets ``wake``.

    >>> async def demo() -> int:
    ...     items, wake = [], asyncio.Event()
    ...     async def producer() -> None:
    ...         for i in range(3):
    ...             await asyncio.sleep(0.001)
    ...             items.append(i)
    ...             wake.set()
    ...     task = asyncio.create_task(producer())
    ...     await linger(wake, lambda: len(items), size=3, wait_s=5.0)
    ...     await task
    ...     return len(items)
    >>> asyncio.run(demo())  # full before the linger ran out
    3
    >>> async def flushed() -> float:
    ...     wake = asyncio.Event()
    ...     started = asyncio.get_running_loop().time()
    ...     await linger(wake, lambda: 1, size=3, wait_s=5.0, hurry=lambda: True)
    ...     return asyncio.get_running_loop().time() - started
    >>> asyncio.run(flushed()) < 1.0  # one item, but someone waits on it: no linger
    True
    """
    while not queued():
        wake.clear()
        await wake.wait()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while queued() < size and not hurry() and (rest := deadline - loop.time()) > 0:
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), rest)
        except TimeoutError:
            return
