"""The HTTP API over aiohttp: `api.Api` decides, this adapter carries (docs/http-api.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from hubbub.server import keys
from hubbub.server.api import ENDPOINTS, Api, Call, Reply
from hubbub.server.guard import GUARD
from hubbub.server.paths import local_path
from hubbub.server.replies import dumps as _dumps
from hubbub.server.replies import error_response, http_error_response

API = web.AppKey("api", Api)
CALL = web.RequestKey("hubbub.call", Call)
"""The request's `api.Call`, set by `api_guard` once `Api.admit` let it through."""

routes = web.RouteTableDef()


def call_of(request: web.Request) -> Call:
    settings = request.app[keys.SETTINGS]

    async def read() -> bytes:
        try:
            async with asyncio.timeout(settings.header_timeout):
                return await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the request body did not arrive within "
                                              "header_timeout") from None

    return Call(method=request.method, path=request.rel_url.path, host=request.host,
                headers=request.headers, query=request.rel_url.query,
                address=request.app[GUARD].address_of(request),
                room=request.match_info.get("room"), read=read,
                authorized=request.get(keys.AUTHORIZED))


def response(reply: Reply) -> web.Response:
    return web.json_response(reply.body, status=reply.status, headers=reply.headers or None,
                             dumps=_dumps)


@web.middleware
def api_guard(request: web.Request, handler: Any) -> Awaitable[web.StreamResponse]:
    """`Api.admit` and JSON errors for everything under /api/.

    Not a coroutine itself: for other paths it hands back the handler's coroutine, so that
    no frame of it stays alive as long as a WebSocket connection does (~300 bytes each).
    The path is judged below hubbub's mount prefix (`paths.local_path`).
    """
    if not local_path(request).startswith("/api/"):
        return handler(request)  # type: ignore[no-any-return]
    return _guarded(request, handler)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = request.app[API]
    call = call_of(request)
    refused = api.admit(call)
    if refused is not None:
        return response(refused)
    request[CALL] = call
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large",
                              f"request body is larger than {api.settings.max_frame_bytes} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            reply = http_error_response(exc)
            if exc.status == 408:  # the rest of the body is not worth waiting for
                reply.force_close()
            return reply
        raise
    except Exception as exc:
        answer = api.failure(exc)
        if answer is None:
            raise
        return response(answer)


def _endpoint(answer: Callable[[Api, Call], Awaitable[Reply]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return response(await answer(request.app[API], request[CALL]))

    handler.__name__ = answer.__name__
    return handler


for (_method, _path), _answer in ENDPOINTS.items():
    routes.route(_method, _path)(_endpoint(_answer))
