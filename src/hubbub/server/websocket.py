"""`GET /ws`: the WebSocket endpoint for both the plain-text and the JSON protocol."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from aiohttp import WSCloseCode, WSMsgType, web

from hubbub import __version__
from hubbub.core import events
from hubbub.core import protocol as p
from hubbub.core.codec import LOBBY, Wire
from hubbub.core.codes import CloseCode, ErrorCode
from hubbub.core.grants import Session
from hubbub.core.names import guest_name
from hubbub.core.ratelimit import TokenBucket
from hubbub.core.store import StoreError
from hubbub.engine.fanout import HIGH_WATER, Socket
from hubbub.engine.hub import Connection, Hub
from hubbub.engine.tasks import spawn
from hubbub.server import keys
from hubbub.server.admission import Refused, admit_websocket
from hubbub.server.auth import TokenExpiry
from hubbub.server.guard import GUARD
from hubbub.server.logs import client_line
from hubbub.server.settings import Settings

log = logging.getLogger("hubbub.ws")

PROTOCOLS = (p.SUBPROTOCOL,)
"""The subprotocols offered: one tuple shared by every connection's response, which keeps it."""

PING_FRAME = b"\x89\x00"
"""An unmasked, empty ping: FIN + opcode 9, no payload."""

_CONTROL = frozenset({WSMsgType.PING, WSMsgType.PONG})

CLOSE_GRACE = 1.0
"""Seconds a close frame the server decided on (a too-slow client, say) may take before the
connection is aborted."""


class AiohttpSocket:
    """The delivery engine's view of one aiohttp WebSocket (see `hubbub.engine.fanout.Socket`)."""

    __slots__ = ("framed", "request", "seen", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        transport = request.transport
        assert transport is not None
        self.transport = transport
        # Shared pre-framed bytes are only valid without per-connection compression.
        self.framed = not ws.compress
        self.seen = time.monotonic()
        """When the client last sent anything: a frame, a pong (see `heartbeat.py`)."""

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def offer(self, data: bytes) -> bool:
        # The fan-out's hot path: one call per socket per loop pass, so no helper calls.
        transport = self.transport
        if transport.is_closing() or self.ws.closed:
            return True
        if transport.get_write_buffer_size() > HIGH_WATER:
            return False
        transport.write(data)
        return True

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def closing(self) -> bool:
        return self.transport.is_closing() or self.ws.closed

    async def drain(self) -> None:
        await self.request.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def close_going_away(self) -> None:
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    def beat(self, silent_since: float) -> None:
        """One heartbeat round: ping a client that sent anything since `silent_since` (the
        previous round, when it was pinged), cut off one that did not."""
        transport = self.transport
        if transport.is_closing():
            return
        if self.seen < silent_since:
            log.info("dropping a connection that answered no ping for a heartbeat interval")
            transport.abort()
            return
        # A control frame may go between any two frames, and every frame is written whole,
        # so the ping needs no place in the outbox.
        transport.write(PING_FRAME)

    def close_with(self, code: int, reason: str) -> None:
        spawn(self.close_or_abort(code, reason.encode()), f"close-{code}")

    async def close_or_abort(self, code: int, message: bytes) -> None:
        """Close with `code`; abort the connection if that takes over `CLOSE_GRACE` (a
        client that does not read, or floods, would keep the close waiting)."""
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message), CLOSE_GRACE)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if not self.transport.is_closing():
                self.transport.abort()


