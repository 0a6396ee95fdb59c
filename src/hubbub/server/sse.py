"""`GET /api/rooms/{room}/events`: a room as Server-Sent Events.

A stream is a hub connection like a WebSocket one: it joins the room through `Hub.join`
(the same join boundary, replay and `since` recovery), receives what the room's fan-out
sends, is buffered and cut off by the same slow-client policy (`framed` is False: see
`AutoFanout.outlet`), gets the server's heartbeat, and
is closed on shutdown. What the events look like is `hubbub.core.sse`'s business;
`serve_stream` is the stream's life, whatever framework carries it; the rest is the
aiohttp adapter (`hubbub.asgi` has its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from aiohttp import web

from hubbub.core import protocol as p
from hubbub.core.codec import Wire
from hubbub.core.grants import Action, Identity, Session, forbidden
from hubbub.core.names import guest_name
from hubbub.core.sse import HEARTBEAT, SseStream, parse_position
from hubbub.engine.fanout import HIGH_WATER, Socket, UnframedSocket
from hubbub.engine.hub import Hub
from hubbub.engine.tasks import spawn
from hubbub.server.api import Api, Call
from hubbub.server.http_api import API, CALL, response
from hubbub.server.logs import client_line

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


class SseSocket(UnframedSocket):
    """The delivery engine's view of one SSE stream (see `hubbub.engine.fanout.Socket`)."""

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
    """`GET /api/rooms/{room}/events` over aiohttp (past `http_api.api_guard`)."""
    api = request.app[API]
    call: Call = request[CALL]
    room, since = opening(api, call)
    refused = api.stream_refusal(call)
    if refused is not None:
        return response(refused)
    await api.hub.admit_room(room)  # refused (max_total_rooms) while an error can be sent
    reply = web.StreamResponse(headers=HEADERS)
    await reply.prepare(request)
    await serve_stream(api.hub, SseSocket(request, reply, SseStream(since)), call.identity,
                       room, since)
    return reply


def opening(api: Api, call: Call) -> tuple[str, p.Position | None]:
    """The room a stream may read and where it resumes, or a `ProtocolError` (400, 403)."""
    room = api.room(call, Action.READ)
    since = parse_position(call.headers.get("Last-Event-ID"), call.query.get("since"),
                           call.query.get("epoch"))
    return room, since


class StreamSocket(Socket, Protocol):
    """What `serve_stream` needs of a stream's socket, beyond the delivery engine's."""

    @property
    def done(self) -> asyncio.Event: ...


async def serve_stream(hub: Hub, socket: StreamSocket, identity: Identity | None, room: str,
                       since: p.Position | None) -> None:
    """One SSE stream from its join to its end, whatever framework carries it: a hub
    connection that joins `room` from `since` and stays until the client goes, the server
    closes it (shutdown, too slow) or its token expires."""
    nick = identity.nick if identity is not None and identity.nick else guest_name()
    conn = hub.connect(hub.fanout.outlet(socket), nick=nick, wire=Wire.JSON)
    if identity is not None:
        conn.session = Session(identity, _no_refresh)
    log.debug("SSE stream %s opened on %r as %s", conn.id, room, conn.nick)
    try:
        await hub.join(conn, p.Join((p.JoinSpec(room, since=since),)))
        expires = identity.expires if identity is not None else None
        while not socket.closing():
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


def _no_refresh(token: str) -> Identity:  # pragma: no cover - a stream sends no requests
    raise forbidden("an SSE stream cannot refresh its token")
