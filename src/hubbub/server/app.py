"""The aiohttp application: routes, headers, start-up and shutdown around one Hub."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from hubbub.core.broker import Broker
from hubbub.core.message import now_ms
from hubbub.engine.fanout import make_fanout
from hubbub.engine.hub import Hub
from hubbub.engine.tasks import spawn
from hubbub.server import http_api, keys, sse
from hubbub.server.api import Api
from hubbub.server.auth import Auth
from hubbub.server.guard import GUARD, Guard, request_guard
from hubbub.server.heartbeat import heartbeat
from hubbub.server.metrics import Metrics
from hubbub.server.paths import PREFIX, local_path, owned
from hubbub.server.settings import Settings
from hubbub.server.storage import make_broker
from hubbub.server.websocket import socket_of, websocket_handler

log = logging.getLogger("hubbub.server")

STATIC_DIR = Path(str(resources.files("hubbub.server").joinpath("static")))
RETENTION_INTERVAL = 60.0

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def liveness(hub: Hub, lifecycle: Lifecycle) -> dict[str, object]:
    """`/healthz`'s body, for every adapter: 200 whenever the process answers, saying
    whether it is stopping and whether its broker is reachable (`/readyz` is what load
    balancers should act on), and which process answered (one of `--workers N`)."""
    return {"status": "ok" if lifecycle.running else "stopping",
            "connections": len(hub.connections), "broker": hub.broker.health(),
            "pid": os.getpid()}


def readiness(hub: Hub, lifecycle: Lifecycle) -> str:
    """`/readyz`'s status, for every adapter: "ready" (200), or why not (503)."""
    if not lifecycle.running:
        return "stopping"
    if not lifecycle.ready:
        return "starting"
    if not hub.broker.usable():
        return "store_unavailable"
    return "ready"


@dataclass(slots=True)
class Lifecycle:
    """Where the application is in its life, for `/healthz` and `/readyz`. An object of its
    own: aiohttp deprecates changing an application's keys once it runs (and a mounted
    hubbub is frozen from the moment it is mounted)."""

    running: bool = True
    ready: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
RETENTION = web.AppKey("retention", asyncio.Task[None])


def new_app(settings: Settings) -> web.Application:
    """An application of hubbub's own (`hubbub serve`, or one mounted under a prefix)."""
    return web.Application(
        middlewares=[request_guard, http_api.api_guard],
        # HTTP bodies are bounded like WebSocket frames: a publish is one message either way.
        # (Only the root application's bound counts in aiohttp: a mounted hubbub's bodies
        # are bounded by its host's `client_max_size`, and its messages by `max_text_bytes`.)
        client_max_size=settings.max_frame_bytes,
    )


def install(app: web.Application, settings: Settings, broker: Broker, auth: Auth, *,
            prefix: str = "", shared: bool = False) -> Hub:
    """Put one hub, its routes and its lifecycle into `app`: the one route table and the one
    start-up and shutdown sequence, for `hubbub serve` and for every `hubbub.setup`.

    `app` holds hubbub's routes at its root (`hubbub serve`, or an embedding app with no
    prefix) or is mounted under `prefix` by the caller. `shared`: `app` is an embedding
    app's own, so hubbub's middlewares and headers must act on hubbub's paths only. The
    broker (and its store) is opened on start-up and closed last on shutdown, after every
    socket was closed with 1001.
    """
    hub = Hub(broker, make_fanout(settings.fanout, settings.outbox_max_bytes), settings.limits,
              max_total_rooms=settings.max_total_rooms)
    app[PREFIX] = prefix
    app[keys.SETTINGS] = settings
    app[keys.HUB] = hub
    guard = app[GUARD] = Guard(settings)
    app[keys.METRICS] = Metrics(hub, guard)
    app[keys.AUTH] = auth
    app[http_api.API] = Api(hub, settings, auth, guard, app[keys.METRICS])
    app[LIFECYCLE] = Lifecycle()
    # First, so that it ends last: the broker outlives everything that writes to it.
    app.cleanup_ctx.append(open_broker)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    app.router.add_get("/api/rooms/{room}/events", sse.events)
    app.add_routes(http_api.routes)
    if shared:
        app.middlewares.extend(_only_ours(m) for m in (request_guard, http_api.api_guard))
        app.on_response_prepare.append(_ours_headers)
    else:
        app.on_response_prepare.append(security_headers)
    app.on_shutdown.append(close_websockets)
    app.cleanup_ctx.append(retention)
    app.cleanup_ctx.append(heartbeat)
    app.cleanup_ctx.append(loop_monitor)
    app.on_startup.append(ready)  # after every cleanup context has started
    app.cleanup_ctx.append(guard.running)
    return hub


