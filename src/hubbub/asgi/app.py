"""hubbub as an ASGI application: the same Hub, store, auth, API and page as `hubbub serve`,
carried by an ASGI server (uvicorn) instead of aiohttp (docs/embedding.md).

This module is an adapter only: the HTTP API is `server.api.Api`, the WebSocket admission
`server.admission`, an SSE stream's life `server.sse.serve_stream`, the events' shapes
`core.sse`; what is here moves ASGI messages to and from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import mimetypes
import re
from collections.abc import AsyncIterator
from pathlib import Path

from multidict import CIMultiDictProxy

from hubbub.asgi.messages import (
    Receive,
    Scope,
    Send,
    address_of,
    headers_of,
    local_path,
    query_of,
    reply,
    respond,
)
from hubbub.asgi.sockets import event_stream, websocket
from hubbub.core.broker import Broker
from hubbub.engine.fanout import make_fanout
from hubbub.engine.hub import Hub
from hubbub.engine.tasks import spawn
from hubbub.server.api import ENDPOINTS, Api, Call, Reply, error
from hubbub.server.app import (
    STATIC_DIR,
    Lifecycle,
    _retention_loop,
    close_connections,
    liveness,
    readiness,
)
from hubbub.server.auth import Auth
from hubbub.server.guard import Guard
from hubbub.server.heartbeat import _beat
from hubbub.server.metrics import Metrics
from hubbub.server.settings import Settings, from_code, load, validate
from hubbub.server.storage import make_broker

log = logging.getLogger("hubbub.asgi")


_ROUTES = [(method, re.compile("^" + re.sub(r"\{room\}", "(?P<room>[^/]+)", path) + "$"),
            answer) for (method, path), answer in ENDPOINTS.items()]
EVENTS = re.compile(r"^/api/rooms/(?P<room>[^/]+)/events$")


class BodyTooLarge(Exception):
    pass


class HubbubASGI:
    """One hub served over ASGI. Call it as an ASGI application; `lifespan()` is its start
    and stop, run by the ASGI lifespan protocol when it is the server's application, or
    entered by the host application's own lifespan when it is mounted (Starlette and
    FastAPI do not forward lifespan events to mounted applications)."""

    def __init__(self, settings: Settings, broker: Broker | None = None) -> None:
        self.settings = settings
        self.hub = Hub(broker or make_broker(settings),
                       make_fanout(settings.fanout, settings.outbox_max_bytes),
                       settings.limits, max_total_rooms=settings.max_total_rooms)
        self.auth = Auth(settings)
        self.guard = Guard(settings)
        self.metrics = Metrics(self.hub, self.guard)
        self.api = Api(self.hub, settings, self.auth, self.guard, self.metrics)
        self.lifecycle = Lifecycle()
        self._started = False

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[HubbubASGI]:
        """Open the broker and start the heartbeat and retention; on exit close every
        connection with 1001 (SSE streams end), then flush and close the broker."""
        broker = self.hub.broker
        await broker.open()
        settings = self.settings
        tasks = []
        if settings.heartbeat:
            tasks.append(spawn(_beat(self.hub, settings.heartbeat), "heartbeat"))
        if settings.retention_max_count or settings.retention_max_age:
            tasks.append(spawn(_retention_loop(broker, settings), "retention"))
        self._started = self.lifecycle.ready = True
        try:
            yield self
        finally:
            self.lifecycle.running = self.lifecycle.ready = False
            await close_connections(self.hub)
            for task in tasks:
                task.cancel()
            await broker.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await websocket(self, scope, receive, send, local_path(scope))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.lifespan())
            except Exception as exc:
                log.exception("hubbub could not start")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    # --- HTTP ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = headers_of(scope)
        refusal = self.guard.host_refusal(headers.get("Host"))
        path = local_path(scope)
        if refusal is not None:
            retry = {} if refusal.retry_after is None else {"Retry-After": str(refusal.retry_after)}
            if path.startswith("/api/"):
                await reply(send, error(refusal.status, refusal.code, refusal.reason, **retry))
            else:
                await respond(send, refusal.status, (refusal.reason + "\n").encode(),
                              "text/plain; charset=utf-8")
            return
        if not self._started:
            await respond(send, 503, b"hubbub has not started: run its lifespan "
                          b"(see docs/embedding.md)\n", "text/plain; charset=utf-8")
            return
        if path.startswith("/api/"):
            await self._api(scope, receive, send, path, headers)
        elif path in ("", "/"):
            if path == "":  # mounted at /chat and asked for /chat: the page's links need /chat/
                await respond(send, 308, b"", "text/plain",
                              ((b"location", (scope.get("root_path", "") + "/").encode()),))
            else:
                await self._file(send, STATIC_DIR / "index.html", no_cache=True)
        elif path.startswith("/static/"):
            await self._static(send, path.removeprefix("/static/"))
        elif path == "/healthz":
            await reply(send, Reply(200, liveness(self.hub, self.lifecycle)))
        elif path == "/readyz":
            await reply(send, self._readiness())
        elif path == "/metrics":
            await respond(send, 200, self.metrics.exposition(), "text/plain; charset=utf-8")
        else:
            await respond(send, 404, b"404: Not Found", "text/plain; charset=utf-8")

    def _readiness(self) -> Reply:
        status = readiness(self.hub, self.lifecycle)
        return Reply(200 if status == "ready" else 503, {"status": status})

    async def _api(self, scope: Scope, receive: Receive, send: Send, path: str,
                   headers: CIMultiDictProxy[str]) -> None:
        method = scope["method"]
        call = Call(method=method, path=scope["path"], host=headers.get("Host", ""),
                    headers=headers, query=query_of(scope), address=address_of(scope),
                    read=lambda: self._body(receive))
        events = EVENTS.match(path)
        answer = None
        allowed = False
        for route_method, pattern, route_answer in _ROUTES:
            found = pattern.match(path)
            if found is not None:
                allowed = True
                if route_method == method:
                    call.room = found.groupdict().get("room")
                    answer = route_answer
                    break
        if events is not None and method == "GET":
            call.room = events["room"]
        elif answer is None:
            status, code, reason = ((405, "method_not_allowed", "Method Not Allowed")
                                    if allowed or events else (404, "not_found", "Not Found"))
            await reply(send, error(status, code, reason))
            return
        refused = self.api.admit(call)
        if refused is not None:
            await reply(send, refused)
            return
        try:
            if answer is None:
                await event_stream(self, call, receive, send)
                return
            result = await answer(self.api, call)
        except BodyTooLarge:
            result = error(413, "body_too_large",
                           f"request body is larger than {self.settings.max_frame_bytes} bytes")
        except TimeoutError:
            result = error(408, "request_timeout",
                           "the request body did not arrive within header_timeout")
        except Exception as exc:
            answered = self.api.failure(exc)
            if answered is None:
                raise
            result = answered
        await reply(send, result)

    async def _body(self, receive: Receive) -> bytes:
        """The request body, bounded like a WebSocket frame and in time like its headers."""
        limit = self.settings.max_frame_bytes
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.settings.header_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionResetError("the client went away")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

    async def _static(self, send: Send, name: str) -> None:
        target = _static_file(name)
        if target is None:
            await respond(send, 404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        await self._file(send, target)

    async def _file(self, send: Send, path: Path, *, no_cache: bool = False) -> None:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith(("javascript", "svg+xml")):
            kind += "; charset=utf-8"
        extra = ((b"cache-control", b"no-cache"),) if no_cache else ()
        await respond(send, 200, _contents(path), kind, extra)


def _static_file(name: str) -> Path | None:
    """The file under `static/` that `name` names, if it is one."""
    try:
        target = (STATIC_DIR / name).resolve()
        found = target.is_relative_to(STATIC_DIR.resolve()) and target.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        return None
    return target if found else None


@functools.lru_cache(maxsize=64)
def _contents(path: Path) -> bytes:
    # The page's few files, installed with the package: read once, then from memory.
    return path.read_bytes()


def create_app(settings: Settings | None = None) -> HubbubASGI:
    """The ASGI application over one hub; `settings` are checked as `hubbub serve` checks
    its flags (`ConfigError`)."""
    return HubbubASGI(validate(settings) if settings is not None else from_code())


def from_environment() -> HubbubASGI:
    """For `uvicorn --factory hubbub.asgi:from_environment`: settings from `HUBBUB_*`
    variables and `HUBBUB_CONFIG`, as `hubbub serve` reads them."""
    return HubbubASGI(load())
