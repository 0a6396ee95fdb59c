"""The Hub: connections, rooms, publishing and recovery, independent of any web framework.

One message's path: `Hub.publish` hands it to the broker (`hubbub.core.broker`), which
gives it its offset, stores it, and hands every stored message of the rooms this node has
members in to `Hub.deliver`, in offset order; `deliver` encodes it once per wire format
present in the room (each connection's codec, `hubbub.core.codec`) and hands each payload
to that format's members through the fan-out engine, and buffers it for members that are
still joining. Membership on this node is `Membership`'s; who is in a room across the
deployment is the broker's `Presence`. Every
event is built by `hubbub.core.events`. The aiohttp adapter (`hubbub.server`) only moves
frames between sockets and `Connection.handle_text`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from hubbub.core import events, grants
from hubbub.core import protocol as p
from hubbub.core.broker import Broker, BrokerUnavailable
from hubbub.core.codec import CODECS, Codec, Wire
from hubbub.core.codes import CloseCode, ErrorCode
from hubbub.core.grants import Action, Identity, Session
from hubbub.core.limits import Limits
from hubbub.core.message import Draft, Message
from hubbub.core.ratelimit import TokenBucket
from hubbub.core.rooms import LocalPresence, Membership
from hubbub.core.store import Outcome, RoomState, StoreError, settle
from hubbub.engine.fanout import Fanout, Outlet, Payload

log = logging.getLogger("hubbub.hub")  # the name operators see in the logs

LOGGED_REFUSALS = 10
"""Refusals logged per connection before only every 100th is: a client sending garbage in
a loop must not be able to flood the log."""

RECOVERY_MAX = 10_000
"""Most messages replayed to one joining member (further back counts as truncated, so a
reconnecting client reloads instead), and most messages buffered for it while it replays
(past that its connection is closed with 4008), so that no join holds unbounded memory."""


UNAVAILABLE_RETRY_MS = 1000
"""When a client refused with `unavailable` may try again (HTTP: `Retry-After: 1`)."""


def new_connection_id() -> str:
    return secrets.token_hex(6)


MAX_IN_FLIGHT = 4096
MAX_IN_FLIGHT_BYTES = 1024 * 1024
"""Publishes (and the bytes of their frames) one connection may have waiting for the store
at once. Pipelined publishes let one group commit gather many appends of a connection
instead of one per commit, and a single fast publisher needs thousands in flight to keep
the store busy while the loop writes to a thousand sockets (docs/storage.md, "Where the
stalls came from"; the bound was 32 then). At either bound the connection's next frame is
not read until its oldest publish is answered, so a flooding client is slowed down by TCP
and what one connection holds stays bounded: 1 MiB is less than what 32 frames of the
largest size held before."""


class _Pending:
    """A publish of this connection that is waiting for its answer, in request order.

    It is the store's `Outcome` callback for the publish: the store calls it from the
    commit step that stored (or refused) the message.
    """

    __slots__ = ("conn", "outcome", "ref", "size")

    def __init__(self, conn: Connection, ref: p.Ref | None, size: int) -> None:
        self.conn = conn
        self.ref = ref
        self.size = size
        self.outcome: Message | Exception | None = None

    def __call__(self, outcome: Message | Exception) -> None:
        self.outcome = outcome
        self.conn._answer_in_turn()


class Connection:
    """One client, as the hub sees it; its `codec` (chosen at connect time) reads its
    frames and writes its events, in whichever wire format it speaks.

    Publishes are pipelined: each one (a JSON `publish`, or a line from a plain-text client)
    goes to the broker at once, without waiting for the ones before it, and `handle_text`
    returns so that the next frame can be read. Messages keep frame order because
    `Broker.publish` takes their place synchronously (`hubbub.core.broker`). Replies go out
    in request order: every publish waits for its answer in `_pending`, a FIFO answered from
    its head only (`_answer_in_turn`, run from the broker's outcome), and every other
    request and every refusal first waits for the FIFO to empty (`settle`). What waits is
    bounded by `MAX_IN_FLIGHT`.
    """

    # One per connection, so no __dict__ and nothing made before it is needed: see "Idle
    # connections" in docs/performance.md.
    __slots__ = ("_answered", "_pending", "_pending_bytes", "codec", "hub", "id", "joined",
                 "limiter", "nick", "outlet", "refusals", "session")

    def __init__(self, hub: Hub, outlet: Outlet, *, nick: str, codec: Codec) -> None:
        self.hub = hub
        self.id = new_connection_id()
        self.nick = nick
        self.codec = codec
        self.outlet = outlet
        # The names of the rooms it has joined (or is joining). A tuple, replaced on join
        # and leave: read far more often than changed, and a few names at most (a set costs
        # 216 bytes even when empty, a tuple of one 48).
        self.joined: tuple[str, ...] = ()
        # Made on the first request. Exact: a bucket starts full and never holds more than
        # `burst`, so one made at connect time would still be full by then.
        self.limiter: TokenBucket | None = None
        self.refusals = 0
        # Made on the first publish: an empty deque costs 624 bytes.
        self._pending: deque[_Pending] | None = None
        self._pending_bytes = 0
        # Set when publishes are answered, for whoever waits for room in `_pending`.
        self._answered: asyncio.Future[None] | None = None
        # Set by the server for a connection opened with a token: what it may do.
        self.session: Session | None = None

    def member(self) -> events.Event:
        return events.member(self.id, self.nick)

    async def send(self, data: bytes | None) -> None:
        """Send one frame. None (an event this connection's codec has no form for, such as
        a plain-text client's ack) sends nothing."""
        if data is not None:
            await self.hub.fanout.send(self.outlet, Payload(data))

    def reply(self, data: bytes | None) -> None:
        """`send` without waiting (from the store's commit step)."""
        if data is not None:
            self.hub.fanout.reply(self.outlet, Payload(data))

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
            ref = self.codec.peek_ref(text)
            await self.settle()
            self._refuse(ErrorCode.RATE_LIMITED, "too many requests", ref,
                         retry_after=int(wait * 1000) + 1)
            return
        try:
            request = self.codec.decode(text, self.hub.limits)
        except Exception as exc:
            await self.settle()
            self._answer_failure(exc, None)
            return
        if isinstance(request, p.Publish):
            await self.pipeline(request, len(text))
            return
        await self.settle()
        await self._answer(self.hub.dispatch(self, request), request.ref)

    async def pipeline(self, request: p.Publish, size: int) -> None:
        """Submit a publish now and answer it in turn, once the store has its outcome
        (`size`: the frame's length, counted against `MAX_IN_FLIGHT_BYTES`)."""
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        while pending and (len(pending) >= MAX_IN_FLIGHT
                           or self._pending_bytes + size > MAX_IN_FLIGHT_BYTES):
            await self._next_answer()
        entry = _Pending(self, request.ref, size)
        pending.append(entry)
        self._pending_bytes += size
        try:
            self.hub.submit_from(self, request.room, request.text, request.data,
                                 request.id, entry)
        except Exception as exc:  # refused before it reached the store: answered in turn
            entry(exc)

    async def settle(self) -> None:
        """Return once every publish this connection has submitted has been answered."""
        while self._pending:
            await self._next_answer()

    async def _next_answer(self) -> None:
        if self._answered is None:
            self._answered = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._answered)

    def _answer_in_turn(self) -> None:
        """Answer the publishes at the head of `_pending` that have their outcome."""
        pending = self._pending
        assert pending is not None  # an entry is only made after it
        answered = False
        while pending and (outcome := pending[0].outcome) is not None:
            entry = pending.popleft()
            self._pending_bytes -= entry.size
            answered = True
            if isinstance(outcome, Message):
                self.reply(self.codec.ack(outcome, entry.ref))
            else:
                self._answer_failure(outcome, entry.ref)
        waiting = self._answered
        if answered and waiting is not None:
            self._answered = None
            if not waiting.done():
                waiting.set_result(None)

    async def _answer(self, step: Awaitable[None], ref: p.Ref | None) -> None:
        try:
            await step
        except Exception as exc:
            self._answer_failure(exc, ref)

    def _answer_failure(self, exc: Exception, ref: p.Ref | None) -> None:
        if isinstance(exc, p.ProtocolError):
            self._refuse(exc.code, exc.reason, exc.ref if exc.ref is not None else ref)
        elif isinstance(exc, StoreError):
            if not isinstance(exc, BrokerUnavailable):  # the broker logs an outage once
                log.error("store failed for connection %s: %s", self.id, exc)
            self._refuse(ErrorCode.UNAVAILABLE, exc.client_reason, ref,
                         retry_after=UNAVAILABLE_RETRY_MS)
        else:
            log.error("request from connection %s failed", self.id, exc_info=exc)
            self._refuse(ErrorCode.INTERNAL, "internal server error", ref)

    def _refuse(self, code: ErrorCode, reason: str, ref: p.Ref | None,
                retry_after: int | None = None) -> None:
        self.refusals += 1
        self.hub.refused[code] = self.hub.refused.get(code, 0) + 1
        if self.refusals <= LOGGED_REFUSALS or self.refusals % 100 == 0:
            log.info("connection %s (%s): refused #%d: %s: %s", self.id, self.nick,
                     self.refusals, code.value, reason)
        self.reply(self.codec.error(code, reason, ref, retry_after=retry_after))


@dataclass(frozen=True, slots=True)
class _CatchUp:
    """What a member that just joined a room is still owed: the stored messages with
    offsets in (`after`, `boundary`], then everything delivered since it began joining."""

    room: str
    after: int
    boundary: int


class Hub:
    def __init__(self, broker: Broker, fanout: Fanout, limits: Limits, *,
                 max_total_rooms: int | None = None) -> None:
        self.broker = broker
        self.max_total_rooms = max_total_rooms
        self.fanout = fanout
        self.limits = limits
        self.registry: Membership[Connection, Message] = Membership()
        self.presence = broker.presence(LocalPresence(self.registry))
        self.connections: dict[str, Connection] = {}
        self.published = 0
        broker.listen(self)
        self.refused: dict[ErrorCode, int] = {}  # refusals by code, for /metrics

    # --- connections ---------------------------------------------------------------------

    def connect(self, outlet: Outlet, *, nick: str, wire: Wire) -> Connection:
        conn = Connection(self, outlet, nick=nick, codec=CODECS[wire])
        self.connections[conn.id] = conn
        return conn

    async def disconnect(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for room in list(conn.joined):
            await self._leave(conn, room)
        await conn.outlet.close()

    # --- requests --------------------------------------------------------------------------

    async def dispatch(self, conn: Connection, request: p.Request) -> None:
        """Answer one request that is not a publish (`Connection.pipeline` takes those)."""
        match request:
            case p.Join():
                await self.join(conn, request)
            case p.Leave(rooms, ref):
                for room in rooms:
                    if room in conn.joined:
                        await self._leave(conn, room)
                await conn.send(conn.codec.event(events.left(ref, rooms)))
            case p.Nick(nick, ref):
                await self.set_nick(conn, nick)
                await conn.send(conn.codec.event(events.nick_set(ref, nick)))
            case p.History(room, limit, before, after, ref):
                grants.check(conn.session, Action.READ, (room,))
                page = await self.history(room, after=after, before=before, limit=limit)
                await conn.send(conn.codec.event(events.history_page(ref, page)))
            case p.Members(room, ref):
                grants.check(conn.session, Action.PRESENCE, (room,))
                await conn.send(conn.codec.event(events.member_list(
                    ref, room, await self.members(room))))
            case p.RoomList(ref, after, limit):
                entries, more = await self.room_list(after=after, limit=limit,
                                                     who=conn.session)
                await conn.send(conn.codec.event(events.room_list(ref, entries, more)))
            case p.Ping(ref):
                await conn.send(conn.codec.event(events.pong(ref)))
            case p.Refresh():
                await self.refresh(conn, request)

    def submit_from(self, conn: Connection, room: str, text: str | None, data: Any,
                    id: str | None, then: Outcome) -> None:
        """`submit` for a client's publish, after checking that it may; raises
        `ProtocolError` (then nothing was submitted)."""
        grants.check(conn.session, Action.PUBLISH, (room,))
        if room not in conn.joined:
            raise p.ProtocolError(ErrorCode.NOT_JOINED, f"join {room!r} before publishing")
        self.submit(room, text=text, data=data, nick=conn.nick, sender=conn.id, id=id,
                    then=then)

    def submit(self, room: str, *, text: str | None = None, data: Any = None,
               nick: str = "server", sender: str | None = None, id: str | None = None,
               then: Outcome) -> None:
        """Publish a message without waiting (`Broker.publish`): `then` gets the stored
        message or the `StoreError` (then nobody receives it). With
        `id` (publisher-chosen, checked by the caller) the publish is idempotent: a repeat
        is answered with the original (`Message.duplicate`). Raises `ProtocolError` for
        `data` that could not be encoded (then nothing is submitted)."""
        p.validate_data(data)
        if id is None:
            draft = Draft(room=room, nick=nick, sender=sender, text=text, data=data)
        else:
            draft = Draft(room=room, nick=nick, sender=sender, text=text, data=data, id=id,
                          dedupe=True)
        self.broker.publish(draft, then)

    async def publish(self, room: str, *, text: str | None = None, data: Any = None,
                      nick: str = "server", sender: str | None = None,
                      id: str | None = None) -> Message:
        """`submit`, awaited: the in-process push API. Raises `StoreError` if the message
        could not be stored, `ProtocolError` for `data` that could not be encoded."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.submit(room, text=text, data=data, nick=nick, sender=sender, id=id,
                    then=partial(settle, future))
        return await future

    def deliver(self, messages: Sequence[Message]) -> None:
        """The one way from the broker to the sockets: stored messages, in offset order per
        room (`Node.deliver`). It does not wait for any socket, and it is not the
        publisher's to run: a publisher that is cancelled or gone once its message is
        stored cannot keep it from the room."""
        self.published += len(messages)
        if messages:
            self.fanout.published(messages[0].ts / 1000)  # the batch's oldest, in order
        for message in messages:
            room = self.registry.get(message.room)
            if room is None:
                continue
            if room.joining:
                for conn in room.buffer(message, RECOVERY_MAX):
                    log.warning("connection %s fell %d messages behind while joining %r",
                                conn.id, RECOVERY_MAX, room.name)
                    self._abandon(conn, room.name, CloseCode.TOO_SLOW, "too slow")
            for wire, members in room.live.items():
                if members:
                    self.fanout.broadcast(room.view(wire, _outlet),
                                         Payload(CODECS[wire].message(message)),
                                         (room.name, wire))

    # --- rooms -----------------------------------------------------------------------------

    async def join(self, conn: Connection, request: p.Join) -> None:
        """Join rooms so that each message reaches the member exactly once, in order.

        Per room, `joined.offset` is the boundary: the room's offset at the moment the
        member began collecting its deliveries. By the store's contract, every message at or
        below it was delivered before (so it is stored, and the replay of `since` or
        `history` reads it) and every message above it is delivered after (so the member
        has it buffered, and then live). Nothing at or below the boundary is sent live.
        """
        grants.check(conn.session, Action.READ, (spec.room for spec in request.specs))
        new_rooms = {spec.room for spec in request.specs}.difference(conn.joined)
        if len(conn.joined) + len(new_rooms) > self.limits.max_rooms:
            raise p.ProtocolError(
                ErrorCode.TOO_MANY_ROOMS,
                f"a connection may be in at most {self.limits.max_rooms} rooms",
                request.ref,
            )
        entries: list[events.JoinedRoom] = []
        owed: list[_CatchUp] = []
        try:
            for spec in request.specs:
                if spec.room in conn.joined:
                    # Already live there: nothing to replay, but a `since` from another
                    # epoch (or the future) still means the client's copy is wrong.
                    state = await self._state(spec.room)
                    reason = None if spec.since is None else _mismatch(spec.since, state)
                    entries.append(events.JoinedRoom(spec.room, state, reason))
                    continue
                # Collect deliveries first, then subscribe, then read the boundary (as of
                # the end of `_state`): every message above it is then sure to be buffered.
                self.registry.enter(spec.room, conn, conn.codec.wire)
                await self.broker.subscribe(spec.room)
                state = await self._state(spec.room)
                entry, after = self._replay_start(spec, state)
                entries.append(entry)
                owed.append(_CatchUp(spec.room, after, state.offset))
        except BaseException:
            for room in new_rooms.intersection(conn.joined):
                self._remove_member(room, conn)
            raise
        lists = {entry.room: await self.members(entry.room, including=conn)
                 for entry in entries} if conn.codec.shows_members else {}
        await conn.send(conn.codec.joined(request.ref, entries, lists.__getitem__))
        for catch_up in owed:
            await self._catch_up(conn, catch_up)

    def _replay_start(self, spec: p.JoinSpec,
                      state: RoomState) -> tuple[events.JoinedRoom, int]:
        """The room's `joined` entry, and the offset after which the replay starts (the
        replay ends at the boundary, `state.offset`)."""
        reason: str | None = None
        since = spec.since
        if spec.history is not None:
            after = max(state.offset - spec.history, state.first_offset - 1)
        elif since is None:
            after = state.offset
        else:
            reason = _mismatch(since, state)
            if reason is None and (since.offset + 1 < state.first_offset
                                   or state.offset - since.offset > RECOVERY_MAX):
                reason = "history_truncated"
            after = state.offset if reason is not None else since.offset
        return events.JoinedRoom(spec.room, state, reason), after

    async def _catch_up(self, conn: Connection, owed: _CatchUp) -> None:
        """Replay the stored messages owed, page by page, then what was delivered
        meanwhile, then switch to live delivery.

        Each page is read only once the previous one has left the server's buffers, so a
        joining client holds at most its outbox limit plus one page of memory; one that
        does not read is closed by its outbox (4008). The switch to live happens when the
        buffer is empty, with no await between that check and the switch. If the replay
        cannot be completed, the member leaves the room and the connection is closed
        (1011, so clients reconnect and recover): it is never left half-joined.
        """
        name, after, last = owed.room, owed.after, owed.boundary
        try:
            while after < owed.boundary:
                page = await self.broker.read(name, after=after, before=owed.boundary + 1,
                                             limit=self.limits.history_page_max)
                if not self._joining(conn, name):
                    return  # left or disconnected meanwhile
                messages = page.messages if page is not None else []
                if not messages or messages[0].offset != after + 1:
                    raise _ReplayBroken("retention removed messages the replay still owed")
                await self._replay(conn, messages)
                after = messages[-1].offset
                await self.fanout.drain(conn.outlet)
            while True:
                room = self.registry.get(name)
                if room is None or conn.id not in room.joining:
                    return
                # The buffer began before the boundary was read, so it may start with
                # messages at or below it, which the replay has sent.
                fresh = [m for m in room.take_buffered(conn.id) if m.offset > last]
                if not fresh:
                    room.go_live(conn.id)
                    break
                await self._replay(conn, fresh)
                last = fresh[-1].offset
                await self.fanout.drain(conn.outlet)
        except _ReplayBroken as exc:
            log.warning("connection %s: replay of %r stopped: %s", conn.id, name, exc)
            self._abandon(conn, name, CloseCode.INTERNAL_ERROR, "replay interrupted; reconnect")
            return
        except StoreError as exc:
            log.error("connection %s: replay of %r failed: %s", conn.id, name, exc)
            self._abandon(conn, name, CloseCode.INTERNAL_ERROR, "history unavailable; reconnect")
            return
        except Exception:
            log.exception("connection %s: replay of %r failed", conn.id, name)
            self._abandon(conn, name, CloseCode.INTERNAL_ERROR, "internal error")
            return
        self._announce(conn, name, "join")
        await self._shared(self.presence.add(name, conn.member()))

    def _joining(self, conn: Connection, name: str) -> bool:
        room = self.registry.get(name)
        return room is not None and conn.id in room.joining

    def _abandon(self, conn: Connection, name: str, code: CloseCode, reason: str) -> None:
        self._remove_member(name, conn)
        conn.outlet.socket.close_with(code, reason)

    async def _state(self, room: str) -> RoomState:
        """The room's state, as of the end of this call; the room is started if new."""
        await self.admit_room(room)
        state = await self.broker.room_state(room, create=True)
        assert state is not None
        return state

    def _remove_member(self, room: str, conn: Connection) -> Connection | None:
        """Take `conn` out of `room`; the node unsubscribes from a room it no longer has
        members in."""
        member, emptied = self.registry.leave(room, conn)
        if emptied:
            self.broker.unsubscribe(room)
        return member

    @staticmethod
    async def _shared(step: Awaitable[None]) -> None:
        """A presence update for the other nodes: one that fails is logged, and the member
        stays in the room (its own node knows it; the others catch up when its entry is
        written again or expires)."""
        try:
            await step
        except StoreError as exc:
            log.warning("presence update failed: %s", exc)

    async def _replay(self, conn: Connection, messages: Sequence[Message]) -> None:
        for message in messages:
            await conn.send(conn.codec.message(message))

    async def _leave(self, conn: Connection, room: str) -> None:
        if self._remove_member(room, conn) is not None:
            self._announce(conn, room, "leave")
            await self._shared(self.presence.remove(room, conn.id))

    async def set_nick(self, conn: Connection, nick: str) -> None:
        grants.check_nick(conn.session)
        old = conn.nick
        conn.nick = nick
        if old != nick:
            for room in conn.joined:
                self._announce(conn, room, "nick", old_nick=old)
                await self._shared(self.presence.rename(room, conn.member()))

    def _announce(self, conn: Connection, room_name: str, kind: str,
                  old_nick: str | None = None) -> None:
        """Tell the room's other members, here and on other nodes, of `conn`'s change."""
        who = conn.member()
        self.broker.announce(room_name, kind, who, old_nick)
        self._tell(room_name, kind, who, old_nick, conn)

    def presence_changed(self, room: str, kind: str, member: events.Event,
                         old_nick: str | None) -> None:
        """`Node.presence_changed`: a member of another node changed."""
        self._tell(room, kind, member, old_nick, None)

    def _tell(self, room_name: str, kind: str, who: events.Event, old_nick: str | None,
              conn: Connection | None) -> None:
        room = self.registry.get(room_name)
        if room is None:
            return
        for wire, members in room.live.items():
            if not members:
                continue
            data = CODECS[wire].presence(room_name, kind, who, old_nick)
            if data is None:
                continue  # this wire format carries no presence
            others = [c.outlet for c in members.values() if c is not conn]
            if others:
                # Same audience key as the room's messages: this list differs from the
                # room's view, so messages after this event cannot be written ahead of it.
                self.fanout.broadcast(others, Payload(data), (room_name, wire))

    async def refresh(self, conn: Connection, request: p.Refresh) -> None:
        """Swap in a new token (same subject); rooms it no longer allows reading are left."""
        if conn.session is None:
            raise p.ProtocolError(ErrorCode.BAD_REQUEST,
                                  "this connection was not opened with a token")
        identity = conn.session.refresh(request.token)
        left = [room for room in conn.joined if not identity.grants.allows(Action.READ, room)]
        for room in left:
            await self._leave(conn, room)
        expires: float | None = identity.expires
        if expires is not None and expires.is_integer():
            expires = int(expires)  # as the token had it: `exp` is whole seconds
        await conn.send(conn.codec.event(events.refreshed(request.ref, expires, left)))

    def reset(self, room_name: str, state: RoomState) -> None:
        """`Node.reset`: the room's history is gone (its broker lost it). Live members are
        told, and reload the room; a member still joining is closed (1011), so that it
        reconnects and joins the new epoch."""
        room = self.registry.get(room_name)
        if room is None:
            return
        log.warning("room %r was reset: epoch %s, offset %d", room_name, state.epoch,
                    state.offset)
        for conn in [member for member, _, _ in room.joining.values()]:
            self._abandon(conn, room_name, CloseCode.INTERNAL_ERROR, "room reset; reconnect")
        event = events.reset(room_name, state, "epoch_changed")
        for conn in room.live_members():
            conn.reply(conn.codec.event(event))

    async def members(self, room_name: str,
                      including: Connection | None = None) -> list[events.Event]:
        members = await self.presence.members(room_name)
        if including is not None and all(m["id"] != including.id for m in members):
            members.append(including.member())
        return members

    async def room_list(self, *, after: str | None = None, limit: int = p.ROOM_PAGE,
                        who: Session | Identity | None = None,
                        ) -> tuple[list[events.Event], bool]:
        """One page of the rooms `who` may see, by name after `after`; and whether more
        follow. Rooms are those the store knows and those with members."""
        offsets = await self.broker.rooms()
        names = sorted(name for name in set(offsets).union(self.registry.names())
                       if after is None or name > after)
        shown = [entry["room"] for entry in grants.visible(who, [{"room": n} for n in names])]
        page = shown[:limit]
        counts = await self.presence.counts(page)
        return [
            events.room_entry(name, counts.get(name, 0), offsets.get(name, 0))
            for name in page
        ], len(shown) > limit

    async def admit_room(self, room: str) -> None:
        """Refuse to start a room the store does not know once it holds `max_total_rooms`
        (joins and HTTP publishes start rooms; in-process publishes are trusted)."""
        cap = self.max_total_rooms
        if (cap is not None and await self.broker.room_state(room) is None
                and await self.broker.room_count() >= cap):
            raise p.ProtocolError(ErrorCode.TOO_MANY_ROOMS,
                                  f"the server holds its maximum of {cap} rooms "
                                  "(max_total_rooms); join or publish to an existing room")

    async def history(self, room: str, *, after: int | None, before: int | None,
                      limit: int) -> events.Event:
        """One page of a room's stored messages, shaped as both the WebSocket
        `history_page` and the HTTP history answer carry it (`events.history`). The caller
        has checked that its client may read the room."""
        page = await self.broker.read(room, after=after, before=before, limit=limit)
        if page is None:
            raise p.ProtocolError(ErrorCode.ROOM_NOT_FOUND, f"room {room!r} has never been used")
        return events.history(room, page)


class _ReplayBroken(Exception):
    """A joining member's replay cannot go on without a gap."""


def _outlet(conn: Connection) -> Outlet:
    return conn.outlet


def _mismatch(since: p.Position, state: RoomState) -> str | None:
    """Why a client's position cannot be in this room's history at all, if it cannot.

    Offset 0 is before every message of every epoch: a client that has seen nothing of a
    room has nothing to lose when its epoch changed (as the epoch of a room that was joined
    but never written to does when the server restarts), so it recovers from the start."""
    if since.epoch != state.epoch and since.offset > 0:
        return "epoch_changed"
    if since.offset > state.offset:
        return "offset_ahead"
    return None
