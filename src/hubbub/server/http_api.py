"""The HTTP API: publish to rooms and read history from other programs (docs/http-api.md)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web

from hubbub.config import Settings
from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.grants import Action, Identity, forbidden
from hubbub.core.names import ROOM_RULE, SERVER_NICK, clean_room
from hubbub.core.store import StoreError
from hubbub.hub import Hub
from hubbub.server import keys
from hubbub.server.guard import GUARD, Guard
from hubbub.server.logs import client_line
from hubbub.server.paths import local_path
from hubbub.server.replies import dumps as _dumps
from hubbub.server.replies import error_response, http_error_response
from hubbub.server.security import BadHeader, TokenError, is_loopback, origin_allowed

log = logging.getLogger("hubbub.api")
routes = web.RouteTableDef()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_STATUS = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INVALID_ROOM: 400,
    ErrorCode.INVALID_NICK: 400,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.TOO_MANY_ROOMS: 403,
    ErrorCode.UNAVAILABLE: 503,
}


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _refused(request: web.Request, code: ErrorCode, reason: str) -> web.Response:
    request.app[keys.METRICS].refused(code)
    return error_response(_STATUS.get(code, 400), code.value, reason)


@web.middleware
def api_guard(request: web.Request, handler: Any) -> Awaitable[web.StreamResponse]:
    """API key check and JSON errors for everything under /api/.

    Not a coroutine itself: for other paths it hands back the handler's coroutine, so that
    no frame of it stays alive as long as a WebSocket connection does (~300 bytes each).
    The path is judged below hubbub's mount prefix (`paths.local_path`).
    """
    if not local_path(request).startswith("/api/"):
        return handler(request)  # type: ignore[no-any-return]
    return _guarded(request, handler)


async def _guarded(request: web.Request, handler: Any) -> web.StreamResponse:
    settings: Settings = request.app[keys.SETTINGS]
    guard = request.app[GUARD]
    wait = guard.http_rate(request)
    if wait:
        return error_response(
            429, ErrorCode.RATE_LIMITED.value,
            f"over {settings.http_rate_per_second:g} API requests per second from your address"
            " (http_rate_per_second); retry after Retry-After seconds",
            **{"Retry-After": str(math.ceil(wait))})
    try:
        request[IDENTITY] = request.app[keys.AUTH].http_identity(request)
        refused = _refusal(request, settings, guard)
    except TokenError as exc:
        return error_response(401, "unauthorized", str(exc),
                              **{"WWW-Authenticate": 'Bearer realm="hubbub"'})
    except BadHeader as exc:
        return error_response(400, ErrorCode.BAD_REQUEST.value, str(exc))
    if refused is not None:
        return refused
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large",
                              f"request body is larger than {settings.max_frame_bytes} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            reply = http_error_response(exc)
            if exc.status == 408:  # the rest of the body is not worth waiting for
                reply.force_close()
            return reply
        raise
    except p.ProtocolError as exc:
        return _refused(request, exc.code, exc.reason)
    except StoreError:
        return _refused(request, ErrorCode.UNAVAILABLE,
                        "the message store is unavailable; nothing was stored")
    return response


def _refusal(request: web.Request, settings: Settings, guard: Guard) -> web.Response | None:
    """What else a state-changing request needs once its credentials are accepted: the same
    origin rule as WebSocket handshakes (a browser on another site cannot publish, even with
    a `no-cors` text/plain fetch), and a key unless the server listens on loopback only."""
    if request.method in SAFE_METHODS:
        return None
    if not origin_allowed(request, settings.allowed_origins):
        guard.refused_origin += 1
        client_line(log, logging.WARNING, "origin", "refused %s %s from origin %s",
                    request.method, request.rel_url.path, request.headers.get("Origin"))
        return error_response(403, "origin_not_allowed",
                              f"requests from origin {request.headers.get('Origin')!r} may not "
                              "change anything here (allowed_origins)")
    if settings.api_key is None and not is_loopback(settings.host):
        return error_response(403, "api_key_required",
                              f"this server listens on {settings.host}, not loopback only: "
                              "changing anything over HTTP needs an api_key")
    return None


IDENTITY = "hubbub.identity"
"""The request's `Identity` (None: the API key, or an open API), set by `api_guard`."""


