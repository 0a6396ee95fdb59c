"""`GET /api/rooms/{room}/events`: a room as Server-Sent Events, over aiohttp.

A stream is a hub connection like a WebSocket one: it joins the room through `Hub.join`
(the same join boundary, replay and `since` recovery), receives what the room's fan-out
sends, is buffered and cut off by the same slow-client policy (`framed` is False, so the
delivery engine gives it a bounded queue and a writer), gets the server's heartbeat, and
is closed on shutdown. What the events look like is `hubbub.core.sse`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from hubbub.core import protocol as p
from hubbub.core.grants import Action, Identity, Session, forbidden
from hubbub.core.names import guest_name
from hubbub.core.sse import HEARTBEAT, SseStream, parse_position
from hubbub.fanout import HIGH_WATER
from hubbub.hub import Hub
from hubbub.server import keys
from hubbub.server.guard import GUARD
from hubbub.server.http_api import IDENTITY, _room
from hubbub.server.logs import client_line
from hubbub.server.replies import error_response
from hubbub.server.security import BadHeader, origin_allowed
from hubbub.tasks import spawn

log = logging.getLogger("hubbub.sse")

WATCH_INTERVAL = 1.0
"""Seconds between checks that a stream's client is still there. aiohttp does not tell an
idle streaming handler that its client went away (it no longer cancels handlers), so a
stream looks at its transport; a client gone leaves the room within this."""

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    # nginx buffers proxied responses unless told not to, which would hold events back.
    "X-Accel-Buffering": "no",
}


class SseSocket:
    """The delivery engine's view of one SSE stream (see `hubbub.fanout.Socket`)."""

    __slots__ = ("done", "request", "response", "stream", "transport")

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 stream: SseStream) -> None:
        self.request = request
        self.response = response
        self.stream = stream
        transport = request.transport
        assert transport is not None
        self.transport = transport
        self.done = asyncio.Event()
        """Set when the stream ends: the client left, or the server closed it."""

    @property
    def framed(self) -> bool:
        # Never: a WebSocket frame means nothing here, so the engine hands over text.
        return False

    def write(self, data: bytes) -> None:  # pragma: no cover - only for framed sockets
        raise NotImplementedError

    def offer(self, data: bytes) -> bool:  # pragma: no cover - only for framed sockets
        raise NotImplementedError

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def closing(self) -> bool:
        return self.done.is_set() or self.transport.is_closing()

    async def drain(self) -> None:
        await self.request.writer.drain()

    async def send_text(self, text: str) -> None:
        data = self.stream.translate(text)
        if data is not None and not self.closing():
            await self.response.write(data)

    def beat(self, silent_since: float) -> None:
        """The server's heartbeat: a comment, unless the client is behind anyway. A
        stream's client sends nothing, so silence is no reason to cut it off."""
        if not self.closing() and self.buffered() <= HIGH_WATER:
            spawn(self.response.write(HEARTBEAT), "sse-heartbeat")

    def close_with(self, code: int, reason: str) -> None:
        # SSE has no close codes: the stream ends, and `EventSource` reconnects and
        # resumes from its last event id.
        log.info("closing an SSE stream (%d: %s)", code, reason)
        self.done.set()
        self.transport.close()

    async def close_going_away(self) -> None:
        self.done.set()
        if not self.transport.is_closing():
            await self.response.write_eof()


async def events(request: web.Request) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    hub: Hub = request.app[keys.HUB]
    room = _room(request, Action.READ)
    try:
        allowed = origin_allowed(request, settings.allowed_origins)
    except BadHeader as exc:
        return error_response(400, "bad_request", str(exc))
    if not allowed:
        # A stream holds a place in the room (and announces it): as for a WebSocket, a
        # page of another site may not open one.
        request.app[GUARD].refused_origin += 1
        client_line(log, logging.WARNING, "origin", "refused an SSE stream from origin %s",
                    request.headers.get("Origin"))
        return error_response(403, "origin_not_allowed",
                              f"streams may not be opened from origin "
                              f"{request.headers.get('Origin')!r} (allowed_origins)")
    query = request.rel_url.query
    since = parse_position(request.headers.get("Last-Event-ID"), query.get("since"),
                           query.get("epoch"))
    identity: Identity | None = request[IDENTITY]
    await hub.admit_room(room)  # refused (max_total_rooms) while an error can still be sent
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    socket = SseSocket(request, response, SseStream(since))
    nick = identity.nick if identity is not None and identity.nick else guest_name()
    conn = hub.connect(hub.delivery.outlet(socket), nick=nick, plain=False)
    if identity is not None:
        conn.session = Session(identity, _no_refresh)
    log.debug("SSE stream %s opened on %r as %s", conn.id, room, conn.nick)
    try:
        await hub.join(conn, p.Join((p.JoinSpec(room, since=since),)))
        expires = identity.expires if identity is not None else None
        while not socket.done.is_set():
            if socket.transport.is_closing():
                break
            if expires is not None and time.time() >= expires:
                log.info("SSE stream %s: its token expired", conn.id)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(socket.done.wait(), WATCH_INTERVAL)
    except ConnectionError as exc:
        client_line(log, logging.INFO, "reset", "SSE stream %s lost: %s", conn.id, exc)
    finally:
        socket.done.set()
        await hub.disconnect(conn)
        log.debug("SSE stream %s closed", conn.id)
    return response


def _no_refresh(token: str) -> Identity:  # pragma: no cover - a stream sends no requests
    raise forbidden("an SSE stream cannot refresh its token")
