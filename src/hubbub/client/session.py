"""One logical `hubbub.v1` session, sans I/O: what the client knows and what it owes.

`Session` owns the state that outlives any one WebSocket: the nickname and token, the rooms
joined with each one's position and members, and the table of requests waiting for their
replies. It reads decoded frames and answers with plain values: the events to hand to the
user and the request to resolve (`Output`). It never touches a socket, a clock or an event
loop; the driver (`connection.py`) feeds it every text frame, in the order received, and
does what it returns.

Invariants, kept here and nowhere else:

- Frames are applied one at a time in wire order, so that a reply and the events after it
  are applied in the order the server sent them (a `joined` is applied before the first
  message it lets through).
- A room's position is the (offset, epoch) of the last message accepted for the user, or
  the room's offset at join time. A message at or below it in the same epoch is a duplicate
  and is dropped; a message of another epoch is accepted and becomes the position. Rejoining
  with `since = position` after a reconnection therefore gives every message exactly once,
  in order (the driver's event queue survives reconnections). A `reset` event (the server
  lost the room's history) replaces the position with the event's: what the client held
  for the old epoch says nothing about the new one.
- A request is in the pending table from the moment it is sent until its reply, its failure
  or the driver's `forget` (timeout); each is resolved at most once.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hubbub.client import wire
from hubbub.client.errors import ClientError, ConnectionLost, ProtocolViolation
from hubbub.client.events import Event, Member, Reconnected, RecoveryFailed

log = logging.getLogger("hubbub.client")

W = TypeVar("W")
"""Whatever the driver wants back when a request is resolved (its future); never looked at."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a room's stream stands for this client: its last accepted message."""

    offset: int
    epoch: str


@dataclass(slots=True)
class _Room:
    position: Position
    members: dict[str, Member] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending(Generic[W]):
    waiter: W
    request: wire.Request
    rejoin_attempt: int | None
    """Set for the join that restores the rooms after reconnection attempt number N."""


@dataclass(frozen=True, slots=True)
class Resolution(Generic[W]):
    """A request's outcome: the driver raises `error` in `waiter`, or returns `result`."""

    waiter: W
    result: Any = None
    error: ClientError | None = None


@dataclass(slots=True)
class Output(Generic[W]):
    """What one frame asks of the driver: emit `events` in order, then apply `resolved`."""

    events: list[Event] = field(default_factory=list)
    resolved: Resolution[W] | None = None


