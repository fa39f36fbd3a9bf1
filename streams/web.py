"""The worker's HTTP endpoints, served by faust's web server: health, readiness, metrics, the
fleet's assets as JSON pages, and the fleet page (``/`` and ``/fleet``: static HTML, no CDN).

With ``PMAINT_WEB_TOKEN`` set, ``/assets*`` and the fleet page want it as a bearer token
(``Authorization: Bearer …``) or once as ``?token=…`` (the fleet page keeps it for its own
requests); ``/health``, ``/ready`` and ``/metrics`` stay open for probes and scrapers.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from models.errors import PmaintError
from streams.fleet_view import FleetView, PageRequest

if TYPE_CHECKING:
    from streams.app import Runtime

FLEET_PAGE = resources.files("streams").joinpath("fleet.html").read_text()
TOKEN_PROMPT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>pmaint · token</title></head><body style="font:14px system-ui;margin:2rem">
<form method="get"><label>Web token <input name="token" type="password" autofocus></label>
<button>Open</button></form></body></html>"""
Handler = Callable[..., Awaitable[Response]]


def token_matches(request: Request, token: bytes) -> bool:
    """Whether the request carries ``token`` (bearer header or ``token`` query parameter),
    compared in constant time."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = request.query.get("token", "")
    return hmac.compare_digest(given.strip().encode(), token)


def protected(token: bytes | None, page: bool = False) -> Callable[[Handler], Handler]:
    """Let a handler answer only requests that carry the token (when one is configured)."""

    def wrap(handler: Handler) -> Handler:
        if token is None:
            return handler

        @functools.wraps(handler)
        async def guarded(web: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            if token_matches(request, token):
                return await handler(web, request, *args, **kwargs)
            challenge = {"WWW-Authenticate": 'Bearer realm="pmaint"'}
            if page:
                return web.html(TOKEN_PROMPT, status=401, headers=challenge)
            denied = {"error": "a valid bearer token is required"}
            return web.json(denied, status=401, headers=challenge)

        return guarded

    return wrap


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
    settings = runtime.settings
    secret = settings.web_token.get_secret_value().encode() if settings.web_token else None
    guard, guard_page = protected(secret), protected(secret, page=True)
    view = FleetView(lambda: list(runtime.fleet.assets.values()))

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
    @guard
    async def assets(web: View, request: Request) -> Response:
        try:
            page = PageRequest.parse(request.query, settings.web_page_max)
        except PmaintError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json(await view.page(page))

    @app.page("/assets/{asset_id}")
    @guard
    async def asset(web: View, request: Request, asset_id: str) -> Response:
        state = runtime.fleet.assets.get(asset_id)
        if state is None:
            return web.json({"error": f"unknown asset {asset_id!r} on this worker"}, status=404)
        return web.json(state.summary(history=True))

    @app.page("/", name="fleet_root")
    @guard_page
    async def root(web: View, request: Request) -> Response:
        return web.html(FLEET_PAGE)

    @app.page("/fleet")
    @guard_page
    async def fleet(web: View, request: Request) -> Response:
        return web.html(FLEET_PAGE)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(
            generate_latest(runtime.metrics.registry), content_type="text/plain; version=0.0.4"
        )
