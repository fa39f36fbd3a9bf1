"""The worker's faust app: its HTTP server with only pmaint's routes and a timeout, and its
consumer's fetch wait.

faust-streaming mounts its own blueprints next to an app's pages (``/router/``, ``/table/...``
which dumps table values — here, model checkpoints —, ``/stats/``, ``/graph/``, a ``/`` index).
:class:`PmaintWeb` mounts none of them, so only the routes of :mod:`streams.web` answer.

aiohttp closes a connection that has not completed a request ``keepalive_timeout`` seconds
after it opened (or after its last response): a client holding half-open connections
(slowloris) loses each of them after ``web_idle_timeout_s``.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from aiohttp.web import AppRunner
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.web.drivers.aiohttp import Web


class PmaintWeb(Web):
    """faust's aiohttp web driver without built-in routes, with an idle/header timeout."""

    def __init__(self, app: faust.App, *, idle_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runner = AppRunner(self.web_app, access_log=None, keepalive_timeout=idle_timeout_s)

    def _enabled_blueprints(self) -> list[tuple[str, Any]]:
        return []


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust fixes 1500 ms; a broker that does not answer a waiting fetch when data arrives
        # (Tansu 0.6) then delays every record by up to that long
        consumer._fetch_max_wait_ms = cast(WorkerApp, self.app).fetch_max_wait_ms
        return consumer


class _Consumer(Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """A faust app whose web server is :class:`PmaintWeb` and whose consumer waits at most
    ``fetch_max_wait_ms`` for a fetch to fill."""

    def __init__(
        self, *args: Any, web_idle_timeout_s: float, fetch_max_wait_ms: int = 1500, **kwargs: Any
    ) -> None:
        self.web_idle_timeout_s = web_idle_timeout_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Web:
        return PmaintWeb(self, idle_timeout_s=self.web_idle_timeout_s)
