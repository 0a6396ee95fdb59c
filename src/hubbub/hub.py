"""The Hub: connections, rooms, publishing and recovery, independent of any web framework.

One message's path: `Hub.publish` stores it (the store assigns its offset), then
`_deliver` hands one JSON payload to the room's JSON members and one plain-text payload
to its plain-text members through the delivery engine, and buffers it for members that
are still replaying history. The aiohttp adapter (`hubbub.server`) only moves frames
between sockets and `Connection.handle_text`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits
from hubbub.core.message import Draft, Message
from hubbub.core.ratelimit import TokenBucket
from hubbub.core.rooms import Room, Rooms
from hubbub.core.store import MessageStore, RoomState, StoreError
from hubbub.fanout import Delivery, Outlet, Payload

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


class Connection:
    """One client, JSON or plain text, as the hub sees it."""

    def __init__(self, hub: Hub, outlet: Outlet, *, nick: str, plain: bool) -> None:
        self.hub = hub
        self.id = new_connection_id()
        self.nick = nick
        self.plain = plain
        self.outlet = outlet
        self.rooms: set[str] = set()
        self.limiter = TokenBucket(hub.limits.rate_per_second, hub.limits.rate_burst,
                                   time.monotonic())
        self.refusals = 0

    def member(self) -> dict[str, str]:
        return {"id": self.id, "nick": self.nick}

    async def send(self, data: bytes) -> None:
        await self.hub.delivery.send(self.outlet, Payload(data))

    async def handle_text(self, text: str) -> None:
        """One text frame from this client. Never raises: failures become replies that
        carry the request's `ref` whenever the frame got far enough to have one."""
        wait = self.limiter.take(time.monotonic())
        if wait:
            ref = None if self.plain else p.peek_ref(text)
            await self._refuse(ErrorCode.RATE_LIMITED, "too many requests", ref,
                               retry_after=int(wait * 1000) + 1)
            return
        ref = None
        try:
            if self.plain:
                await self.hub.publish_from(self, LOBBY, text, None, None)
                return
            request = p.parse_request(text, self.hub.limits)
            ref = request.ref
            await self.hub.dispatch(self, request)
        except p.ProtocolError as exc:
            await self._refuse(exc.code, exc.reason, exc.ref if exc.ref is not None else ref)
        except StoreError as exc:
            log.error("store failed for connection %s: %s", self.id, exc)
            await self._refuse(ErrorCode.UNAVAILABLE,
                               "the message store is unavailable; nothing was stored", ref)
        except Exception:
            log.exception("request from connection %s failed", self.id)
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
                await conn.send(p.reply("member_list", ref, room=room,
                                        members=self.members(room)))
            case p.Rooms(ref):
                await conn.send(p.reply("room_list", ref, rooms=await self.room_list()))
            case p.Ping(ref):
                await conn.send(p.reply("pong", ref))

    async def publish_from(self, conn: Connection, room: str, text: str | None, data: Any,
                           ref: p.Ref | None) -> None:
        if room not in conn.rooms:
            raise p.ProtocolError(ErrorCode.NOT_JOINED, f"join {room!r} before publishing")
        if conn.plain:
            text, data = p.validate_body(text, data, self.limits)
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
        new_rooms = {spec.room for spec in request.rooms} - conn.rooms
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
                conn.rooms.add(spec.room)
                results.append(await self._prepare_join(spec))
        except BaseException:
            for room in new_rooms & conn.rooms:
                conn.rooms.discard(room)
                self.rooms.remove_member(room, conn.id)
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
        conn.rooms.discard(room)
        if self.rooms.remove_member(room, conn.id) is not None:
            await self._announce(conn, room, "leave")

    async def set_nick(self, conn: Connection, nick: str) -> None:
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
