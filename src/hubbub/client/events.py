"""Typed values the client hands out: events from `async for`, and request results.

All are frozen dataclasses, so one event can be handed to several tasks without copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in a room; nicknames need not be unique, `id` tells members apart."""

    id: str
    nick: str


@dataclass(frozen=True, slots=True)
class Message:
    """A message in a room. `nick` is the wire's `from`; `sender` is `None` for messages the
    server or the HTTP API published. `own` is true for messages this client published (on
    any of its connections, so replays after a reconnect count too)."""

    room: str
    offset: int
    epoch: str
    id: str
    nick: str
    sender: str | None
    text: str | None
    data: Any
    ts: int
    own: bool = False

    @property
    def body(self) -> str:
        """`text`, or `data` as compact JSON when there is no text (as plain clients see it)."""
        if self.text is not None:
            return self.text
        return orjson.dumps(self.data).decode()


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's confirmation that a published message is stored. `duplicate` is true
    when a publish carried an `id` the room already held (a retry): nothing new was stored,
    and the ack is the original message's (same `id`, `offset`, `epoch` and `ts`)."""

    room: str
    id: str
    offset: int
    epoch: str
    ts: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a room's history, ascending by offset. `offset` is the room's latest."""

    room: str
    epoch: str
    offset: int
    messages: tuple[Message, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """An entry of the server's room list."""

    room: str
    members: int
    offset: int


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """Someone else joined or left a room, or changed nickname (`old_nick` set then)."""

    room: str
    event: Literal["join", "leave", "nick"]
    member: Member
    old_nick: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection dropped. `will_reconnect` says whether the client tries again."""

    close_code: int | None
    reason: str
    will_reconnect: bool


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The client waits `delay` seconds before reconnection attempt number `attempt`."""

    attempt: int
    delay: float
    error: str | None
    """Why the previous attempt failed (`None` before the first one)."""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The client is connected again and has rejoined every room.

    `recovered` maps each room that was recovered to the number of messages the server is
    replaying (they follow this event, before any live message). Rooms that could not be
    recovered are each announced by a `RecoveryFailed` that follows this event.
    """

    attempt: int
    recovered: dict[str, int]

    @property
    def total_recovered(self) -> int:
        return sum(self.recovered.values())


@dataclass(frozen=True, slots=True)
class RecoveryFailed:
    """The server could not replay what `room` missed (`reason`: `epoch_changed`,
    `history_truncated`, `offset_ahead`). Messages may be missing: reload with `history()`.
    Live messages of the room continue after this event."""

    room: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reset:
    """The server lost `room`'s history under this client (its broker lost the room's data;
    `reason` is `epoch_changed`). The room goes on from `epoch` and `offset`: later messages
    arrive live as usual, and what came before is gone (`history()` shows what the new
    epoch holds). Nothing the client held for the room is trustworthy any more."""

    room: str
    epoch: str
    offset: int
    reason: str


Event = (Message | PresenceEvent | Disconnected | Reconnecting | Reconnected | RecoveryFailed
         | Reset)
