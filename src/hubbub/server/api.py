"""The HTTP API's request handling, whatever web framework carries it (docs/http-api.md).

`Api` decides everything an API request gets: its rate limit, its credentials, the origin
rule for requests that change something, each endpoint's answer and every error's JSON
body and status. The adapters only move requests and replies: `http_api` for aiohttp,
`hubbub.asgi` for ASGI servers. What a request is to this module is a `Call`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hubbub.core import events
from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.grants import Action, Identity, forbidden
from hubbub.core.names import ROOM_RULE, SERVER_NICK, clean_room
from hubbub.core.store import StoreError
from hubbub.engine.hub import UNAVAILABLE_RETRY_MS, Hub
from hubbub.server.auth import Auth
from hubbub.server.guard import Guard
from hubbub.server.logs import client_line
from hubbub.server.metrics import Metrics
from hubbub.server.security import BadHeader, TokenError, is_loopback, origin_allowed
from hubbub.server.settings import Settings

log = logging.getLogger("hubbub.api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

STATUS = {
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


@dataclass(slots=True)
class Call:
    """One API request as the adapter read it."""

    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    """Case-insensitive, as HTTP headers are."""
    query: Mapping[str, str]
    address: str
    """The client's address, for the per-address rate limit."""
    room: str | None = None
    """The `{room}` of the path, as sent."""
    read: Callable[[], Awaitable[bytes]] | None = None
    """Reads the body (the adapter bounds its size and its time)."""
    authorized: Identity | None = None
    """Who an embedding application's `authorize` said the request is (`mount.HookAuth`)."""
    identity: Identity | None = field(default=None)
    """Set by `Api.admit`: who the credentials say the request is (None: anything goes)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> bytes:
        return orjson.dumps(self.body)


def error(status: int, code: str, reason: str, **headers: str) -> Reply:
    return Reply(status, {"code": code, "reason": reason}, headers)


class Api:
    """The HTTP API of one hub."""

    def __init__(self, hub: Hub, settings: Settings, auth: Auth, guard: Guard,
                 metrics: Metrics) -> None:
        self.hub = hub
        self.settings = settings
        self.auth = auth
        self.guard = guard
        self.metrics = metrics

    # --- in front of every endpoint ------------------------------------------------------

    def admit(self, call: Call) -> Reply | None:
        """The rate limit, the credentials and the origin rule; a refusal, or None with
        `call.identity` set."""
        settings = self.settings
        wait = self.guard.http_rate_of(call.address)
        if wait:
            return error(
                429, ErrorCode.RATE_LIMITED.value,
                f"over {settings.http_rate_per_second:g} API requests per second from your "
                "address (http_rate_per_second); retry after Retry-After seconds",
                **{"Retry-After": str(math.ceil(wait))})
        try:
            call.identity = self.auth.http_identity(call)
            return self._refusal(call)
        except TokenError as exc:
            return error(401, "unauthorized", str(exc),
                         **{"WWW-Authenticate": 'Bearer realm="hubbub"'})
        except BadHeader as exc:
            return error(400, ErrorCode.BAD_REQUEST.value, str(exc))

    def _refusal(self, call: Call) -> Reply | None:
        """What else a state-changing request needs once its credentials are accepted: the
        same origin rule as WebSocket handshakes (a browser on another site cannot publish,
        even with a `no-cors` text/plain fetch), and a key unless the server listens on
        loopback only."""
        if call.method in SAFE_METHODS:
            return None
        settings = self.settings
        if not origin_allowed(call, settings.allowed_origins):
            self.guard.refused_origin += 1
            client_line(log, logging.WARNING, "origin", "refused %s %s from origin %s",
                        call.method, call.path, call.headers.get("Origin"))
            return error(403, "origin_not_allowed",
                         f"requests from origin {call.headers.get('Origin')!r} may not "
                         "change anything here (allowed_origins)")
        if settings.api_key is None and not is_loopback(settings.host):
            return error(403, "api_key_required",
                         f"this server listens on {settings.host}, not loopback only: "
                         "changing anything over HTTP needs an api_key")
        return None

    def failure(self, exc: Exception) -> Reply | None:
        """The JSON error for what an endpoint raised, or None if it is not the API's to
        answer (the adapter re-raises it)."""
        if isinstance(exc, p.ProtocolError):
            return self.refused(exc.code, exc.reason)
        if isinstance(exc, StoreError):
            return self.refused(ErrorCode.UNAVAILABLE, exc.client_reason,
                                **{"Retry-After": str(UNAVAILABLE_RETRY_MS // 1000)})
        return None

    def refused(self, code: ErrorCode, reason: str, **headers: str) -> Reply:
        self.metrics.refused(code)
        return error(STATUS.get(code, 400), code.value, reason, **headers)

    # --- shared by the endpoints --------------------------------------------------------

    def room(self, call: Call, action: Action) -> str:
        """The room of the path, if the request's credentials allow `action` in it."""
        assert call.room is not None
        room = clean_room(call.room)
        if room is None:
            raise p.ProtocolError(ErrorCode.INVALID_ROOM, ROOM_RULE)
        identity = call.identity
        if identity is not None and not identity.grants.allows(action, room):
            raise forbidden(f"the token does not allow {action} in {room!r}")
        return room

    @staticmethod
    def _sender_nick(call: Call, body: dict[str, Any]) -> str:
        """The `from` of an HTTP publish: as given (API key, open API), or the token's
        nickname."""
        identity = call.identity
        if identity is None:
            return p.validate_nick(body["from"]) if "from" in body else SERVER_NICK
        if identity.nick is None:
            raise forbidden("the token names no nickname (nick or sub) to publish as")
        if "from" in body and body["from"] != identity.nick:
            raise forbidden("from must be the token's nickname")
        return identity.nick

    @staticmethod
    def query_int(call: Call, name: str, default: int | None,
                  low: int, high: int | None = None) -> int | None:
        raw = call.query.get(name)
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

    # --- the endpoints -------------------------------------------------------------------

    async def publish(self, call: Call) -> Reply:
        """`POST /api/rooms/{room}/messages`."""
        hub = self.hub
        room = self.room(call, Action.PUBLISH)
        assert call.read is not None
        raw = await call.read()
        self.metrics.http_publish(raw)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise p.ProtocolError(ErrorCode.BAD_JSON, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise p.ProtocolError(ErrorCode.BAD_JSON, "body must be a JSON object")
        p.check_integers(raw)
        text, data = p.validate_body(body.get("text"), body.get("data"), hub.limits)
        nick = self._sender_nick(call, body)
        message_id = None if body.get("id") is None else p.validate_id(body["id"])
        await hub.admit_room(room)
        message = await hub.publish(room, text=text, data=data, nick=nick, id=message_id)
        return Reply(200 if message.duplicate else 201, events.receipt(message))

    async def history(self, call: Call) -> Reply:
        """`GET /api/rooms/{room}/messages`."""
        hub = self.hub
        room = self.room(call, Action.READ)
        limit = self.query_int(call, "limit", p.DEFAULT_HISTORY_LIMIT, 1,
                               hub.limits.history_page_max)
        assert limit is not None
        after = self.query_int(call, "after", None, 0, 2**63 - 1)
        before = self.query_int(call, "before", None, 0, 2**63 - 1)
        return Reply(200, await hub.history(room, after=after, before=before, limit=limit))

    async def rooms(self, call: Call) -> Reply:
        """`GET /api/rooms`."""
        after = call.query.get("after") or None
        limit = self.query_int(call, "limit", p.ROOM_PAGE, 1, p.ROOM_PAGE_MAX)
        assert limit is not None
        entries, more = await self.hub.room_list(after=after, limit=limit, who=call.identity)
        return Reply(200, events.room_page(entries, more))

    async def members(self, call: Call) -> Reply:
        """`GET /api/rooms/{room}/members`."""
        room = self.room(call, Action.PRESENCE)
        return Reply(200, events.members_body(room, await self.hub.members(room)))

    # --- SSE -----------------------------------------------------------------------------

    def stream_refusal(self, call: Call) -> Reply | None:
        """`GET /api/rooms/{room}/events` beyond `admit`: a stream holds a place in the room
        (and announces it), so, as for a WebSocket, a page of another site may not open one."""
        try:
            allowed = origin_allowed(call, self.settings.allowed_origins)
        except BadHeader as exc:
            return error(400, ErrorCode.BAD_REQUEST.value, str(exc))
        if allowed:
            return None
        self.guard.refused_origin += 1
        client_line(log, logging.WARNING, "origin", "refused an SSE stream from origin %s",
                    call.headers.get("Origin"))
        return error(403, "origin_not_allowed",
                     f"streams may not be opened from origin {call.headers.get('Origin')!r}"
                     " (allowed_origins)")


ENDPOINTS: dict[tuple[str, str], Callable[[Api, Call], Awaitable[Reply]]] = {
    ("POST", "/api/rooms/{room}/messages"): Api.publish,
    ("GET", "/api/rooms/{room}/messages"): Api.history,
    ("GET", "/api/rooms"): Api.rooms,
    ("GET", "/api/rooms/{room}/members"): Api.members,
}
"""Every request/reply endpoint by method and route, for the adapters' routers (the SSE
stream, `GET /api/rooms/{room}/events`, is each adapter's own: it does not reply once)."""
