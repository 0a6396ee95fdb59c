"""Error codes and close codes: one table each, shared by server, clients and docs.

`docs/protocol.md` prints the same tables; the tests check they agree.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The `code` of an `error` reply. The connection stays open after any of them."""

    BAD_JSON = "bad_json"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"
    INVALID_ROOM = "invalid_room"
    INVALID_NICK = "invalid_nick"
    MESSAGE_TOO_LARGE = "message_too_large"
    NOT_JOINED = "not_joined"
    TOO_MANY_ROOMS = "too_many_rooms"
    ROOM_NOT_FOUND = "room_not_found"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseCode(enum.IntEnum):
    """WebSocket close codes hubbub sends, with whether a client should reconnect."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    UNAUTHORIZED = 4001
    TOO_SLOW = 4008
    RATE_LIMITED = 4029

    @property
    def should_reconnect(self) -> bool:
        return self in _RECONNECT


_RECONNECT = frozenset({CloseCode.GOING_AWAY, CloseCode.INTERNAL_ERROR, CloseCode.TOO_SLOW})
