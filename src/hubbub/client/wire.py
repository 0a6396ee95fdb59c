"""The client's side of the `hubbub.v1` wire format (`docs/protocol.md`), sans I/O.

Decoders turn server frames into typed values; every one takes a decoded JSON object and
raises `ProtocolViolation` (and nothing else) when the frame does not have the shape the
protocol promises, so that a broken or foreign server gives one clear error instead of a
`KeyError` deep inside the client.

Encoders build the requests the client sends: each returns the request without its `ref`,
which `encode` adds when the request is actually sent (the session hands out refs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson

from hubbub.client.errors import HubbubError, ProtocolViolation
from hubbub.client.events import (
    Ack,
    HistoryPage,
    Member,
    Message,
    PresenceEvent,
    Reset,
    RoomInfo,
)
from hubbub.core.protocol import ID_RULE, MESSAGE_ID

T = TypeVar("T")

Request = dict[str, Any]
"""A client request as a JSON object, before its `ref` is added."""

PresenceKind = Literal["join", "leave", "nick"]
_PRESENCE_KINDS: dict[str, PresenceKind] = {"join": "join", "leave": "leave", "nick": "nick"}


# -- requests (client -> server) ------------------------------------------------------


def encode(request: Request, ref: int) -> str:
    """The text frame that sends `request`; the server echoes `ref` in its reply."""
    return orjson.dumps({**request, "ref": ref}).decode()


def join_request(rooms: Iterable[str]) -> Request:
    return {"type": "join", "rooms": list(rooms)}


def rejoin_request(since: Iterable[tuple[str, int, str]]) -> Request:
    """Join again after a reconnection: (room, offset, epoch) of the last message accepted
    in each room, so that the server replays exactly what came after it."""
    return {
        "type": "join",
        "rooms": [
            {"room": room, "since": {"offset": offset, "epoch": epoch}}
            for room, offset, epoch in since
        ],
    }


def leave_request(rooms: Iterable[str]) -> Request:
    return {"type": "leave", "rooms": list(rooms)}


def publish_request(room: str, text: str | None, data: Any,
                    message_id: str | None = None) -> Request:
    """`message_id` (checked by `message_id`) makes the publish idempotent: a repeat with
    the same id within the server's window is answered with the original's ack."""
    request: Request = {"type": "publish", "room": room}
    if text is not None:
        request["text"] = text
    if data is not None:
        request["data"] = data
    if message_id is not None:
        request["id"] = message_id
    return request


def message_id(value: str | None) -> str | None:
    """A publisher-chosen message id as the server will take it; `ValueError` (saying the
    rule) for one it would refuse, so that a bad id fails before anything is sent."""
    if value is not None and (not isinstance(value, str)
                              or MESSAGE_ID.fullmatch(value) is None):
        raise ValueError(f"bad message id {value!r}: {ID_RULE}")
    return value


def history_request(
    room: str, *, limit: int | None, before: int | None, after: int | None
) -> Request:
    request: Request = {"type": "history", "room": room}
    for name, value in (("limit", limit), ("before", before), ("after", after)):
        if value is not None:
            request[name] = value
    return request


def nick_request(nick: str) -> Request:
    return {"type": "nick", "nick": nick}


def refresh_request(token: str) -> Request:
    return {"type": "refresh", "token": token}


def members_request(room: str) -> Request:
    return {"type": "members", "room": room}


def rooms_request() -> Request:
    return {"type": "rooms"}


def ping_request() -> Request:
    return {"type": "ping"}


# -- server frames -> typed values -----------------------------------------------------


def decode(frame: str | bytes) -> dict[str, Any]:
    """One text frame → a JSON object with a string `type`."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolViolation(f"server sent a frame that is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolViolation("server sent a JSON frame that is not an object")
    if not isinstance(obj.get("type"), str):
        raise ProtocolViolation("server sent a frame without a string 'type'")
    return obj


def field(obj: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = obj.get(name)
    # bool is an int subclass; an offset of `true` is a violation, not 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolViolation(
            f"server's {obj.get('type', 'frame')!s} has no valid {name!r} "
            f"(expected {kind.__name__}, got {type(value).__name__})"
        )
    return value


def objects(obj: Mapping[str, Any], name: str, what: str) -> list[dict[str, Any]]:
    """The list `name`, every item of which must be a JSON object (`what` names one)."""
    items = field(obj, name, list)
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolViolation(f"server sent {what} that is not an object")
    return items


