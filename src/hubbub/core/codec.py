"""Wire formats: how one connection's frames are read and its events written.

A connection speaks one wire format for its whole life, chosen when it connects (the
WebSocket adapter picks it by subprotocol) and kept as its codec, so that the hub calls
`conn.codec.ack(...)`, `conn.codec.error(...)` and never asks which kind of client it
talks to. The events themselves are built in `hubbub.core.events`; a codec decides how (and
whether) each one goes out in its format:

- `Wire.JSON`, the `hubbub.v1` protocol: every event, as compact JSON.
- `Wire.PLAIN`, the teaching note's plain-text protocol: each line a client sends is a
  publication to `LOBBY`; it receives messages as `<name>: <text>` lines and refusals as
  `error: <reason>`, and nothing else (no welcome, acks, presence or replies).

A method returns None for an event its format does not carry: `Connection.send` then
sends nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Final

import orjson

from hubbub.core import events
from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.events import Event, JoinedRoom
from hubbub.core.limits import Limits
from hubbub.core.message import Message

LOBBY = "lobby"
"""The one room of plain-text clients: they are joined to it on connect and every line
they send is published to it."""


class Wire(enum.StrEnum):
    """A connection's wire format. Rooms keep their live members apart by it, and the
    delivery engine's audience keys are `(room name, Wire)`, so that `Hub.deliver` encodes
    a message once per format per room, never per recipient, and hands each format's
    members one payload without a per-recipient branch.

    A `StrEnum` because those keys are hashed on every fan-out: a plain `Enum` hashes in
    Python (`Enum.__hash__`), a `StrEnum` with `str`'s C hash, about three times faster."""

    JSON = "json"
    PLAIN = "plain"


class JsonCodec:
    """`hubbub.v1`: requests are JSON objects, and every event is sent."""

    __slots__ = ()
    wire: Final = Wire.JSON
    shows_members: Final = True
    """Its `joined` carries each room's member list (which may cost a read from Redis)."""

    def decode(self, text: str, limits: Limits) -> p.Request:
        return p.parse_request(text, limits)

    def peek_ref(self, text: str) -> p.Ref | None:
        return p.peek_ref(text)

    def message(self, m: Message) -> bytes:
        return orjson.dumps(events.message(m))

    def error(self, code: ErrorCode, reason: str, ref: p.Ref | None = None, *,
              retry_after: int | None = None) -> bytes:
        return orjson.dumps(events.error(code, reason, ref, retry_after=retry_after))

    def ack(self, m: Message, ref: p.Ref | None) -> bytes | None:
        return orjson.dumps(events.ack(m, ref))

    def joined(self, ref: p.Ref | None, rooms: Sequence[JoinedRoom],
               members: Callable[[str], Sequence[Event]]) -> bytes | None:
        return orjson.dumps(events.joined(ref, rooms, members))

    def presence(self, room: str, kind: str, who: Event,
                 old_nick: str | None = None) -> bytes | None:
        return orjson.dumps(events.presence(room, kind, who, old_nick))

    def event(self, event: Event) -> bytes | None:
        """Any other event (a welcome, or the reply to a request only JSON clients make)."""
        return orjson.dumps(event)


class PlainCodec:
    """The plain-text protocol: a line in is a publication, a line out a message or an
    error; no other event has a plain-text form."""

    __slots__ = ()
    wire: Final = Wire.PLAIN
    shows_members: Final = False

    def decode(self, text: str, limits: Limits) -> p.Request:
        p.validate_body(text, None, limits)
        return p.Publish(LOBBY, text, None, None)

    def peek_ref(self, text: str) -> p.Ref | None:
        return None  # a line has no ref

    def message(self, m: Message) -> bytes:
        body = m.text if m.text is not None else orjson.dumps(m.data).decode()
        return f"{m.nick}: {body}".encode()

    def error(self, code: ErrorCode, reason: str, ref: p.Ref | None = None, *,
              retry_after: int | None = None) -> bytes:
        return f"error: {reason}".encode()

    def ack(self, m: Message, ref: p.Ref | None) -> bytes | None:
        return None

    def joined(self, ref: p.Ref | None, rooms: Sequence[JoinedRoom],
               members: Callable[[str], Sequence[Event]]) -> bytes | None:
        return None

    def presence(self, room: str, kind: str, who: Event,
                 old_nick: str | None = None) -> bytes | None:
        return None

    def event(self, event: Event) -> bytes | None:
        return None


Codec = JsonCodec | PlainCodec

CODECS: Final[dict[Wire, Codec]] = {Wire.JSON: JsonCodec(), Wire.PLAIN: PlainCodec()}
"""One codec per format, shared by every connection of it (codecs hold no state)."""
