"""`Client`: the driver that runs one `hubbub.v1` session over WebSockets, reconnecting.

The session's state and rules (rooms, positions, exactly-once filtering, members, the
request/reply table) live in `session.py`, which does no I/O; opening a connection lives in
`handshake.py`. This module is the asyncio part: it feeds every frame the server sends to
the session, queues the events the session returns for `async for`, settles the futures of
the requests it resolves, and supervises the connection.

- One supervisor task owns the WebSocket: it runs the read loop, and when the connection
  drops it decides (close code + `ReconnectPolicy`) whether to reconnect, reconnects with
  backoff, and rejoins every room with `since` before letting requests through again.
- Only the read loop feeds the session frames, one at a time, and it emits a frame's events
  before it reads the next one, so events reach the queue in wire order. The queue survives
  reconnections, which is what makes the session's exactly-once filtering end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

from hubbub.client import wire
from hubbub.client.errors import (
    ClientError,
    ConnectionFailed,
    ConnectionLost,
    ProtocolViolation,
    RequestTimeout,
)
from hubbub.client.events import (
    Ack,
    Disconnected,
    Event,
    HistoryPage,
    Member,
    Reconnected,
    Reconnecting,
    RoomInfo,
)
from hubbub.client.handshake import FINAL_STATUSES, Handshake, ws_url
from hubbub.client.policy import ReconnectPolicy, describe_close, should_reconnect
from hubbub.client.session import Output, Resolution, Session
from hubbub.core.broker import DEDUPE_WINDOW_S

log = logging.getLogger("hubbub.client")

Waiter = asyncio.Future[Any]

RESEND_WINDOW_S = DEDUPE_WINDOW_S
"""How long after its first send a publish with an id may be sent again: the server
remembers an id this long (`docs/protocol.md`, "Idempotent publish"), so a resend within it
is answered as a duplicate if the first one was stored, and never stored twice."""


class Client:
    """A hubbub.v1 client; create it with `hubbub.client.connect(...)` and `async with`.

    Timeouts (seconds), each bounding one kind of wait so that nothing hangs:

    - `connect_timeout`: one connection attempt, handshake and `welcome` included.
    - `request_timeout`: a reply to one request once it is sent.
    - `reconnect_wait`: how long a request made while disconnected waits for the
      reconnection before it raises `RequestTimeout` (it is never dropped silently).

    `max_queue` bounds the events waiting for `async for`: when it is full the client stops
    reading the socket (replies included) until the consumer catches up, so memory stays
    bounded; a consumer that never iterates will see requests time out once it fills.
    Only one task should iterate a client.
    """

    def __init__(
        self,
        url: str,
        *,
        nick: str | None = None,
        rooms: Iterable[str] = (),
        reconnect: bool | ReconnectPolicy = True,
        origin: str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        reconnect_wait: float = 30.0,
        heartbeat: float | None = 30.0,
        max_queue: int = 10_000,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._handshake = Handshake(
            url=ws_url(url),
            origin=origin,
            headers=dict(headers or {}),
            timeout=connect_timeout,
            heartbeat=heartbeat,
        )
        self._initial_rooms = tuple(rooms)
        if reconnect is True:
            self._policy: ReconnectPolicy | None = ReconnectPolicy()
        elif reconnect is False:
            self._policy = None
        else:
            self._policy = reconnect
        self._request_timeout = request_timeout
        self._reconnect_wait = reconnect_wait
        self._http = session
        self._own_http = session is None

        self._session: Session[Waiter] = Session(nick=nick, token=token)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue(max_queue)
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._terminal: ClientError | None = None
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect (once, no retry: a first failure is reported at once as
        `ConnectionFailed`) and join the rooms given to `connect`."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            ws, welcome = await self._open_websocket()
        except BaseException:
            await self._close_http()
            raise
        reader = self._install(ws, welcome)
        self._supervisor = asyncio.create_task(
            self._supervise(reader), name="hubbub-client-supervisor"
        )
        self._connected.set()
        if self._initial_rooms:
            try:
                await self.join(*self._initial_rooms)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the connection (code 1000) and stop; `async for` then ends normally."""
        if self._closing:
            return
        self._closing = True
        self._connected.clear()
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                await ws.close()
            except (aiohttp.ClientError, OSError):
                log.debug("error while closing the WebSocket", exc_info=True)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._fail_pending(ConnectionLost("the client was closed"))
        self._done.set()
        await self._close_http()

    async def _close_http(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()

    # -- public state --------------------------------------------------------------------

    @property
    def nick(self) -> str | None:
        """This client's nickname as the server last confirmed it."""
        return self._session.nick

    @property
    def connection_id(self) -> str | None:
        """The server's id of the current connection (it changes on every reconnection)."""
        return self._session.connection_id

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def limits(self) -> Mapping[str, Any]:
        """The server's limits from its `welcome` frame."""
        return dict(self._session.limits)

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (and rejoins after a reconnection)."""
        return self._session.rooms

    def presence(self, room: str) -> tuple[Member, ...]:
        """The members of a joined room, kept current from `joined` and presence events.
        Empty for a room this client is not in."""
        return self._session.presence(room)

    # -- requests --------------------------------------------------------------------

    async def join(self, room: str, *more: str) -> None:
        """Join rooms (created on first use). Raises `HubbubError` (`invalid_room`,
        `too_many_rooms`, ...)."""
        await self._request(wire.join_request((room, *more)))

    async def leave(self, room: str, *more: str) -> None:
        await self._request(wire.leave_request((room, *more)))

    async def send(self, room: str, text: str | None = None, data: Any = None, *,
                   id: str | None = None) -> Ack:
        """Publish to a joined room; returns once the server has stored the message.

        `id` (1-64 characters of `A-Z a-z 0-9 _ -`, `ValueError` otherwise) makes the
        publish idempotent: the server stores a given id once per room within its window
        (5 minutes), and answers a repeat with the original's ack (`Ack.duplicate`). So with
        an `id`, if the connection drops before the ack, the client sends the publish again,
        with the same id, once it has reconnected and rejoined (for as long as reconnection
        goes on and the window lasts): it is stored exactly once. Without an `id`, a drop
        before the ack raises `ConnectionLost`: the message may or may not have been stored,
        and the client does not guess by re-sending it.
        """
        request = wire.publish_request(room, text, data, wire.message_id(id))
        if id is None:
            result: Ack = await self._request(request)
            return result
        loop = asyncio.get_running_loop()
        # Past the server's window a resend could be stored a second time.
        give_up = loop.time() + RESEND_WINDOW_S
        while True:
            try:
                result = await self._request(request)
                return result
            except ConnectionLost:
                # Only a drop the client saw and is recovering from: then `_connected` was
                # cleared before the publish was failed (`_read_loop`), and the next try
                # waits for the reconnection (at most `reconnect_wait`).
                if (self._policy is None or self._closing or self._terminal is not None
                        or self._connected.is_set() or loop.time() >= give_up):
                    raise
                log.info("hubbub: publish %s to %s not acknowledged before the connection "
                         "dropped; sending it again after reconnecting", id, room)

    async def history(
        self,
        room: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> HistoryPage:
        """One page of history (default 50, at most the server's `history_page_max`)."""
        request = wire.history_request(room, limit=limit, before=before, after=after)
        page: HistoryPage = await self._request(request)
        return page

    async def set_nick(self, nick: str) -> str:
        """Change nickname; raises `HubbubError` with `invalid_nick` for a bad one."""
        confirmed: str = await self._request(wire.nick_request(nick))
        return confirmed

    async def refresh(self, token: str) -> tuple[str, ...]:
        """Replace the connection's token without reconnecting (same subject and nickname);
        later reconnections use it too. Returns the rooms left because the new token does
        not allow reading them. Raises `HubbubError` (`forbidden`) if it is refused."""
        left: tuple[str, ...] = await self._request(wire.refresh_request(token))
        return left

    async def members(self, room: str) -> tuple[Member, ...]:
        """Ask the server for a room's members (`presence()` answers from local state)."""
        found: tuple[Member, ...] = await self._request(wire.members_request(room))
        return found

    async def list_rooms(self) -> tuple[RoomInfo, ...]:
        found: tuple[RoomInfo, ...] = await self._request(wire.rooms_request())
        return found

    async def ping(self) -> None:
        await self._request(wire.ping_request())

    # -- events ------------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Event:
        """The next event; raises `ConnectionLost` once the client has stopped for good
        (after every event queued before that), or ends after `close()`."""
        while True:
            if not self._events.empty():
                return self._events.get_nowait()
            if self._done.is_set():
                if self._terminal is not None:
                    raise self._terminal
                raise StopAsyncIteration
            getter = asyncio.ensure_future(self._events.get())
            done_waiter = asyncio.ensure_future(self._done.wait())
            try:
                await asyncio.wait({getter, done_waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done_waiter.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()

    async def _emit(self, event: Event) -> None:
        await self._events.put(event)

    async def _apply(self, output: Output[Waiter]) -> None:
        """Do what the session asked for one frame: its events first (they may wait for
        room in the queue), then the request it answered."""
        for event in output.events:
            await self._emit(event)
        if output.resolved is not None:
            _settle(output.resolved)

    # -- request plumbing --------------------------------------------------------------

    async def _request(
        self, request: wire.Request, *, rejoin_attempt: int | None = None
    ) -> Any:
        """Send `request` and wait for the session to resolve it. A rejoin (`rejoin_attempt`
        set) is sent at once: it is what makes the client connected again."""
        kind = str(request["type"])
        if rejoin_attempt is None:
            await self._wait_connected(kind)
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionLost(f"not connected; {kind} was not sent")
        future: Waiter = asyncio.get_running_loop().create_future()
        ref, frame = self._session.send(request, future, rejoin_attempt=rejoin_attempt)
        try:
            try:
                await ws.send_str(frame)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                raise ConnectionLost(f"connection lost while sending {kind}: {exc}") from exc
            try:
                async with asyncio.timeout(self._request_timeout):
                    return await future
            except TimeoutError:
                raise RequestTimeout(
                    f"no reply to {kind} within {self._request_timeout:g} s"
                ) from None
        finally:
            self._session.forget(ref)

    async def _wait_connected(self, kind: str) -> None:
        if self._terminal is not None:
            raise ConnectionLost(str(self._terminal), close_code=self._terminal_code())
        if self._closing:
            raise ConnectionLost(f"the client is closed; {kind} was not sent")
        if self._connected.is_set():
            return
        connected = asyncio.ensure_future(self._connected.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            finished, _ = await asyncio.wait(
                {connected, done},
                timeout=self._reconnect_wait,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            connected.cancel()
            done.cancel()
        if not finished:
            raise RequestTimeout(
                f"not connected: no reconnection within {self._reconnect_wait:g} s; "
                f"{kind} was not sent"
            )
        if not self._connected.is_set():
            await self._wait_connected(kind)  # raises the terminal error

    def _terminal_code(self) -> int | None:
        return self._terminal.close_code if isinstance(self._terminal, ConnectionLost) else None

    def _fail_pending(self, exc: ClientError) -> None:
        for resolution in self._session.fail_all(exc):
            _settle(resolution)

    # -- connecting --------------------------------------------------------------------

    async def _open_websocket(self) -> tuple[aiohttp.ClientWebSocketResponse, wire.Welcome]:
        assert self._http is not None
        return await self._handshake.open(
            self._http, nick=self._session.nick, token=self._session.token
        )

    def _install(
        self, ws: aiohttp.ClientWebSocketResponse, welcome: wire.Welcome
    ) -> asyncio.Task[int | None]:
        """Make `ws` the connection and start reading it."""
        self._ws = ws
        self._session.connected(welcome)
        return asyncio.create_task(self._read_loop(ws), name="hubbub-client-reader")

    # -- supervisor ----------------------------------------------------------------------

    async def _supervise(self, reader: asyncio.Task[int | None]) -> None:
        try:
            while True:
                close_code = await reader
                self._connected.clear()
                if self._closing:
                    return
                why = describe_close(close_code)
                will = self._policy is not None and should_reconnect(close_code)
                log.info("hubbub connection %s; %s", why, "reconnecting" if will else "stopping")
                await self._emit(Disconnected(close_code, why, will))
                if not will:
                    hint = "" if self._policy is None else " (not a close code worth retrying)"
                    raise ConnectionLost(f"server {why}{hint}", close_code=close_code)
                reader = await self._reconnect()
        except ClientError as exc:
            self._terminal = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("hubbub client supervisor failed")
            self._terminal = ConnectionLost(f"client failed: {exc!r}")
        finally:
            self._connected.clear()
            if self._terminal is not None:
                self._fail_pending(self._terminal)
            if not self._closing or self._terminal is not None:
                self._done.set()

    async def _reconnect(self) -> asyncio.Task[int | None]:
        assert self._policy is not None
        error: str | None = None
        attempt = 0
        while True:
            attempt += 1
            if not self._policy.allows(attempt):
                raise ConnectionLost(
                    f"gave up reconnecting after {attempt - 1} attempts; last error: {error}"
                )
            delay = self._policy.delay(attempt)
            await self._emit(Reconnecting(attempt, delay, error))
            await asyncio.sleep(delay)
            try:
                ws, welcome = await self._open_websocket()
            except ConnectionFailed as exc:
                if exc.status in FINAL_STATUSES:
                    raise ConnectionLost(f"reconnection refused: {exc}") from exc
                error = str(exc)
                log.info("hubbub reconnect attempt %d failed: %s", attempt, error)
                continue
            reader = self._install(ws, welcome)
            try:
                await self._rejoin(attempt)
            except ClientError as exc:
                error = f"rejoining rooms failed: {exc}"
                log.warning("hubbub reconnect attempt %d: %s", attempt, error)
                await ws.close()
                await reader
                continue
            self._connected.set()
            return reader

    async def _rejoin(self, attempt: int) -> None:
        request = self._session.rejoin_request()
        if request is None:
            await self._emit(Reconnected(attempt, {}))
            return
        await self._request(request, rejoin_attempt=attempt)

    # -- reading -------------------------------------------------------------------------

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Handle frames until the socket closes; returns the close code (None: none)."""
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        output = self._session.receive(msg.data)
                    except ProtocolViolation as exc:
                        log.error("hubbub server broke the protocol: %s", exc)
                        self._fail_pending(exc)
                        await ws.close(code=1002, message=b"protocol error")
                        return None
                    await self._apply(output)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    log.error("hubbub server sent a binary frame; closing")
                    self._fail_pending(ProtocolViolation("server sent a binary frame"))
                    await ws.close(code=1003, message=b"binary frames are not hubbub.v1")
                    return None
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    log.info("hubbub connection error: %r", msg.data)
                    return None
                else:  # CLOSE, CLOSING, CLOSED
                    code = ws.close_code
                    return None if code == 1006 else code
        finally:
            # Not connected from now on, before any request in flight is failed: whoever
            # retries one (`send` with an id) must wait for the next connection.
            self._connected.clear()
            lost = ConnectionLost(
                f"connection lost before the server answered ({describe_close(ws.close_code)})",
                close_code=ws.close_code,
            )
            self._fail_pending(lost)


def _settle(resolution: Resolution[Waiter]) -> None:
    # The waiter may be gone already: its request timed out or was cancelled.
    future = resolution.waiter
    if future.done():
        return
    if resolution.error is not None:
        future.set_exception(resolution.error)
    else:
        future.set_result(resolution.result)


def connect(url: str, **options: Any) -> Client:
    """`async with connect(url, nick=..., reconnect=...) as chat:`; see `Client`."""
    return Client(url, **options)
