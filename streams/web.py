"""The worker's HTTP endpoints, served by faust's web server: health, readiness, metrics, the
fleet's assets as JSON, and the fleet page (``/`` and ``/fleet``: static HTML, no CDN)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

if TYPE_CHECKING:
    from streams.app import Runtime

FLEET_PAGE = resources.files("streams").joinpath("fleet.html").read_text()


def is_ready(app: faust.App, runtime: Runtime) -> bool:
    """Joined the group with partitions assigned, not rebalancing, tables recovered, and no
    batch's outputs unacknowledged for longer than ``PMAINT_READY_SEND_FAILURE_S``."""
    return (
        runtime.assigned_once
        and not app.rebalancing
        and not app.in_recovery
        and runtime.agent.unacknowledged_s() <= runtime.settings.ready_send_failure_s
    )


def register_pages(app: faust.App, runtime: Runtime) -> None:
    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "alive"})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        ok = is_ready(app, runtime)
        body: dict[str, Any] = {
            "ready": ok,
            "assets": len(runtime.fleet),
            "outputs_unacknowledged_s": round(runtime.agent.unacknowledged_s(), 1),
            "partitions": sorted(
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == runtime.settings.topic_telemetry
            )
            if runtime.assigned_once
            else [],
        }
        return web.json(body, status=200 if ok else 503)

    @app.page("/assets")
    async def assets(web: View, request: Request) -> Response:
        states = sorted(runtime.fleet.assets.values(), key=lambda a: a.asset_id)
        with_history = request.query.get("history") == "1"
        return web.json({"assets": [a.summary(history=with_history) for a in states]})

    @app.page("/assets/{asset_id}")
    async def asset(web: View, request: Request, asset_id: str) -> Response:
        state = runtime.fleet.assets.get(asset_id)
        if state is None:
            return web.json({"error": f"unknown asset {asset_id!r} on this worker"}, status=404)
        return web.json(state.summary(history=True))

    @app.page("/", name="fleet_root")
    async def root(web: View, request: Request) -> Response:
        return web.html(FLEET_PAGE)

    @app.page("/fleet")
    async def fleet(web: View, request: Request) -> Response:
        return web.html(FLEET_PAGE)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(
            generate_latest(runtime.metrics.registry), content_type="text/plain; version=0.0.4"
        )