def optional(obj: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    if obj.get(name) is None:
        return None
    return field(obj, name, kind)


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server's first frame: this connection's id and nickname, and the server's limits."""

    id: str
    nick: str
    limits: dict[str, Any]


def welcome(obj: Mapping[str, Any]) -> Welcome:
    """A frame already known to be of type `welcome`; `limits` is optional (older servers)."""
    limits = obj.get("limits")
    return Welcome(
        id=field(obj, "id", str),
        nick=field(obj, "nick", str),
        limits=limits if isinstance(limits, dict) else {},
    )


def member(obj: object) -> Member:
    if not isinstance(obj, dict):
        raise ProtocolViolation("server sent a member that is not an object")
    return Member(id=field(obj, "id", str), nick=field(obj, "nick", str))


def members(obj: Mapping[str, Any]) -> tuple[Member, ...]:
    return tuple(member(item) for item in field(obj, "members", list))


@dataclass(frozen=True, slots=True)
class JoinedRoom:
    """One entry of a `joined` reply: the room's latest position and members, and whether
    the messages after the `since` the client asked for are being replayed."""

    room: str
    offset: int
    epoch: str
    recovered: bool
    reason: str
    """Why recovery failed (`epoch_changed`, ...); meaningless when `recovered`."""
    members: tuple[Member, ...]


def joined(obj: Mapping[str, Any]) -> tuple[JoinedRoom, ...]:
    return tuple(
        JoinedRoom(
            room=field(item, "room", str),
            offset=field(item, "offset", int),
            epoch=field(item, "epoch", str),
            recovered=item.get("recovered", True) is not False,
            reason=str(item.get("reason") or "unknown"),
            members=members(item),
        )
        for item in objects(obj, "rooms", "a joined room")
    )


def room_names(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A list of room names, as in `left`'s `rooms` or `refreshed`'s `left`."""
    return tuple(str(room) for room in field(obj, name, list))


def message(obj: Mapping[str, Any], own_ids: frozenset[str] | set[str] = frozenset()) -> Message:
    sender = optional(obj, "sender", str)
    text = optional(obj, "text", str)
    return Message(
        room=field(obj, "room", str),
        offset=field(obj, "offset", int),
        epoch=field(obj, "epoch", str),
        id=field(obj, "id", str),
        nick=field(obj, "from", str),
        sender=sender,
        text=text,
        data=obj.get("data"),
        ts=field(obj, "ts", int),
        own=sender is not None and sender in own_ids,
    )


def ack(obj: Mapping[str, Any]) -> Ack:
    return Ack(
        room=field(obj, "room", str),
        id=field(obj, "id", str),
        offset=field(obj, "offset", int),
        epoch=field(obj, "epoch", str),
        ts=field(obj, "ts", int),
        duplicate=obj.get("duplicate") is True,
    )


def reset(obj: Mapping[str, Any]) -> Reset:
    return Reset(
        room=field(obj, "room", str),
        epoch=field(obj, "epoch", str),
        offset=field(obj, "offset", int),
        reason=str(obj.get("reason") or "unknown"),
    )


def history_page(obj: Mapping[str, Any], own_ids: frozenset[str] | set[str]) -> HistoryPage:
    msgs = tuple(message(item, own_ids) for item in objects(obj, "messages", "a history entry"))
    return HistoryPage(
        room=field(obj, "room", str),
        epoch=field(obj, "epoch", str),
        offset=field(obj, "offset", int),
        messages=msgs,
        has_more=field(obj, "has_more", bool),
    )


def presence(obj: Mapping[str, Any]) -> PresenceEvent:
    raw = field(obj, "event", str)
    kind = _PRESENCE_KINDS.get(raw)
    if kind is None:
        raise ProtocolViolation(f"server sent an unknown presence event {raw!r}")
    return PresenceEvent(
        room=field(obj, "room", str),
        event=kind,
        member=member(obj.get("member")),
        old_nick=optional(obj, "old_nick", str),
    )


def room_list(obj: Mapping[str, Any]) -> tuple[RoomInfo, ...]:
    return tuple(
        RoomInfo(
            room=field(item, "room", str),
            members=field(item, "members", int),
            offset=field(item, "offset", int),
        )
        for item in objects(obj, "rooms", "a room entry")
    )


def error(obj: Mapping[str, Any], *, retry_after: int | None = None) -> HubbubError:
    """An `error` frame (or HTTP error body); `retry_after` (ms) from elsewhere (an HTTP
    `Retry-After`) when the body has none."""
    in_body = obj.get("retry_after")
    if isinstance(in_body, int) and not isinstance(in_body, bool):
        retry_after = in_body
    return HubbubError(
        str(obj.get("code", "unknown")),
        str(obj.get("reason", "(no reason given)")),
        retry_after=retry_after,
    )