class Session(Generic[W]):
    """One client's session across any number of connections. Call `connected` on each
    `welcome`, `send` for each request, `receive` for each text frame (in order), and
    `fail_all` when a connection ends; do what every returned `Output` says."""

    def __init__(self, *, nick: str | None = None, token: str | None = None) -> None:
        self.nick = nick
        """As the server last confirmed it (or as asked for, before the first `welcome`)."""
        self.token = token
        """Sent with every (re)connection; replaced by a successful `refresh`."""
        self.connection_id: str | None = None
        self.limits: dict[str, Any] = {}
        # Every connection id this session has had: a replay after a reconnection carries
        # the sender id of the connection the message was sent on.
        self._own_ids: set[str] = set()
        self._rooms: dict[str, _Room] = {}
        self._pending: dict[int, _Pending[W]] = {}
        self._refs = itertools.count(1)

    # -- state ---------------------------------------------------------------------------

    def connected(self, welcome: wire.Welcome) -> None:
        """A new connection said `welcome`."""
        self.connection_id = welcome.id
        self._own_ids.add(welcome.id)
        self.nick = welcome.nick
        self.limits = welcome.limits

    @property
    def rooms(self) -> tuple[str, ...]:
        return tuple(self._rooms)

    def presence(self, room: str) -> tuple[Member, ...]:
        state = self._rooms.get(room)
        return tuple(state.members.values()) if state else ()

    def position(self, room: str) -> Position | None:
        state = self._rooms.get(room)
        return state.position if state else None

    def rejoin_request(self) -> wire.Request | None:
        """The join that restores every room after a reconnection (None: no rooms)."""
        if not self._rooms:
            return None
        return wire.rejoin_request(
            (room, s.position.offset, s.position.epoch) for room, s in self._rooms.items()
        )

    # -- requests ------------------------------------------------------------------------

    def send(
        self, request: wire.Request, waiter: W, *, rejoin_attempt: int | None = None
    ) -> tuple[int, str]:
        """Register `request` as waiting for its reply; returns its ref and its frame."""
        ref = next(self._refs)
        self._pending[ref] = _Pending(waiter, request, rejoin_attempt)
        return ref, wire.encode(request, ref)

    def forget(self, ref: int) -> None:
        """The driver stopped waiting (timeout, cancellation); a late reply is not a result."""
        self._pending.pop(ref, None)

    def fail_all(self, exc: ClientError) -> list[Resolution[W]]:
        """Every waiting request fails with `exc` (the connection is gone or unusable)."""
        failed = []
        for pending in self._pending.values():
            error = exc
            if pending.request["type"] == "publish" and isinstance(exc, ConnectionLost):
                error = ConnectionLost(
                    f"{exc}; the publish was not acknowledged and may or may not "
                    "have been stored",
                    close_code=exc.close_code,
                )
            failed.append(Resolution(pending.waiter, error=error))
        self._pending.clear()
        return failed

    # -- frames --------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Output[W]:
        """Apply one server frame. Raises `ProtocolViolation` for a frame that breaks the
        protocol outside any reply (the connection cannot be trusted after it); a broken
        reply fails only its own request."""
        obj = wire.decode(frame)
        kind = obj["type"]
        ref = obj.get("ref")
        if kind == "message":
            return self._on_message(obj)
        if kind == "presence":
            return self._on_presence(obj)
        if kind == "reset":
            return self._on_reset(obj)
        if isinstance(ref, int) and ref in self._pending:
            return self._on_reply(self._pending.pop(ref), obj)
        if kind == "error":
            log.warning(
                "hubbub server error not matching a waiting request: %s: %s",
                obj.get("code"),
                obj.get("reason"),
            )
        elif kind in ("joined", "left", "nick_set"):
            # A late reply (its request timed out): the server did it, so keep state true.
            events: list[Event] = []
            if kind == "joined":
                self._apply_joined(obj, events)
            elif kind == "left":
                self._apply_left(obj)
            else:
                self._apply_nick(obj)
            return Output(events)
        else:
            log.debug("hubbub: ignoring %s frame (ref %r)", kind, ref)
        return Output()

    def _on_message(self, obj: dict[str, Any]) -> Output[W]:
        msg = wire.message(obj, self._own_ids)
        state = self._rooms.get(msg.room)
        if state is None:
            log.debug("hubbub: dropping message for room %s, not joined", msg.room)
            return Output()
        pos = state.position
        if msg.epoch == pos.epoch and msg.offset <= pos.offset:
            log.debug("hubbub: dropping duplicate %s@%d", msg.room, msg.offset)
            return Output()
        state.position = Position(msg.offset, msg.epoch)
        return Output([msg])

    def _on_reset(self, obj: dict[str, Any]) -> Output[W]:
        """The room's history is gone: go on from the event's position, so that the new
        epoch's messages after it are accepted (and none of the old one's dedupe applies),
        and tell the user."""
        event = wire.reset(obj)
        state = self._rooms.get(event.room)
        if state is None:
            return Output()
        log.warning("hubbub: the history of room %s was reset (%s)", event.room, event.reason)
        state.position = Position(event.offset, event.epoch)
        return Output([event])

    def _on_presence(self, obj: dict[str, Any]) -> Output[W]:
        event = wire.presence(obj)
        state = self._rooms.get(event.room)
        if state is None:
            return Output()
        if event.event == "leave":
            state.members.pop(event.member.id, None)
        else:
            state.members[event.member.id] = event.member
        return Output([event])

    def _on_reply(self, pending: _Pending[W], obj: dict[str, Any]) -> Output[W]:
        if obj["type"] == "error":
            return Output(resolved=Resolution(pending.waiter, error=wire.error(obj)))
        events: list[Event] = []
        try:
            result = self._apply_reply(pending, obj, events)
        except ProtocolViolation as exc:
            return Output(events, Resolution(pending.waiter, error=exc))
        return Output(events, Resolution(pending.waiter, result))

    def _apply_reply(self, pending: _Pending[W], obj: dict[str, Any],
                     events: list[Event]) -> Any:
        """The request's result; updates state first when the reply says it changed."""
        request = pending.request
        match request["type"]:
            case "join":
                return self._apply_joined(obj, events, rejoin_attempt=pending.rejoin_attempt)
            case "leave":
                return self._apply_left(obj)
            case "nick":
                return self._apply_nick(obj)
            case "publish":
                return wire.ack(obj)
            case "history":
                return wire.history_page(obj, self._own_ids)
            case "refresh":
                left = wire.room_names(obj, "left")
                for room in left:
                    self._rooms.pop(room, None)
                self.token = request["token"]
                return left
            case "members":
                found = wire.members(obj)
                state = self._rooms.get(request["room"])
                if state is not None:
                    state.members = {m.id: m for m in found}
                return found
            case "rooms":
                return wire.room_list(obj)
            case "ping":
                return None  # the reply itself is the answer
            case other:
                raise AssertionError(f"no reply handler for a {other!r} request")

    def _apply_joined(self, obj: dict[str, Any], events: list[Event], *,
                      rejoin_attempt: int | None = None) -> tuple[str, ...]:
        entries = wire.joined(obj)  # all parsed before any is applied
        recovered: dict[str, int] = {}
        failed: list[tuple[str, str]] = []
        for entry in entries:
            position = Position(entry.offset, entry.epoch)
            members = {m.id: m for m in entry.members}
            state = self._rooms.get(entry.room)
            if state is None:
                self._rooms[entry.room] = _Room(position, members)
                continue
            state.members = members
            if not entry.recovered:
                failed.append((entry.room, entry.reason))
                state.position = position
            elif rejoin_attempt is not None:
                recovered[entry.room] = max(0, position.offset - state.position.offset)
        if rejoin_attempt is not None:
            events.append(Reconnected(rejoin_attempt, recovered))
        for room, reason in failed:
            log.warning("hubbub: could not recover room %s: %s", room, reason)
            events.append(RecoveryFailed(room, reason))
        return tuple(entry.room for entry in entries)

    def _apply_left(self, obj: dict[str, Any]) -> tuple[str, ...]:
        rooms = wire.room_names(obj, "rooms")
        for room in rooms:
            self._rooms.pop(room, None)
        return rooms

    def _apply_nick(self, obj: dict[str, Any]) -> str:
        nick = wire.field(obj, "nick", str)
        self.nick = nick
        me = self.connection_id
        for state in self._rooms.values():
            if me is not None and me in state.members:
                state.members[me] = Member(me, nick)
        return nick
