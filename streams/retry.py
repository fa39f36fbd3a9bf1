"""Retry with exponential backoff and jitter: the one retry loop of a worker's outputs.

At-least-once delivery retries a failing send until it goes through (the batch is not acked
before its outputs are): the delay doubles from ``base_s`` up to ``max_s`` and each wait is drawn
in [½, 1] of it, so workers that failed together do not retry together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("pmaint.retry")
T = TypeVar("T")


@dataclass
class Backoff:
    """The delays of one retry loop.

    >>> b = Backoff(base_s=0.1, max_s=0.4)
    >>> [0.5 * cap <= b.next() <= cap for cap in (0.1, 0.2, 0.4, 0.4)]
    [True, True, True, True]
    >>> Backoff().next(at_least=3.0)  # a server's Retry-After wins when longer
    3.0
    """

    base_s: float = 0.1
    max_s: float = 10.0
    attempt: int = 0

    def next(self, at_least: float = 0.0) -> float:
        """The wait before the next try (and count this one)."""
        cap = min(self.max_s, self.base_s * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return max(cap * random.uniform(0.5, 1.0), at_least)


async def retry(
    call: Callable[[], Awaitable[T]],
    what: str,
    *,
    give_up: tuple[type[BaseException], ...] = (),
    attempts: int = 0,
    backoff: Backoff | None = None,
) -> T:
    """``await call()`` until it succeeds; an error in ``give_up`` is raised at once, and with
    ``attempts`` > 0 the last error once that many tries failed (0: retry forever).

    >>> tries = []
    >>> async def flaky() -> str:
    ...     tries.append(1)
    ...     if len(tries) < 3:
    ...         raise OSError("refused")
    ...     return "sent"
    >>> asyncio.run(retry(flaky, "send", backoff=Backoff(base_s=0.001))), len(tries)
    ('sent', 3)
    """
    backoff = backoff or Backoff()
    tries = 0
    while True:
        tries += 1
        try:
            return await call()
        except Exception as exc:
            if isinstance(exc, give_up) or (attempts and tries >= attempts):
                raise
            delay = backoff.next()
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
