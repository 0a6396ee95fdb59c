"""The `hubbub.v1` JSON protocol's requests: parse client frames into them.

The events the server sends are built in `hubbub.core.events` and encoded by a
connection's codec (`hubbub.core.codec`).

Parsing never raises anything but `ProtocolError`, whatever the input; the property tests
in `tests/core/test_protocol_properties.py` hold it to that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hubbub.core.codes import ErrorCode
from hubbub.core.limits import MAX_DATA_DEPTH, Limits
from hubbub.core.names import NICK_RULE, ROOM_RULE, clean_nick, clean_room

SUBPROTOCOL = "hubbub.v1"
MAX_REF_CHARS = 64
DEFAULT_HISTORY_LIMIT = 50
ROOM_PAGE = 100
"""Rooms in one `room_list` page unless the request asks for fewer or more."""
ROOM_PAGE_MAX = 1000
"""Most rooms in one page: a room list costs the server the page, not every room."""

Ref = str | int


class ProtocolError(Exception):
    """A request the server refuses; becomes an `error` reply to the sender."""

    def __init__(self, code: ErrorCode, reason: str, ref: Ref | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class JoinSpec:
    room: str
    since: Position | None = None
    history: int | None = None


@dataclass(frozen=True, slots=True)
class Nick:
    nick: str
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Join:
    specs: tuple[JoinSpec, ...]
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    rooms: tuple[str, ...]
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    room: str
    text: str | None
    data: Any
    ref: Ref | None = None
    id: str | None = None
    """A publisher-chosen message id, which makes the publish idempotent (`validate_id`)."""


@dataclass(frozen=True, slots=True)
class History:
    room: str
    limit: int
    before: int | None = None
    after: int | None = None
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Members:
    room: str
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class RoomList:
    """A `rooms` request: one page of the room list."""

    ref: Ref | None = None
    after: str | None = None
    """Only rooms whose names sort after this one (the previous page's last)."""
    limit: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    token: str
    ref: Ref | None = None


Request = Nick | Join | Leave | Publish | History | Members | RoomList | Ping | Refresh


def parse_request(frame: str | bytes, limits: Limits) -> Request:
    """Turn one text frame into a request, or raise `ProtocolError` saying what is wrong."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "frame must be a JSON object")
    ref = _ref(obj)
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown request type {kind!r}; expected one of {', '.join(_PARSERS)}",
            ref,
        )
    try:
        request = parser(obj, ref, limits)
        check_integers(frame)  # after the fields' own checks, which name the field
        return request
    except ProtocolError as exc:
        exc.ref = ref
        raise


INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""The integers a frame may hold: what orjson parses and encodes exactly. orjson turns
integer literals beyond them into floats, so they are refused instead (see `check_integers`)."""

_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


class _IntegerOutOfRange(Exception):
    pass


def _exact_int(literal: str) -> int:
    try:
        value = int(literal)
    except ValueError:  # more digits than Python converts (sys.int_info.str_digits_check_threshold)
        raise _IntegerOutOfRange from None
    if not INT_MIN <= value <= INT_MAX:
        raise _IntegerOutOfRange
    return value


def check_integers(frame: str | bytes) -> None:
    """Refuse a JSON text (already parsed by orjson) holding an integer beyond 64 bits.

    orjson would have parsed it as a float, silently changing the number. Refused rather
    than kept: keeping it would take the standard library's `json` (several times slower)
    on every path a message takes (parse, store, live frame, replay, history page), since
    orjson can neither parse nor encode it, and browsers lose it anyway. Only a text with a
    run of 19 digits can hold one, so the slower parser, which reports every integer
    literal, runs only for those; the hot path pays one regex scan.
    """
    if isinstance(frame, bytes):
        if _LONG_DIGITS_BYTES.search(frame) is None:
            return
    elif _LONG_DIGITS.search(frame) is None:
        return
    try:
        json.loads(frame, parse_int=_exact_int)
    except _IntegerOutOfRange:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"integers must be from {INT_MIN} to {INT_MAX}; send larger ones as strings",
        ) from None
    except (ValueError, RecursionError):
        pass  # orjson accepted it; the standard library is stricter about some texts


def peek_ref(frame: str | bytes) -> Ref | None:
    """The frame's `ref` if it has a valid one, else None; for refusing a frame unread."""
    try:
        obj = orjson.loads(frame)
        return _ref(obj) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, ProtocolError):
        return None


def _ref(obj: Mapping[str, Any]) -> Ref | None:
    ref = obj.get("ref")
    if ref is None:
        return None
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "ref must be a string or an integer")
    if isinstance(ref, str) and len(ref) > MAX_REF_CHARS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"ref is longer than {MAX_REF_CHARS}")
    if isinstance(ref, int) and not -(2**53) < ref < 2**53:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "ref is out of range")
    return ref


def _room(value: object, field: str = "room") -> str:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{field} must be a string")
    room = clean_room(value)
    if room is None:
        raise ProtocolError(ErrorCode.INVALID_ROOM, ROOM_RULE)
    return room


MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_RULE = "id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"


