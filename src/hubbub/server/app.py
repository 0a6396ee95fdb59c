"""The aiohttp application: routes, headers, start-up and shutdown around one Hub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hubbub.config import Settings
from hubbub.core.message import now_ms
from hubbub.core.store import MessageStore
from hubbub.fanout import make_delivery
from hubbub.hub import Hub
from hubbub.server import http_api, keys
from hubbub.server.guard import GUARD, Guard, request_guard
from hubbub.server.heartbeat import heartbeat
from hubbub.server.websocket import socket_of, websocket_handler

log = logging.getLogger("hubbub.server")

STATIC_DIR = Path(str(resources.files("hubbub.server").joinpath("static")))
RETENTION_INTERVAL = 60.0

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
RUNNING = web.AppKey("running", bool)
RETENTION = web.AppKey("retention", asyncio.Task[None])


def make_app(settings: Settings, store: MessageStore) -> web.Application:
    hub = Hub(store, make_delivery(settings.fanout, settings.outbox_max_bytes), settings.limits)
    app = web.Application(
        middlewares=[request_guard, http_api.api_guard],
        # HTTP bodies are bounded like WebSocket frames: a publish is one message either way.
        client_max_size=settings.max_frame_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.HUB] = hub
    app[RUNNING] = True
    guard = app[GUARD] = Guard(settings)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    app.add_routes(http_api.routes)
    app.on_response_prepare.append(security_headers)
    app.on_shutdown.append(close_websockets)
    app.cleanup_ctx.append(retention)
    app.cleanup_ctx.append(heartbeat)
    app.cleanup_ctx.append(guard.running)
    return app


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # A signal rather than a middleware: a middleware's frame would stay alive as long as
    # each WebSocket connection does (~250 bytes each). A WebSocket's 101 response keeps its
    # headers for the connection's lifetime, and they mean nothing to it.
    if response.status == 101:
        return
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


async def index(request: web.Request) -> web.StreamResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        return web.Response(text="hubbub is running; connect a WebSocket to /ws\n")
    return web.FileResponse(page, headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    if not request.app[RUNNING]:
        return web.json_response({"status": "stopping"}, status=503)
    hub = request.app[keys.HUB]
    return web.json_response({"status": "ok", "connections": len(hub.connections)})


async def metrics(request: web.Request) -> web.Response:
    registry = CollectorRegistry()
    registry.register(_HubCollector(request.app[keys.HUB]))
    return web.Response(body=generate_latest(registry),
                        content_type="text/plain", charset="utf-8")


class _HubCollector:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> list[Any]:
        hub = self.hub
        connections = GaugeMetricFamily("hubbub_connections", "Open WebSocket connections")
        connections.add_metric([], len(hub.connections))
        rooms = GaugeMetricFamily("hubbub_rooms", "Rooms with at least one member")
        rooms.add_metric([], len(hub.rooms.names()))
        published = CounterMetricFamily("hubbub_messages_published", "Messages stored")
        published.add_metric([], hub.published)
        delivered = CounterMetricFamily("hubbub_deliveries", "Messages handed to sockets")
        delivered.add_metric([], hub.delivery.deliveries)
        slow = CounterMetricFamily("hubbub_slow_closes", "Connections closed as too slow")
        slow.add_metric([], hub.delivery.slow_closes)
        return [connections, rooms, published, delivered, slow]


async def close_websockets(app: web.Application) -> None:
    """On shutdown: write what is pending, then close every WebSocket with 1001."""
    app[RUNNING] = False
    hub = app[keys.HUB]
    hub.delivery.flush()
    # The hub's registry of connections is the only one: a second would cost every idle
    # connection another dict entry.
    sockets = [socket_of(conn) for conn in hub.connections.values()]
    if sockets:
        log.info("closing %d WebSocket connection(s)", len(sockets))
        await asyncio.gather(*(socket.close_going_away() for socket in sockets),
                             return_exceptions=True)


async def retention(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    task = None
    if settings.retention_max_count or settings.retention_max_age:
        task = asyncio.create_task(_retention_loop(app[keys.HUB].store, settings))
    yield
    if task is not None:
        task.cancel()


async def _retention_loop(store: MessageStore, settings: Settings) -> None:
    max_age_ms = int(settings.retention_max_age * 1000) if settings.retention_max_age else None
    while True:
        try:
            removed = await store.trim(max_count=settings.retention_max_count,
                                       max_age_ms=max_age_ms, now_ms=now_ms())
            if removed:
                log.info("retention removed %d message(s)", removed)
        except Exception:
            log.exception("retention pass failed; retrying in %.0f s", RETENTION_INTERVAL)
        await asyncio.sleep(RETENTION_INTERVAL)
