"""Server frames → typed values. Sans-I/O: every function takes a decoded JSON object.

Everything here raises `ProtocolViolation` (and nothing else) when the server's frame does
not have the shape `docs/protocol.md` promises, so that a broken or foreign server gives one
clear error instead of a `KeyError` deep inside the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import orjson

from hubbub.client.errors import HubbubError, ProtocolViolation
from hubbub.client.events import (
    Ack,
    HistoryPage,
    Member,
    Message,
    PresenceEvent,
    RoomInfo,
)

T = TypeVar("T")

PresenceKind = Literal["join", "leave", "nick"]
_PRESENCE_KINDS: dict[str, PresenceKind] = {"join": "join", "leave": "leave", "nick": "nick"}


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


def optional(obj: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    if obj.get(name) is None:
        return None
    return field(obj, name, kind)


def member(obj: object) -> Member:
    if not isinstance(obj, dict):
        raise ProtocolViolation("server sent a member that is not an object")
    return Member(id=field(obj, "id", str), nick=field(obj, "nick", str))


def members(obj: Mapping[str, Any]) -> tuple[Member, ...]:
    return tuple(member(item) for item in field(obj, "members", list))


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
    )


def history_page(obj: Mapping[str, Any], own_ids: frozenset[str] | set[str]) -> HistoryPage:
    items = field(obj, "messages", list)
    msgs = []
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolViolation("server sent a history entry that is not an object")
        msgs.append(message(item, own_ids))
    return HistoryPage(
        room=field(obj, "room", str),
        epoch=field(obj, "epoch", str),
        offset=field(obj, "offset", int),
        messages=tuple(msgs),
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
    rooms = []
    for item in field(obj, "rooms", list):
        if not isinstance(item, dict):
            raise ProtocolViolation("server sent a room entry that is not an object")
        rooms.append(
            RoomInfo(
                room=field(item, "room", str),
                members=field(item, "members", int),
                offset=field(item, "offset", int),
            )
        )
    return tuple(rooms)


def error(obj: Mapping[str, Any]) -> HubbubError:
    retry_after = obj.get("retry_after")
    return HubbubError(
        str(obj.get("code", "unknown")),
        str(obj.get("reason", "(no reason given)")),
        retry_after=retry_after if isinstance(retry_after, int) else None,
    )
