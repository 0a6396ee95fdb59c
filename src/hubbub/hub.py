"""The Hub: connections, rooms, publishing and recovery, independent of any web framework.

One message's path: `Hub.publish` stores it (the store assigns its offset), then
`_deliver` hands one JSON payload to the room's JSON members and one plain-text payload
to its plain-text members through the delivery engine, and buffers it for members that
are still replaying history. The aiohttp adapter (`hubbub.server`) only moves frames
between sockets and `Connection.handle_text`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hubbub.core import grants
from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.grants import Action, Session
from hubbub.core.limits import Limits
from hubbub.core.message import Draft, Message
from hubbub.core.ratelimit import TokenBucket
from hubbub.core.rooms import Room, Rooms
from hubbub.core.store import MessageStore, RoomState, StoreError
from hubbub.fanout import Delivery, Outlet, Payload
from hubbub.tasks import start_eagerly

log = logging.getLogger("hubbub.hub")

LOBBY = "lobby"
LOGGED_REFUSALS = 10
"""Refusals logged per connection before only every 100th is: a client sending garbage in
a loop must not be able to flood the log."""

RECOVERY_MAX = 10_000
"""Most messages replayed to one joining member; further back counts as truncated, so a
reconnecting client reloads instead of the server buffering an unbounded backlog."""


def new_connection_id() -> str:
    return secrets.token_hex(6)


MAX_IN_FLIGHT = 32
"""Publishes one connection may have waiting for the store at once. Pipelined publishes
let a group commit gather up to this many appends per connection instead of one; at the
bound the connection's next frame is not read until its oldest publish is answered, so a
flooding client is slowed down by TCP and what one connection holds stays bounded."""

_answer_after: ContextVar[tuple[Connection, asyncio.Task[None]] | None] = ContextVar(
    "_answer_after", default=None)
"""Inside a pipelined publish's task: its connection and the publish sent just before it,
whose reply must go out first."""


class Connection:
    """One client, JSON or plain text, as the hub sees it.

    Publishes are pipelined: each valid one (a JSON `publish` to a joined room, or a line
    from a plain-text client in the lobby) starts at once, without waiting for the ones
    before it, and `handle_text` returns so that the next frame can be read. Order is kept
    by these invariants:

    - Appends reach the store in frame order: a publish runs at once up to its first
      suspension, before `handle_text` returns, and `Hub.publish_from` does not suspend
      before `store.append` has taken its place in the store's queue (the memory store
      never suspends, so such a publish is complete when `handle_text` returns; the SQLite
      store enqueues, then waits for its commit in a task).
    - Replies to one connection go out in request order: a publish's reply (`send` from
      its task) first waits for the previous publish to be answered, a publish is not
      done before the previous one is, and every other request and every refusal first
      waits for all publishes in flight (`settle`).
    - At most `MAX_IN_FLIGHT` publishes are in flight per connection.
    """

    # One per connection, so no __dict__ and nothing made before it is needed: see "Idle
    # connections" in docs/performance.md.
    __slots__ = ("_in_flight", "hub", "id", "limiter", "nick", "outlet", "plain", "refusals",
                 "rooms", "session")

    def __init__(self, hub: Hub, outlet: Outlet, *, nick: str, plain: bool) -> None:
        self.hub = hub
        self.id = new_connection_id()
        self.nick = nick
        self.plain = plain
        self.outlet = outlet
        # A tuple, replaced on join and leave: read far more often than changed, and a few
        # names at most (a set costs 216 bytes even when empty, a tuple of one 48).
        self.rooms: tuple[str, ...] = ()
        # Made on the first request. Exact: a bucket starts full and never holds more than
        # `burst`, so one made at connect time would still be full by then.
        self.limiter: TokenBucket | None = None
        self.refusals = 0
        # Made on the first pipelined publish: an empty deque costs 624 bytes.
        self._in_flight: deque[asyncio.Task[None]] | None = None
        # Set by the server for a connection opened with a token: what it may do.
        self.session: Session | None = None

    def member(self) -> dict[str, str]:
        return {"id": self.id, "nick": self.nick}

    async def send(self, data: bytes) -> None:
        turn = _answer_after.get()
        if turn is not None and turn[0] is self and not turn[1].done():
            await asyncio.wait((turn[1],))
        await self.hub.delivery.send(self.outlet, Payload(data))

    async def handle_text(self, text: str) -> None:
        """One text frame from this client. Never raises: failures become replies that
        carry the request's `ref` whenever the frame got far enough to have one.

        Returns before a publish is stored (see the class docstring); `settle` waits for it.
        """
        now = time.monotonic()
        limiter = self.limiter
        if limiter is None:
            limits = self.hub.limits
            limiter = self.limiter = TokenBucket(limits.rate_per_second, limits.rate_burst, now)
        wait = limiter.take(now)
        if wait:
            ref = None if self.plain else p.peek_ref(text)
            await self.settle()
            await self._refuse(ErrorCode.RATE_LIMITED, "too many requests", ref,
                               retry_after=int(wait * 1000) + 1)
            return
        try:
            if self.plain:
                p.validate_body(text, None, self.hub.limits)
                request: p.Request = p.Publish(LOBBY, text, None, None)
            else:
                request = p.parse_request(text, self.hub.limits)
        except Exception as exc:
            await self.settle()
            await self._answer_failure(exc, None)
            return
        # Only a publish that can be stored is pipelined, so that the one refusal it can
        # still get (the store's) is decided in store order; a publish to a room not
        # joined is refused in turn, below, like any other request.
        if isinstance(request, p.Publish) and request.room in self.rooms:
            await self._start_publish(request.room, request.text, request.data, request.ref)
            return
        await self.settle()
        await self._answer(self.hub.dispatch(self, request), request.ref)

    async def settle(self) -> None:
        """Return once every publish this connection has in flight has been answered."""
        while self._in_flight:
            await asyncio.wait(tuple(self._in_flight))

    async def _start_publish(self, room: str, text: str | None, data: Any,
                             ref: p.Ref | None) -> None:
        in_flight = self._in_flight
        if in_flight is None:
            in_flight = self._in_flight = deque()
        while len(in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait((in_flight[0],))
        previous = in_flight[-1] if in_flight else None
        task = start_eagerly(self._publish(room, text, data, ref, previous), "publish")
        if task is not None:
            in_flight.append(task)
            task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        assert self._in_flight is not None  # a task is only made after it
        self._in_flight.remove(task)
        # `_publish` answers every Exception itself; anything else must not vanish.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("publish task of connection %s failed", self.id, exc_info=exc)

    async def _publish(self, room: str, text: str | None, data: Any, ref: p.Ref | None,
                       previous: asyncio.Task[None] | None) -> None:
        # Nothing may be awaited before `publish_from`: its append must enter the store
        # during the eager first step (see `tasks.start_eagerly`), which runs in frame order.
        if previous is not None:
            _answer_after.set((self, previous))
        try:
            await self._answer(self.hub.publish_from(self, room, text, data, ref), ref)
            # Done must imply every earlier publish done, even one without a reply (a
            # plain-text line), for `send` above and for the bound in `_start_publish`.
            if previous is not None and not previous.done():
                await asyncio.wait((previous,))
        finally:
            # Each task's context would otherwise keep its predecessor, and so the
            # connection's whole chain of finished publishes, alive.
            _answer_after.set(None)

    async def _answer(self, step: Awaitable[None], ref: p.Ref | None) -> None:
        try:
            await step
        except Exception as exc:
            await self._answer_failure(exc, ref)

    async def _answer_failure(self, exc: Exception, ref: p.Ref | None) -> None:
        if isinstance(exc, p.ProtocolError):
            await self._refuse(exc.code, exc.reason, exc.ref if exc.ref is not None else ref)
        elif isinstance(exc, StoreError):
            log.error("store failed for connection %s: %s", self.id, exc)
            await self._refuse(ErrorCode.UNAVAILABLE,
                               "the message store is unavailable; nothing was stored", ref)
        else:
            log.error("request from connection %s failed", self.id, exc_info=exc)
            await self._refuse(ErrorCode.INTERNAL, "internal server error", ref)

    async def _refuse(self, code: ErrorCode, reason: str, ref: p.Ref | None,
                      **extra: Any) -> None:
        self.refusals += 1
        if self.refusals <= LOGGED_REFUSALS or self.refusals % 100 == 0:
            log.info("connection %s (%s): refused #%d: %s: %s", self.id, self.nick,
                     self.refusals, code.value, reason)
        if self.plain:
            await self.send(f"error: {reason}".encode())
        else:
            await self.send(p.error_event(code, reason, ref, **extra))


@dataclass(frozen=True, slots=True)
class JoinResult:
    entry: dict[str, Any]
    replay: list[Message]
    high: int


class Hub:
    def __init__(self, store: MessageStore, delivery: Delivery, limits: Limits) -> None:
        self.store = store
        self.delivery = delivery
        self.limits = limits
        self.rooms: Rooms[Connection, Message] = Rooms()
        self.connections: dict[str, Connection] = {}
        self.published = 0

    # --- connections ---------------------------------------------------------------------

    def connect(self, outlet: Outlet, *, nick: str, plain: bool) -> Connection:
        conn = Connection(self, outlet, nick=nick, plain=plain)
        self.connections[conn.id] = conn
        return conn

    async def disconnect(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for room in list(conn.rooms):
            await self._leave(conn, room)
        await conn.outlet.close()

    # --- requests --------------------------------------------------------------------------

    async def dispatch(self, conn: Connection, request: p.Request) -> None:
        match request:
            case p.Publish(room, text, data, ref):
                await self.publish_from(conn, room, text, data, ref)
            case p.Join():
                await self.join(conn, request)
            case p.Leave(rooms, ref):
                for room in rooms:
                    if room in conn.rooms:
                        await self._leave(conn, room)
                await conn.send(p.reply("left", ref, rooms=list(rooms)))
            case p.Nick(nick, ref):
                await self.set_nick(conn, nick)
                await conn.send(p.reply("nick_set", ref, nick=nick))
            case p.History():
                await self._history(conn, request)
            case p.Members(room, ref):
                grants.check(conn.session, Action.PRESENCE, (room,))
                await conn.send(p.reply("member_list", ref, room=room,
                                        members=self.members(room)))
            case p.Rooms(ref):
                await conn.send(p.reply("room_list", ref, rooms=grants.visible(
                    conn.session, await self.room_list())))
            case p.Ping(ref):
                await conn.send(p.reply("pong", ref))
            case p.Refresh():
                await self.refresh(conn, request)

    async def publish_from(self, conn: Connection, room: str, text: str | None, data: Any,
                           ref: p.Ref | None) -> None:
        grants.check(conn.session, Action.PUBLISH, (room,))
        if room not in conn.rooms:
            raise p.ProtocolError(ErrorCode.NOT_JOINED, f"join {room!r} before publishing")
        # No await may come before the store's `append` here or in `publish`: pipelined
        # publishes rely on it taking its place in the store's queue in their first step.
        message = await self.publish(room, text=text, data=data, nick=conn.nick,
                                     sender=conn.id)
        if not conn.plain:
            await conn.send(p.reply("ack", ref, room=room, id=message.id,
                                    offset=message.offset, epoch=message.epoch,
                                    ts=message.ts))

    async def publish(self, room: str, *, text: str | None = None, data: Any = None,
                      nick: str = "server", sender: str | None = None) -> Message:
        """Store a message and deliver it to the room; the in-process push API.

        Returns once the message is stored and handed to every member's outbox.
        Raises `StoreError` if it could not be stored (then nobody receives it).
        """
        message = await self.store.append(
            Draft(room=room, nick=nick, sender=sender, text=text, data=data)
        )
        self.published += 1
        await self._deliver(message)
        return message

    async def _deliver(self, message: Message) -> None:
        room = self.rooms.get(message.room)
        if room is None:
            return
        if room.joining:
            room.buffer(message)
        if room.live:
            await self.delivery.fanout(room.view(False, _outlet), Payload(message.to_json()),
                                       (room.name, False))
        if room.live_plain:
            await self.delivery.fanout(room.view(True, _outlet),
                                       Payload(message.to_plain().encode()), (room.name, True))

    # --- rooms -----------------------------------------------------------------------------

    async def join(self, conn: Connection, request: p.Join) -> None:
        grants.check(conn.session, Action.READ, (spec.room for spec in request.rooms))
        new_rooms = {spec.room for spec in request.rooms}.difference(conn.rooms)
        if len(conn.rooms) + len(new_rooms) > self.limits.max_rooms:
            raise p.ProtocolError(
                ErrorCode.TOO_MANY_ROOMS,
                f"a connection may be in at most {self.limits.max_rooms} rooms",
                request.ref,
            )
        results: list[JoinResult] = []
        try:
            for spec in request.rooms:
                if spec.room in conn.rooms:
                    # Already live there: nothing to replay, but a `since` from another
                    # epoch (or the future) still means the client's copy is wrong.
                    state = await self._state(spec.room)
                    entry = self._entry(spec.room, state)
                    reason = None if spec.since is None else _mismatch(spec.since, state)
                    if reason is not None:
                        entry.update(recovered=False, reason=reason)
                    results.append(JoinResult(entry, [], state.offset))
                    continue
                # Buffer live messages from now on, before reading the room's position, so
                # that whatever is stored after that read reaches this member one way or
                # the other.
                self.rooms.get_or_create(spec.room).begin_join(conn.id, conn, plain=conn.plain)
                conn.rooms = (*conn.rooms, spec.room)
                results.append(await self._prepare_join(spec))
        except BaseException:
            for room in new_rooms.intersection(conn.rooms):
                self.rooms.remove_member(room, conn.id)
            conn.rooms = tuple(room for room in conn.rooms if room not in new_rooms)
            raise
        if not conn.plain:
            entries = [
                {**result.entry, "members": self.members(result.entry["room"], including=conn)}
                for result in results
            ]
            await conn.send(p.reply("joined", request.ref, rooms=entries))
        for result in results:
            name = result.entry["room"]
            if name in new_rooms:
                await self._catch_up(conn, name, result)

    async def _catch_up(self, conn: Connection, name: str, result: JoinResult) -> None:
        """Replay history, then what was buffered meanwhile, then switch to live delivery.

        The switch happens only at a moment when the buffer holds nothing newer than what
        was sent, with no await between that check and the switch: so no message is
        missed or sent twice, whichever delivery strategy is in use.
        """
        await self._replay(conn, result.replay)
        high = result.high
        while True:
            room = self.rooms.get(name)
            if room is None or conn.id not in room.joining:
                return  # left or disconnected while catching up
            fresh = [m for m in room.take_buffered(conn.id) if m.offset > high]
            if not fresh:
                room.go_live(conn.id)
                break
            await self._replay(conn, fresh)
            high = fresh[-1].offset
        await self._announce(conn, name, "join")

    async def _prepare_join(self, spec: p.JoinSpec) -> JoinResult:
        state = await self._state(spec.room)
        entry = self._entry(spec.room, state)
        if spec.history is not None:
            page = await self.store.read(spec.room, limit=spec.history)
            latest = page.messages if page else []
            return JoinResult(entry, latest, max([state.offset, *(m.offset for m in latest)]))
        if spec.since is None:
            return JoinResult(entry, [], state.offset)
        since = spec.since
        reason = _mismatch(since, state)
        if reason is None and (since.offset + 1 < state.first_offset
                               or state.offset - since.offset > RECOVERY_MAX):
            reason = "history_truncated"
        if reason is not None:
            entry.update(recovered=False, reason=reason)
            return JoinResult(entry, [], state.offset)
        replay: list[Message] = []
        after = since.offset
        while True:
            page = await self.store.read(spec.room, after=after,
                                         limit=self.limits.history_page_max)
            if page is None or not page.messages:
                break
            replay.extend(page.messages)
            after = page.messages[-1].offset
            if not page.has_more:
                break
        if replay and replay[0].offset != since.offset + 1:
            # Retention removed the next message while we read: not a gap-free recovery.
            entry.update(recovered=False, reason="history_truncated")
            return JoinResult(entry, [], state.offset)
        return JoinResult(entry, replay, max(state.offset, after))

    async def _state(self, room: str) -> RoomState:
        state = await self.store.room_state(room, create=True)
        assert state is not None
        return state

    @staticmethod
    def _entry(room: str, state: RoomState) -> dict[str, Any]:
        return {"room": room, "epoch": state.epoch, "offset": state.offset, "recovered": True}

    async def _replay(self, conn: Connection, messages: Sequence[Message]) -> None:
        for message in messages:
            data = message.to_plain().encode() if conn.plain else message.to_json()
            await conn.send(data)

    async def _leave(self, conn: Connection, room: str) -> None:
        conn.rooms = tuple(name for name in conn.rooms if name != room)
        if self.rooms.remove_member(room, conn.id) is not None:
            await self._announce(conn, room, "leave")

    async def set_nick(self, conn: Connection, nick: str) -> None:
        grants.check_nick(conn.session)
        old = conn.nick
        conn.nick = nick
        if old != nick:
            for room in conn.rooms:
                await self._announce(conn, room, "nick", old_nick=old)

    async def _announce(self, conn: Connection, room_name: str, event: str,
                        **extra: Any) -> None:
        room = self.rooms.get(room_name)
        if room is None:
            return
        others = [c.outlet for c in room.live.values() if c is not conn]
        if others:
            data = p.encode({"type": "presence", "room": room_name, "event": event,
                             "member": conn.member(), **extra})
            # Same audience key as the room's messages: this list differs from the room's
            # view, so messages after this event cannot be written ahead of it.
            await self.delivery.fanout(others, Payload(data), (room_name, False))

    async def refresh(self, conn: Connection, request: p.Refresh) -> None:
        """Swap in a new token (same subject); rooms it no longer allows reading are left."""
        if conn.session is None:
            raise p.ProtocolError(ErrorCode.BAD_REQUEST,
                                  "this connection was not opened with a token")
        identity = conn.session.refresh(request.token)
        left = [room for room in conn.rooms if not identity.grants.allows(Action.READ, room)]
        for room in left:
            await self._leave(conn, room)
        expires: float | None = identity.expires
        if expires is not None and expires.is_integer():
            expires = int(expires)  # as the token had it: `exp` is whole seconds
        await conn.send(p.reply("refreshed", request.ref, expires=expires, left=left))

    def members(self, room_name: str, including: Connection | None = None) -> list[dict[str, str]]:
        room: Room[Connection, Message] | None = self.rooms.get(room_name)
        members = [] if room is None else [c.member() for c in room.live_members()]
        if including is not None and all(m["id"] != including.id for m in members):
            members.append(including.member())
        return members

    async def room_list(self) -> list[dict[str, Any]]:
        states = await self.store.rooms()
        names = sorted(set(states) | set(self.rooms.names()))
        return [
            {"room": name, "members": self.rooms.member_count(name),
             "offset": states[name].offset if name in states else 0}
            for name in names
        ]

    async def _history(self, conn: Connection, request: p.History) -> None:
        grants.check(conn.session, Action.READ, (request.room,))
        page = await self.store.read(request.room, after=request.after, before=request.before,
                                     limit=request.limit)
        if page is None:
            raise p.ProtocolError(ErrorCode.ROOM_NOT_FOUND,
                                  f"room {request.room!r} has never been used", request.ref)
        await conn.send(p.reply(
            "history_page", request.ref, room=request.room, epoch=page.state.epoch,
            offset=page.state.offset, messages=[m.to_wire() for m in page.messages],
            has_more=page.has_more,
        ))


def _outlet(conn: Connection) -> Outlet:
    return conn.outlet


def _mismatch(since: p.Position, state: RoomState) -> str | None:
    """Why a client's position cannot be in this room's history at all, if it cannot."""
    if since.epoch != state.epoch:
        return "epoch_changed"
    if since.offset > state.offset:
        return "offset_ahead"
    return None