def socket_of(conn: Connection) -> AiohttpSocket:
    """The aiohttp socket behind a connection (every connection this server makes has one)."""
    return cast(AiohttpSocket, conn.outlet.socket)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    # This coroutine's frame lives as long as the connection, so what is needed only before
    # the handshake is in `_admit` (see "Idle connections" in docs/performance.md).
    settings: Settings = request.app[keys.SETTINGS]
    hub: Hub = request.app[keys.HUB]
    metrics = request.app[keys.METRICS]
    nick, session = _admit(request, settings)
    ws = web.WebSocketResponse(
        protocols=PROTOCOLS,
        # Pings and pongs are ours (`heartbeat.py`): one timer for every connection instead
        # of aiohttp's timer per connection.
        heartbeat=None,
        autoping=False,
        max_msg_size=settings.max_frame_bytes,
        compress=settings.compression,
    )
    await ws.prepare(request)
    # The wire format is chosen here, once: a client that asked for no subprotocol (or
    # one we do not speak) gets the plain-text protocol.
    wire = Wire.JSON if ws.ws_protocol == p.SUBPROTOCOL else Wire.PLAIN
    socket = AiohttpSocket(ws, request)
    conn = hub.connect(hub.fanout.outlet(cast(Socket, socket)), nick=nick or guest_name(),
                       wire=wire)
    metrics.opened += 1
    conn.session = session
    expiry = TokenExpiry(cast(Socket, socket), session) if session is not None else None
    # Made on the first ping only: most clients never send one, and a local of this frame
    # costs nothing until it is set.
    pings: TokenBucket | None = None
    log.debug("connection %s opened (%s) as %s", conn.id, wire, conn.nick)
    try:
        await _greet(hub, conn, settings)
        # The read loop is here rather than in a coroutine of its own, which would be one
        # more frame alive per connection (~250 bytes). `handle_text` returns before a
        # publish is stored: publishes are pipelined (see `Connection` and `MAX_IN_FLIGHT`).
        try:
            async for msg in ws:
                socket.seen = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    metrics.ws_frame(msg.data)
                    await conn.handle_text(msg.data)
                elif msg.type in _CONTROL:
                    # Pings, and pongs nobody asked for (one per heartbeat was), share a
                    # bucket: a flood of either costs the loop the same.
                    if pings is None:
                        pings = TokenBucket(settings.ping_rate_per_second,
                                            settings.ping_rate_burst, socket.seen)
                    if pings.take(socket.seen):
                        await _too_many_pings(request, socket, conn)
                        break
                    if msg.type == WSMsgType.PING:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    metrics.ws_frame(msg.data)
                    if wire is Wire.PLAIN:
                        await ws.close(code=WSCloseCode.UNSUPPORTED_DATA,
                                       message=b"binary frames are not supported")
                        break
                    await conn.settle()  # the error goes out after the replies before it
                    await conn.send(conn.codec.error(ErrorCode.BINARY_NOT_SUPPORTED,
                                                     "send JSON in text frames"))
                elif msg.type == WSMsgType.ERROR:
                    log.info("connection %s: %s", conn.id, ws.exception())
        finally:
            # Publishes read before the close are still stored and delivered to the room
            # before the connection leaves it.
            await conn.settle()
    except ConnectionError as exc:  # the client reset the connection: ordinary, one line
        client_line(log, logging.INFO, "reset", "connection %s lost: %s", conn.id, exc)
    except Exception:
        log.exception("connection %s failed", conn.id)
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
    finally:
        if expiry is not None:
            expiry.cancel()
        await hub.disconnect(conn)
        metrics.connection_closed(ws.close_code)
        log.debug("connection %s closed with %s", conn.id, ws.close_code)
    return ws


async def _too_many_pings(request: web.Request, socket: AiohttpSocket,
                          conn: Connection) -> None:
    settings: Settings = request.app[keys.SETTINGS]
    request.app[GUARD].ping_rate_closes += 1
    client_line(log, logging.INFO, "pings",
                "connection %s closed with 4029: over %g pings per second (ping_rate_per_second)",
                conn.id, settings.ping_rate_per_second)
    await socket.close_or_abort(CloseCode.RATE_LIMITED, b"too many pings")


def _admit(request: web.Request, settings: Settings) -> tuple[str | None, Session | None]:
    """`admission.admit_websocket`, its refusals as HTTP errors."""
    try:
        # Read through `rel_url`, whose cache has room to spare: one more entry in the
        # request's own cache (`request.query`) makes it grow by ~200 bytes for the life of
        # the connection.
        return admit_websocket(request, request.rel_url.query, settings,
                               request.app[keys.AUTH], request.app[GUARD])
    except Refused as exc:
        raise _REFUSALS[exc.status](text=exc.text) from None


_REFUSALS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden}


async def _greet(hub: Hub, conn: Connection, settings: Settings) -> None:
    """A JSON client is welcomed; a plain-text client is joined to the lobby, with its
    history, which is all the greeting the plain-text protocol has."""
    if conn.codec.wire is Wire.PLAIN:
        try:
            await hub.join(conn, p.Join((p.JoinSpec(LOBBY,
                                                    history=settings.plain_history or None),)))
        except p.ProtocolError as exc:  # the token does not allow reading the lobby
            log.info("connection %s: %s", conn.id, exc.reason)
            conn.outlet.socket.close_with(CloseCode.UNAUTHORIZED, exc.reason[:120])
        except StoreError as exc:  # the broker is unreachable: it logs that once itself
            log.debug("connection %s: lobby join refused: %s", conn.id, exc)
            conn.outlet.socket.close_with(CloseCode.INTERNAL_ERROR, "unavailable; reconnect")
        return
    await conn.send(conn.codec.event(events.welcome(
        protocol=p.SUBPROTOCOL, server=f"hubbub/{__version__}", conn_id=conn.id,
        nick=conn.nick, heartbeat=_seconds(settings.heartbeat), limits=hub.limits,
    )))


def _seconds(value: float) -> int | float:
    """Whole seconds as an integer on the wire (`30`, not `30.0`), as the protocol shows."""
    return int(value) if value.is_integer() else value
