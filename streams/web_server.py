"""The worker's HTTP server: faust's aiohttp server with only pmaint's routes and a timeout.

faust-streaming mounts its own blueprints next to an app's pages (``/router/``, ``/table/...``
which dumps table values — here, model checkpoints —, ``/stats/``, ``/graph/``, a ``/`` index).
:class:`PmaintWeb` mounts none of them, so only the routes of :mod:`streams.web` answer.

aiohttp closes a connection that has not completed a request ``keepalive_timeout`` seconds
after it opened (or after its last response): a client holding half-open connections
(slowloris) loses each of them after ``web_idle_timeout_s``.
"""

from __future__ import annotations

from typing import Any

import faust
from aiohttp.web import AppRunner
from faust.web.drivers.aiohttp import Web


class PmaintWeb(Web):
    """faust's aiohttp web driver without built-in routes, with an idle/header timeout."""

    def __init__(self, app: faust.App, *, idle_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runner = AppRunner(self.web_app, access_log=None, keepalive_timeout=idle_timeout_s)

    def _enabled_blueprints(self) -> list[tuple[str, Any]]:
        return []


class WorkerApp(faust.App):
    """A faust app whose web server is :class:`PmaintWeb`."""

    def __init__(self, *args: Any, web_idle_timeout_s: float, **kwargs: Any) -> None:
        self.web_idle_timeout_s = web_idle_timeout_s
        super().__init__(*args, **kwargs)

    def _new_web(self) -> Web:
        return PmaintWeb(self, idle_timeout_s=self.web_idle_timeout_s)
