"""`Client`: one logical hubbub.v1 session that survives reconnections.

Tasks and invariants:

- One supervisor task owns the WebSocket: it runs the read loop, and when the connection
  drops it decides (close code + `ReconnectPolicy`) whether to reconnect, reconnects with
  backoff, and rejoins every room with `since` before letting requests through again.
- All client state (rooms, positions, members, nick) is changed only by the read loop, in
  frame order, so that a reply and the events that follow it on the wire are applied in
  the order the server sent them (a `joined` is applied before the first message it lets
  through).
- `position` of a room is the (offset, epoch) of the last message accepted into the event
  queue (or the room's offset at join time). A message at or below it in the same epoch is
  a duplicate and is dropped; the queue survives reconnections, so rejoining with `since =
  position` gives every message exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import orjson
import yarl

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
    RecoveryFailed,
    RoomInfo,
)
from hubbub.client.policy import ReconnectPolicy, describe_close, should_reconnect
from hubbub.core.protocol import SUBPROTOCOL

log = logging.getLogger("hubbub.client")

# History pages can hold history_page_max messages of up to max_frame_bytes each; aiohttp's
# 4 MiB default would turn a legitimate large page into a dropped connection.
MAX_INCOMING_FRAME = 16 * 1024 * 1024
# Refusals that will not change by retrying: bad parameters, token, origin.
_FINAL_STATUSES = frozenset({400, 401, 403, 404})

Apply = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(slots=True)
class _Position:
    offset: int
    epoch: str


@dataclass(slots=True)
class _Room:
    position: _Position
    members: dict[str, Member] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    kind: str
    apply: Apply


def ws_url(url: str) -> yarl.URL:
    """Normalise what a user types: http(s) maps to ws(s), a bare host gets `/ws`."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        raise ConnectionFailed(f"bad URL {url!r}: {exc}") from None
    schemes = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
    if parsed.scheme not in schemes:
        raise ConnectionFailed(
            f"bad URL {url!r}: expected ws://, wss://, http:// or https://"
        )
    if not parsed.host:
        raise ConnectionFailed(f"bad URL {url!r}: no host")
    parsed = parsed.with_scheme(schemes[parsed.scheme])
    if parsed.path in ("", "/"):
        parsed = parsed.with_path("/ws")
    return parsed


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
        self._url = ws_url(url)
        self._nick = nick
        self._initial_rooms = tuple(rooms)
        if reconnect is True:
            self._policy: ReconnectPolicy | None = ReconnectPolicy()
        elif reconnect is False:
            self._policy = None
        else:
            self._policy = reconnect
        self._origin = origin
        self._token = token
        self._headers = dict(headers or {})
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._reconnect_wait = reconnect_wait
        self._heartbeat = heartbeat
        self._session = session
        self._own_session = session is None

        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connection_id: str | None = None
        self._own_ids: set[str] = set()
        self._limits: dict[str, Any] = {}
        self._rooms: dict[str, _Room] = {}
        self._pending: dict[int, _Pending] = {}
        self._refs = itertools.count(1)
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
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            ws, welcome = await self._handshake()
        except BaseException:
            await self._close_session()
            raise
        self._install(ws, welcome)
        reader = asyncio.create_task(self._read_loop(ws), name="hubbub-client-reader")
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
        await self._close_session()

    async def _close_session(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    # -- public state --------------------------------------------------------------------

    @property
    def nick(self) -> str | None:
        """This client's nickname as the server last confirmed it."""
        return self._nick

    @property
    def connection_id(self) -> str | None:
        """The server's id of the current connection (it changes on every reconnection)."""
        return self._connection_id

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def limits(self) -> Mapping[str, Any]:
        """The server's limits from its `welcome` frame."""
        return dict(self._limits)

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms this client is in (and rejoins after a reconnection)."""
        return tuple(self._rooms)

    def presence(self, room: str) -> tuple[Member, ...]:
        """The members of a joined room, kept current from `joined` and presence events.
        Empty for a room this client is not in."""
        state = self._rooms.get(room)
        return tuple(state.members.values()) if state else ()

    def is_own(self, sender: str | None) -> bool:
        return sender is not None and sender in self._own_ids

    # -- requests --------------------------------------------------------------------

    async def join(self, room: str, *more: str) -> None:
        """Join rooms (created on first use). Raises `HubbubError` (`invalid_room`,
        `too_many_rooms`, ...)."""
        await self._request({"type": "join", "rooms": [room, *more]}, self._apply_joined)

    async def leave(self, room: str, *more: str) -> None:
        await self._request({"type": "leave", "rooms": [room, *more]}, self._apply_left)

    async def send(self, room: str, text: str | None = None, data: Any = None) -> Ack:
        """Publish to a joined room; returns once the server has stored the message.

        If the connection drops before the ack, raises `ConnectionLost`: the message may or
        may not have been stored, and the client does not guess by re-sending it.
        """
        frame: dict[str, Any] = {"type": "publish", "room": room}
        if text is not None:
            frame["text"] = text
        if data is not None:
            frame["data"] = data
        result: Ack = await self._request(frame, _parse_ack)
        return result

    async def history(
        self,
        room: str,
        *,
        limit: int | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> HistoryPage:
        """One page of history (default 50, at most the server's `history_page_max`)."""
        frame: dict[str, Any] = {"type": "history", "room": room}
        for name, value in (("limit", limit), ("before", before), ("after", after)):
            if value is not None:
                frame[name] = value

        async def parse(obj: dict[str, Any]) -> HistoryPage:
            return wire.history_page(obj, self._own_ids)

        page: HistoryPage = await self._request(frame, parse)
        return page

    async def set_nick(self, nick: str) -> str:
        """Change nickname; raises `HubbubError` with `invalid_nick` for a bad one."""
        confirmed: str = await self._request({"type": "nick", "nick": nick}, self._apply_nick)
        return confirmed

    async def refresh(self, token: str) -> tuple[str, ...]:
        """Replace the connection's token without reconnecting (same subject and nickname);
        later reconnections use it too. Returns the rooms left because the new token does
        not allow reading them. Raises `HubbubError` (`forbidden`) if it is refused."""

        async def apply(obj: dict[str, Any]) -> tuple[str, ...]:
            left = tuple(str(room) for room in wire.field(obj, "left", list))
            for room in left:
                self._rooms.pop(room, None)
            self._token = token
            return left

        result: tuple[str, ...] = await self._request({"type": "refresh", "token": token}, apply)
        return result

    async def members(self, room: str) -> tuple[Member, ...]:
        """Ask the server for a room's members (`presence()` answers from local state)."""

        async def parse(obj: dict[str, Any]) -> tuple[Member, ...]:
            found = wire.members(obj)
            state = self._rooms.get(room)
            if state is not None:
                state.members = {m.id: m for m in found}
            return found

        result: tuple[Member, ...] = await self._request(
            {"type": "members", "room": room}, parse
        )
        return result

    async def list_rooms(self) -> tuple[RoomInfo, ...]:
        async def parse(obj: dict[str, Any]) -> tuple[RoomInfo, ...]:
            return wire.room_list(obj)

        result: tuple[RoomInfo, ...] = await self._request({"type": "rooms"}, parse)
        return result

    async def ping(self) -> None:
        async def parse(obj: dict[str, Any]) -> None:
            return None

        await self._request({"type": "ping"}, parse)

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

    # -- request plumbing --------------------------------------------------------------

    async def _request(
        self, frame: dict[str, Any], apply: Apply, *, wait_connected: bool = True
    ) -> Any:
        kind = str(frame["type"])
        if wait_connected:
            await self._wait_connected(kind)
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionLost(f"not connected; {kind} was not sent")
        ref = next(self._refs)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(future, kind, apply)
        try:
            try:
                await ws.send_str(orjson.dumps({**frame, "ref": ref}).decode())
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
            self._pending.pop(ref, None)

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
        for pending in list(self._pending.values()):
            if not pending.future.done():
                if pending.kind == "publish" and isinstance(exc, ConnectionLost):
                    detail = ConnectionLost(
                        f"{exc}; the publish was not acknowledged and may or may not "
                        "have been stored",
                        close_code=exc.close_code,
                    )
                    pending.future.set_exception(detail)
                else:
                    pending.future.set_exception(exc)
        self._pending.clear()

    # -- connecting --------------------------------------------------------------------

    async def _handshake(self) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        assert self._session is not None
        query = dict(self._url.query)
        if self._nick is not None:
            query["nick"] = self._nick
        if self._token is not None:
            query["token"] = self._token
        url = self._url.with_query(query)
        headers = dict(self._headers)
        if self._origin is not None:
            headers["Origin"] = self._origin
        where = str(self._url)
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._session.ws_connect(
                    url,
                    protocols=(SUBPROTOCOL,),
                    headers=headers,
                    heartbeat=self._heartbeat,
                    max_msg_size=MAX_INCOMING_FRAME,
                )
        except aiohttp.WSServerHandshakeError as exc:
            message = _refusal(where, exc.status, self._origin)
            raise ConnectionFailed(message, status=exc.status) from exc
        except aiohttp.ClientConnectorError as exc:
            reason = _os_reason(exc)
            raise ConnectionFailed(f"cannot reach {where}: {reason}") from exc
        except TimeoutError:
            raise ConnectionFailed(
                f"no answer from {where} within {self._connect_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConnectionFailed(f"cannot connect to {where}: {exc}") from exc
        try:
            if ws.protocol != SUBPROTOCOL:
                raise ConnectionFailed(
                    f"{where} did not accept the {SUBPROTOCOL} subprotocol; is it a hubbub server?"
                )
            welcome = await self._receive_welcome(ws, where)
        except BaseException:
            await ws.close()
            raise
        return ws, welcome

    async def _receive_welcome(
        self, ws: aiohttp.ClientWebSocketResponse, where: str
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._connect_timeout):
                msg = await ws.receive()
        except TimeoutError:
            raise ConnectionFailed(
                f"{where} sent no welcome within {self._connect_timeout:g} s"
            ) from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionFailed(
                f"{where} closed the connection before its welcome "
                f"({describe_close(ws.close_code)})"
            )
        try:
            obj = wire.decode(msg.data)
            if obj["type"] != "welcome":
                raise ProtocolViolation(f"first frame is {obj['type']!r}, not welcome")
            wire.field(obj, "id", str)
            wire.field(obj, "nick", str)
        except ProtocolViolation as exc:
            raise ConnectionFailed(f"{where} is not speaking {SUBPROTOCOL}: {exc}") from exc
        return obj

    def _install(self, ws: aiohttp.ClientWebSocketResponse, welcome: dict[str, Any]) -> None:
        self._ws = ws
        self._connection_id = welcome["id"]
        self._own_ids.add(welcome["id"])
        self._nick = welcome["nick"]
        limits = welcome.get("limits")
        self._limits = limits if isinstance(limits, dict) else {}

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
                ws, welcome = await self._handshake()
            except ConnectionFailed as exc:
                if exc.status in _FINAL_STATUSES:
                    raise ConnectionLost(f"reconnection refused: {exc}") from exc
                error = str(exc)
                log.info("hubbub reconnect attempt %d failed: %s", attempt, error)
                continue
            self._install(ws, welcome)
            reader = asyncio.create_task(self._read_loop(ws), name="hubbub-client-reader")
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
        if not self._rooms:
            await self._emit(Reconnected(attempt, {}))
            return
        specs = [
            {"room": room, "since": {"offset": s.position.offset, "epoch": s.position.epoch}}
            for room, s in self._rooms.items()
        ]

        async def apply(obj: dict[str, Any]) -> None:
            await self._apply_joined(obj, rejoin_attempt=attempt)

        await self._request({"type": "join", "rooms": specs}, apply, wait_connected=False)

    # -- reading -------------------------------------------------------------------------

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Handle frames until the socket closes; returns the close code (None: none)."""
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        await self._handle(msg.data)
                    except ProtocolViolation as exc:
                        log.error("hubbub server broke the protocol: %s", exc)
                        self._fail_pending(exc)
                        await ws.close(code=1002, message=b"protocol error")
                        return None
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
            lost = ConnectionLost(
                f"connection lost before the server answered ({describe_close(ws.close_code)})",
                close_code=ws.close_code,
            )
            self._fail_pending(lost)

    async def _handle(self, text: str) -> None:
        obj = wire.decode(text)
        kind = obj["type"]
        ref = obj.get("ref")
        if kind == "message":
            await self._on_message(obj)
        elif kind == "presence":
            await self._on_presence(obj)
        elif isinstance(ref, int) and ref in self._pending:
            pending = self._pending.pop(ref)
            await self._resolve(pending, obj)
        elif kind == "error":
            log.warning(
                "hubbub server error not matching a waiting request: %s: %s",
                obj.get("code"),
                obj.get("reason"),
            )
        elif kind in ("joined", "left", "nick_set"):
            # A late reply (its request timed out): the server did it, so keep state true.
            late = {"joined": self._apply_joined, "left": self._apply_left,
                    "nick_set": self._apply_nick}[kind]
            await late(obj)
        else:
            log.debug("hubbub: ignoring %s frame (ref %r)", kind, ref)

    async def _resolve(self, pending: _Pending, obj: dict[str, Any]) -> None:
        if obj["type"] == "error":
            result_exc: BaseException = wire.error(obj)
        else:
            try:
                result = await pending.apply(obj)
            except ProtocolViolation as exc:
                result_exc = exc
            else:
                if not pending.future.done():
                    pending.future.set_result(result)
                return
        if not pending.future.done():
            pending.future.set_exception(result_exc)

    async def _on_message(self, obj: dict[str, Any]) -> None:
        msg = wire.message(obj, self._own_ids)
        state = self._rooms.get(msg.room)
        if state is None:
            log.debug("hubbub: dropping message for room %s, not joined", msg.room)
            return
        pos = state.position
        if msg.epoch == pos.epoch and msg.offset <= pos.offset:
            log.debug("hubbub: dropping duplicate %s@%d", msg.room, msg.offset)
            return
        state.position = _Position(msg.offset, msg.epoch)
        await self._emit(msg)

    async def _on_presence(self, obj: dict[str, Any]) -> None:
        event = wire.presence(obj)
        state = self._rooms.get(event.room)
        if state is None:
            return
        if event.event == "leave":
            state.members.pop(event.member.id, None)
        else:
            state.members[event.member.id] = event.member
        await self._emit(event)

    async def _apply_joined(
        self, obj: dict[str, Any], rejoin_attempt: int | None = None
    ) -> tuple[str, ...]:
        entries = []
        for item in wire.field(obj, "rooms", list):
            if not isinstance(item, dict):
                raise ProtocolViolation("server's joined lists a room that is not an object")
            entries.append(
                (
                    wire.field(item, "room", str),
                    _Position(wire.field(item, "offset", int), wire.field(item, "epoch", str)),
                    item.get("recovered", True) is not False,
                    str(item.get("reason") or "unknown"),
                    {m.id: m for m in wire.members(item)},
                )
            )
        recovered: dict[str, int] = {}
        failed: list[tuple[str, str]] = []
        for room, position, ok, reason, members in entries:
            state = self._rooms.get(room)
            if state is None:
                self._rooms[room] = _Room(position, members)
                continue
            state.members = members
            if not ok:
                failed.append((room, reason))
                state.position = position
            elif rejoin_attempt is not None:
                recovered[room] = max(0, position.offset - state.position.offset)
        if rejoin_attempt is not None:
            await self._emit(Reconnected(rejoin_attempt, recovered))
        for room, reason in failed:
            log.warning("hubbub: could not recover room %s: %s", room, reason)
            await self._emit(RecoveryFailed(room, reason))
        return tuple(room for room, *_ in entries)

    async def _apply_left(self, obj: dict[str, Any]) -> tuple[str, ...]:
        rooms = tuple(str(r) for r in wire.field(obj, "rooms", list))
        for room in rooms:
            self._rooms.pop(room, None)
        return rooms

    async def _apply_nick(self, obj: dict[str, Any]) -> str:
        nick = wire.field(obj, "nick", str)
        self._nick = nick
        me = self._connection_id
        for state in self._rooms.values():
            if me is not None and me in state.members:
                state.members[me] = Member(me, nick)
        return nick


async def _parse_ack(obj: dict[str, Any]) -> Ack:
    return wire.ack(obj)


def _refusal(where: str, status: int, origin: str | None) -> str:
    if status == 403:
        sent = f"origin {origin!r}" if origin else "this origin"
        return f"{where} refused the handshake (403 Forbidden): {sent} is not allowed"
    if status == 401:
        return f"{where} refused the handshake (401 Unauthorized): a valid token is required"
    if status == 400:
        return f"{where} refused the handshake (400 Bad Request): check the nick and token"
    if status == 404:
        return f"{where} has no WebSocket endpoint (404 Not Found)"
    return f"{where} refused the handshake with HTTP {status}"


def connect(url: str, **options: Any) -> Client:
    """`async with connect(url, nick=..., reconnect=...) as chat:`; see `Client`."""
    return Client(url, **options)


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    # aiohttp's strerror is "Connect call failed (...)"; the errno's text says why.
    errno = exc.os_error.errno
    return os.strerror(errno) if errno else str(exc.os_error) or str(exc)