def validate_id(value: object) -> str:
    """A publisher-chosen message id: 1-64 characters of `A-Z a-z 0-9 _ -` (so it is safe
    in a URL, a log line and a Redis key). A publish that carries one is idempotent: a
    repeat within the broker's window is answered with the original message."""
    if not isinstance(value, str) or MESSAGE_ID.fullmatch(value) is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, ID_RULE)
    return value


def validate_nick(value: object) -> str:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "nick must be a string")
    nick = clean_nick(value)
    if nick is None:
        raise ProtocolError(ErrorCode.INVALID_NICK, NICK_RULE)
    return nick


def _offset(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{field} must be a non-negative integer")
    if not 0 <= value < 2**63:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{field} must be a non-negative integer")
    return value


def _count(value: object, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"{field} must be an integer from 1 to {maximum}"
        )
    return value


def validate_body(text: object, data: object, limits: Limits) -> tuple[str | None, Any]:
    """The text/data pair of a publication, shared by the WebSocket and HTTP paths."""
    if text is None and data is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a message needs text or data")
    if text is not None:
        if not isinstance(text, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "text must be a string")
        if len(text.encode("utf-8", "surrogatepass")) > limits.max_text_bytes:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"text is longer than {limits.max_text_bytes} bytes",
            )
    return text, data


def validate_data(data: object) -> None:
    """Refuse `data` that could not be encoded back out, before anything is stored: nested
    deeper than `MAX_DATA_DEPTH`, or not JSON at all (an in-process publisher's objects).
    A stored message must always be deliverable, replayable and listable."""
    if data is None or isinstance(data, str | int | float | bool):
        return
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DATA_DEPTH:
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"data is nested deeper than {MAX_DATA_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)
    try:
        orjson.dumps(data)
    except TypeError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"data cannot be encoded as JSON: {exc}") \
            from None


def _parse_nick(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Nick:
    return Nick(validate_nick(obj.get("nick")), ref)


def _join_spec(item: object, limits: Limits) -> JoinSpec:
    if isinstance(item, str):
        return JoinSpec(_room(item))
    if not isinstance(item, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "rooms must hold room names or objects")
    room = _room(item.get("room"))
    since_obj = item.get("since")
    since = None
    if since_obj is not None:
        if not isinstance(since_obj, dict):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "since must be {offset, epoch}")
        epoch = since_obj.get("epoch")
        if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "since.epoch must be a string")
        since = Position(_offset(since_obj.get("offset"), "since.offset"), epoch)
    history = item.get("history")
    if history is not None:
        history = _count(history, "history", limits.history_page_max)
        if since is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "give since or history, not both")
    return JoinSpec(room, since, history)


def _room_items(obj: Mapping[str, Any]) -> list[object]:
    rooms = obj.get("rooms")
    if rooms is None and "room" in obj:
        rooms = [obj["room"]]
    if not isinstance(rooms, list) or not rooms:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "rooms must be a non-empty list")
    return rooms


def _parse_join(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Join:
    items = _room_items(obj)
    if len(items) > limits.max_rooms:
        raise ProtocolError(ErrorCode.TOO_MANY_ROOMS, f"at most {limits.max_rooms} rooms")
    specs = tuple(_join_spec(item, limits) for item in items)
    if len({spec.room for spec in specs}) != len(specs):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a room is named twice")
    return Join(specs, ref)


def _parse_leave(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Leave:
    items = _room_items(obj)
    if len(items) > limits.max_rooms:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"at most {limits.max_rooms} rooms")
    return Leave(tuple(dict.fromkeys(_room(item) for item in items)), ref)


def _parse_publish(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Publish:
    room = _room(obj.get("room"))
    text, data = validate_body(obj.get("text"), obj.get("data"), limits)
    message_id = obj.get("id")
    return Publish(room, text, data, ref,
                   None if message_id is None else validate_id(message_id))


def _parse_history(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> History:
    room = _room(obj.get("room"))
    limit = obj.get("limit", DEFAULT_HISTORY_LIMIT)
    limit = _count(limit, "limit", limits.history_page_max)
    before = obj.get("before")
    after = obj.get("after")
    return History(
        room,
        limit,
        None if before is None else _offset(before, "before"),
        None if after is None else _offset(after, "after"),
        ref,
    )


def _parse_members(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Members:
    return Members(_room(obj.get("room")), ref)


def _parse_room_list(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> RoomList:
    after = obj.get("after")
    if after is not None and (not isinstance(after, str) or len(after) > 256):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "after must be a room name")
    return RoomList(ref, after, _count(obj.get("limit", ROOM_PAGE), "limit", ROOM_PAGE_MAX))


def _parse_ping(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Ping:
    return Ping(ref)


def _parse_refresh(obj: Mapping[str, Any], ref: Ref | None, limits: Limits) -> Refresh:
    token = obj.get("token")
    if not isinstance(token, str) or not token or len(token) > limits.max_text_bytes:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "token must be a non-empty string")
    return Refresh(token, ref)


_PARSERS: dict[str, Callable[[Mapping[str, Any], Ref | None, Limits], Request]] = {
    "nick": _parse_nick,
    "join": _parse_join,
    "leave": _parse_leave,
    "publish": _parse_publish,
    "history": _parse_history,
    "members": _parse_members,
    "rooms": _parse_room_list,
    "ping": _parse_ping,
    "refresh": _parse_refresh,
}