def make_app(settings: Settings, auth: Auth | None = None) -> web.Application:
    """The whole application `hubbub serve` runs."""
    app = new_app(settings)
    install(app, settings, make_broker(settings), auth or Auth(settings))
    return app


async def open_broker(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the broker is open while the app runs (`StoreOpenError` from the
    app's start-up if it cannot be), and flushed and closed when it stops."""
    broker = app[keys.HUB].broker
    await broker.open()
    try:
        yield
    finally:
        await broker.close()


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # A signal rather than a middleware: a middleware's frame would stay alive as long as
    # each WebSocket connection does (~250 bytes each). A WebSocket's 101 response keeps its
    # headers for the connection's lifetime, and they mean nothing to it.
    if response.status == 101:
        return
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


def _only_ours(middleware: Middleware) -> Middleware:
    """`middleware` for hubbub's own paths; the embedding app's requests pass it untouched."""

    @web.middleware
    def scoped(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if owned(local_path(request)):
            return middleware(request, handler)
        return handler(request)

    return scoped


async def _ours_headers(request: web.Request, response: web.StreamResponse) -> None:
    if owned(local_path(request)):
        await security_headers(request, response)


async def index(request: web.Request) -> web.StreamResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        return web.Response(text="hubbub is running; connect a WebSocket to /ws\n")
    return web.FileResponse(page, headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 whenever the process answers (readiness is `/readyz`)."""
    return web.json_response(liveness(request.app[keys.HUB], request.app[LIFECYCLE]))


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only while the server can take traffic, else 503 saying why."""
    status = readiness(request.app[keys.HUB], request.app[LIFECYCLE])
    return web.json_response({"status": status}, status=200 if status == "ready" else 503)


async def ready(app: web.Application) -> None:
    app[LIFECYCLE].ready = True


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[keys.METRICS].exposition(),
                        content_type="text/plain", charset="utf-8")


async def loop_monitor(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: measure the event loop's lag while the app runs."""
    monitor = app[keys.METRICS].loop_monitor(app[keys.SETTINGS].loop_stall_warning_ms)
    task = spawn(monitor.run(), "loop-lag")
    yield
    task.cancel()


async def close_websockets(app: web.Application) -> None:
    """On shutdown: write what is pending, then close every WebSocket with 1001."""
    app[LIFECYCLE].running = app[LIFECYCLE].ready = False
    await close_connections(app[keys.HUB])


async def close_connections(hub: Hub) -> None:
    """Write what is pending, then close every connection of `hub` with 1001 (SSE streams
    end), whatever adapter made it."""
    hub.fanout.flush()
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
        task = asyncio.create_task(_retention_loop(app[keys.HUB].broker, settings))
    yield
    if task is not None:
        task.cancel()


async def _retention_loop(broker: Broker, settings: Settings) -> None:
    max_age_ms = int(settings.retention_max_age * 1000) if settings.retention_max_age else None
    while True:
        try:
            removed = await broker.trim(max_count=settings.retention_max_count,
                                       max_age_ms=max_age_ms, now_ms=now_ms())
            if removed:
                log.info("retention removed %d message(s)", removed)
        except Exception:
            log.exception("retention pass failed; retrying in %.0f s", RETENTION_INTERVAL)
        await asyncio.sleep(RETENTION_INTERVAL)
