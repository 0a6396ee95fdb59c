"""`/ws` and SSE streams over ASGI: each connection is a hub connection whose outlet's
socket implements `hubbub.engine.fanout.Socket` on ASGI messages.

An ASGI application never sees the socket: every frame goes through the server's `send`,
one awaited message per frame. So these sockets are not `framed` (see `AutoFanout.outlet`)
and the fan-out's per-pass batching and framing-once stop at `send` (see
docs/performance.md, "ASGI").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from hubbub.asgi.messages import Receive, Scope, Send, headers_of, query_of, reply
from hubbub.core import protocol as p
from hubbub.core.codec import Wire
from hubbub.core.codes import CloseCode, ErrorCode
from hubbub.core.names import guest_name
from hubbub.core.sse import HEARTBEAT, SseStream
from hubbub.engine.fanout import UnframedSocket
from hubbub.engine.tasks import spawn
from hubbub.server.admission import Refused, admit_websocket
from hubbub.server.api import Call
from hubbub.server.auth import TokenExpiry
from hubbub.server.sse import HEADERS, opening, serve_stream
from hubbub.server.websocket import _greet

if TYPE_CHECKING:
    from hubbub.asgi.app import HubbubASGI

log = logging.getLogger("hubbub.asgi")

GOING_AWAY = 1001
MESSAGE_TOO_BIG = 1009
UNSUPPORTED_DATA = 1003


class AsgiSocket:
    """The delivery engine's view of one ASGI WebSocket (see `hubbub.engine.fanout.Socket`)."""

    __slots__ = ("closed", "seen", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.closed = False
        self.seen = time.monotonic()

    @property
    def framed(self) -> bool:
        return False  # frames are the ASGI server's to make

    def write(self, data: bytes) -> None:  # pragma: no cover - only for framed sockets
        raise NotImplementedError

    def offer(self, data: bytes) -> bool:  # pragma: no cover - only for framed sockets
        raise NotImplementedError

    def buffered(self) -> int:
        return 0  # not visible through ASGI: `send` waits for the server's buffer instead

    def closing(self) -> bool:
        return self.closed

    async def drain(self) -> None:
        pass  # every `send` has already waited

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self.send({"type": "websocket.send", "text": text})
        except OSError:  # uvicorn's ClientDisconnected: the read loop will see it too
            self.closed = True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            await self.send({"type": "websocket.close", "code": code,
                             "reason": reason[:120]})

    def close_with(self, code: int, reason: str) -> None:
        spawn(self.close(code, reason), f"close-{code}")

    async def close_going_away(self) -> None:
        await self.close(GOING_AWAY, "server shutting down")

    def beat(self, silent_since: float) -> None:
        """ASGI has no message for a ping: the ASGI server's own keepalive pings the
        connection (uvicorn's `--ws-ping-interval`) and drops one that does not answer."""


async def websocket(hub_app: HubbubASGI, scope: Scope, receive: Receive, send: Send,
                    path: str) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if path != "/ws" or not hub_app.lifecycle.running:
        await send({"type": "websocket.close", "code": 1008 if path != "/ws" else GOING_AWAY})
        return
    settings, hub = hub_app.settings, hub_app.hub
    headers = headers_of(scope)
    request = Call(method="GET", path=scope["path"], host=headers.get("Host", ""),
                   headers=headers, query=query_of(scope), address="")
    try:
        refusal = hub_app.guard.host_refusal(headers.get("Host"))
        if refusal is not None:
            raise Refused(refusal.status, refusal.reason + "\n")
        nick, session = admit_websocket(request, request.query, settings, hub_app.auth,
                                        hub_app.guard)
    except Refused as exc:
        await _refuse_handshake(scope, send, exc)
        return
    wire = Wire.JSON if p.SUBPROTOCOL in scope.get("subprotocols", ()) else Wire.PLAIN
    await send({"type": "websocket.accept",
                "subprotocol": p.SUBPROTOCOL if wire is Wire.JSON else None})
    socket = AsgiSocket(send)
    conn = hub.connect(hub.fanout.outlet(socket), nick=nick or guest_name(), wire=wire)
    conn.session = session
    expiry = TokenExpiry(socket, session) if session is not None else None
    metrics = hub_app.metrics
    metrics.opened += 1
    code: int | None = None
    limit = settings.max_frame_bytes
    try:
        await _greet(hub, conn, settings)
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code")
                    break
                socket.seen = time.monotonic()
                text = message.get("text")
                data = text if text is not None else message.get("bytes") or b""
                if len(data) > limit or (text is not None and len(text.encode()) > limit):
                    # aiohttp refuses such a frame in its reader (`max_msg_size`); here the
                    # ASGI server read it whole first.
                    await socket.close(MESSAGE_TOO_BIG, "message too big")
                    continue
                metrics.ws_frame(data)
                if text is not None:
                    await conn.handle_text(text)
                elif wire is Wire.PLAIN:
                    await socket.close(UNSUPPORTED_DATA, "binary frames are not supported")
                else:
                    await conn.settle()
                    await conn.send(conn.codec.error(ErrorCode.BINARY_NOT_SUPPORTED,
                                                     "send JSON in text frames"))
        finally:
            await conn.settle()
    except Exception:
        log.exception("connection %s failed", conn.id)
        await socket.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        if expiry is not None:
            expiry.cancel()
        socket.closed = True
        await hub.disconnect(conn)
        metrics.connection_closed(code)


async def _refuse_handshake(scope: Scope, send: Send, refused: Refused) -> None:
    """The HTTP answer to a refused handshake, where the ASGI server can send one (the
    `websocket.http.response` extension), else a plain close (which servers turn into 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = refused.text.encode()
        await send({"type": "websocket.http.response.start", "status": refused.status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class AsgiSseSocket(UnframedSocket):
    """The delivery engine's view of one SSE stream over ASGI."""

    __slots__ = ("done", "send", "stream")

    def __init__(self, send: Send, stream: SseStream) -> None:
        self.send = send
        self.stream = stream
        self.done = asyncio.Event()

    def buffered(self) -> int:
        return 0

    def closing(self) -> bool:
        return self.done.is_set()

    async def drain(self) -> None:
        pass

    async def _write(self, data: bytes) -> None:
        try:
            await self.send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:
            self.done.set()

    async def send_text(self, text: str) -> None:
        data = self.stream.translate(text)
        if data is not None and not self.closing():
            await self._write(data)

    def beat(self, silent_since: float) -> None:
        if not self.closing():
            spawn(self._write(HEARTBEAT), "sse-heartbeat")

    def close_with(self, code: int, reason: str) -> None:
        log.info("closing an SSE stream (%d: %s)", code, reason)
        self.done.set()

    async def close_going_away(self) -> None:
        self.done.set()


async def event_stream(hub_app: HubbubASGI, call: Call, receive: Receive, send: Send) -> None:
    """`GET /api/rooms/{room}/events` over ASGI (past `Api.admit`)."""
    api = hub_app.api
    room, since = opening(api, call)
    refused = api.stream_refusal(call)
    if refused is not None:
        await reply(send, refused)
        return
    await api.hub.admit_room(room)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (name.lower().encode(), value.encode()) for name, value in HEADERS.items()]})
    socket = AsgiSseSocket(send, SseStream(since))

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        socket.done.set()

    watcher = spawn(watch(), "sse-disconnect")
    try:
        await serve_stream(api.hub, socket, call.identity, room, since)
    finally:
        watcher.cancel()
    with contextlib.suppress(OSError):  # the client may be gone already
        await send({"type": "http.response.body", "body": b"", "more_body": False})