def _room(request: web.Request, action: Action) -> str:
    """The room of the path, if the request's credentials allow `action` in it."""
    room = clean_room(request.match_info["room"])
    if room is None:
        raise p.ProtocolError(ErrorCode.INVALID_ROOM, ROOM_RULE)
    identity: Identity | None = request[IDENTITY]
    if identity is not None and not identity.grants.allows(action, room):
        raise forbidden(f"the token does not allow {action} in {room!r}")
    return room


def _sender_nick(request: web.Request, body: dict[str, Any]) -> str:
    """The `from` of an HTTP publish: as given (API key, open API), or the token's nickname."""
    identity: Identity | None = request[IDENTITY]
    if identity is None:
        return p.validate_nick(body["from"]) if "from" in body else SERVER_NICK
    if identity.nick is None:
        raise forbidden("the token names no nickname (nick or sub) to publish as")
    if "from" in body and body["from"] != identity.nick:
        raise forbidden("from must be the token's nickname")
    return identity.nick


@routes.post("/api/rooms/{room}/messages")
async def publish(request: web.Request) -> web.Response:
    hub: Hub = request.app[keys.HUB]
    room = _room(request, Action.PUBLISH)
    try:
        async with asyncio.timeout(request.app[keys.SETTINGS].header_timeout):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the request body did not arrive within "
                                          "header_timeout") from None
    request.app[keys.METRICS].http_publish(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise p.ProtocolError(ErrorCode.BAD_JSON, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise p.ProtocolError(ErrorCode.BAD_JSON, "body must be a JSON object")
    p.check_integers(raw)
    text, data = p.validate_body(body.get("text"), body.get("data"), hub.limits)
    nick = _sender_nick(request, body)
    await hub.admit_room(room)
    message = await hub.publish(room, text=text, data=data, nick=nick)
    return _ok({"room": room, "id": message.id, "offset": message.offset,
                "epoch": message.epoch, "ts": message.ts}, status=201)


def _query_int(request: web.Request, name: str, default: int | None,
               low: int, high: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise p.ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise p.ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be {bound}")
    return value


@routes.get("/api/rooms/{room}/messages")
async def history(request: web.Request) -> web.Response:
    hub: Hub = request.app[keys.HUB]
    room = _room(request, Action.READ)
    limit = _query_int(request, "limit", p.DEFAULT_HISTORY_LIMIT, 1, hub.limits.history_page_max)
    assert limit is not None
    after = _query_int(request, "after", None, 0, 2**63 - 1)
    before = _query_int(request, "before", None, 0, 2**63 - 1)
    page = await hub.store.read(room, after=after, before=before, limit=limit)
    if page is None:
        raise p.ProtocolError(ErrorCode.ROOM_NOT_FOUND, f"room {room!r} has never been used")
    return _ok({"room": room, "epoch": page.state.epoch, "offset": page.state.offset,
                "messages": [m.to_wire() for m in page.messages], "has_more": page.has_more})


@routes.get("/api/rooms")
async def rooms(request: web.Request) -> web.Response:
    hub: Hub = request.app[keys.HUB]
    after = request.query.get("after") or None
    limit = _query_int(request, "limit", p.ROOM_PAGE, 1, p.ROOM_PAGE_MAX)
    assert limit is not None
    page, more = await hub.room_list(after=after, limit=limit, who=request[IDENTITY])
    return _ok({"rooms": page, "has_more": more})


@routes.get("/api/rooms/{room}/members")
async def members(request: web.Request) -> web.Response:
    hub: Hub = request.app[keys.HUB]
    room = _room(request, Action.PRESENCE)
    return _ok({"room": room, "members": hub.members(room)})
