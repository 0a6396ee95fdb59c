"""The wire schema: every event the server sends, as the JSON object it is on the wire.

This module is the one owner of the events' shapes (docs/protocol.md, docs/http-api.md):
the hub, the WebSocket adapter and the HTTP API build every server event here, and encode
it through a connection's codec (`hubbub.core.codec`). Where the HTTP API answers with the
same thing as a WebSocket event (a stored message, a history page, a publish's receipt, a
member or room list), its body is the event's body without `type` and `ref`, built by the
same function, so that a message object has one shape everywhere.

Builders return plain dicts in the order the fields appear on the wire; nothing here
encodes, sends or reads a socket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits
from hubbub.core.message import Message
from hubbub.core.protocol import Ref
from hubbub.core.store import HistoryPage, RoomState

Event = dict[str, Any]
"""One server event or HTTP body, ready to encode."""


def _event(kind: str, ref: Ref | None, body: Mapping[str, Any]) -> Event:
    """`type`, then `ref` (only when the request had one), then the body's fields."""
    event: Event = {"type": kind}
    if ref is not None:
        event["ref"] = ref
    event.update(body)
    return event


# --- messages ------------------------------------------------------------------------------


def message(m: Message) -> Event:
    """A stored message: live, replayed, and inside history pages (WebSocket and HTTP)."""
    event: Event = {
        "type": "message",
        "room": m.room,
        "offset": m.offset,
        "epoch": m.epoch,
        "id": m.id,
        "from": m.nick,
        "sender": m.sender,
    }
    if m.text is not None:
        event["text"] = m.text
    if m.data is not None:
        event["data"] = m.data
    event["ts"] = m.ts
    return event


def receipt(m: Message) -> Event:
    """Where a publication was stored: the HTTP publish answer, and the body of `ack`."""
    fields: Event = {"room": m.room, "id": m.id, "offset": m.offset, "epoch": m.epoch,
                     "ts": m.ts}
    if m.duplicate:
        fields["duplicate"] = True
    return fields


def ack(m: Message, ref: Ref | None) -> Event:
    return _event("ack", ref, receipt(m))


def history(room: str, page: HistoryPage) -> Event:
    """One page of a room's history: the HTTP history answer, and the body of `history_page`."""
    return {"room": room, "epoch": page.state.epoch, "offset": page.state.offset,
            "messages": [message(m) for m in page.messages], "has_more": page.has_more}


def history_page(ref: Ref | None, body: Event) -> Event:
    """`body` is `history(...)`, as `Hub.history` returns it."""
    return _event("history_page", ref, body)


# --- connections and rooms -----------------------------------------------------------------


def welcome(*, protocol: str, server: str, conn_id: str, nick: str,
            heartbeat: int | float, limits: Limits) -> Event:
    """The first event on a JSON connection: who it is, and the limits it must keep."""
    return {"type": "welcome", "protocol": protocol, "server": server, "id": conn_id,
            "nick": nick, "heartbeat": heartbeat, "limits": {
                "max_frame_bytes": limits.max_frame_bytes,
                "max_text_bytes": limits.max_text_bytes,
                "max_rooms": limits.max_rooms,
                "history_page_max": limits.history_page_max,
                "rate_per_second": limits.rate_per_second,
                "rate_burst": limits.rate_burst,
            }}


def member(conn_id: str, nick: str) -> Event:
    """One member of a room, as presence events and member lists show it."""
    return {"id": conn_id, "nick": nick}


@dataclass(frozen=True, slots=True)
class JoinedRoom:
    """One room of a `joined` reply: its boundary (`state`), and why the client's copy
    could not be recovered, if it could not (`reason`, e.g. `history_truncated`)."""

    room: str
    state: RoomState
    reason: str | None = None


def joined(ref: Ref | None, rooms: Sequence[JoinedRoom],
           members: Callable[[str], Sequence[Event]]) -> Event:
    """`members(room)` gives a room's member list (see `member`); the hub reads the lists
    only for a codec that `shows_members`."""
    entries = []
    for entry in rooms:
        fields: Event = {"room": entry.room, "epoch": entry.state.epoch,
                         "offset": entry.state.offset, "recovered": entry.reason is None}
        if entry.reason is not None:
            fields["reason"] = entry.reason
        fields["members"] = list(members(entry.room))
        entries.append(fields)
    return _event("joined", ref, {"rooms": entries})


def left(ref: Ref | None, rooms: Sequence[str]) -> Event:
    return _event("left", ref, {"rooms": list(rooms)})


def nick_set(ref: Ref | None, nick: str) -> Event:
    return _event("nick_set", ref, {"nick": nick})


def presence(room: str, kind: str, who: Event, old_nick: str | None = None) -> Event:
    """`kind` is `join`, `leave` or `nick` (which also says the `old_nick`)."""
    event: Event = {"type": "presence", "room": room, "event": kind, "member": who}
    if old_nick is not None:
        event["old_nick"] = old_nick
    return event


def members_body(room: str, members: Sequence[Event]) -> Event:
    """A room's members: the HTTP members answer, and the body of `member_list`."""
    return {"room": room, "members": list(members)}


def member_list(ref: Ref | None, room: str, members: Sequence[Event]) -> Event:
    return _event("member_list", ref, members_body(room, members))


def reset(room: str, state: RoomState, reason: str) -> Event:
    """The room's history was lost under its members (the broker lost its data): the
    client reloads the room from this epoch and offset."""
    return {"type": "reset", "room": room, "epoch": state.epoch, "offset": state.offset,
            "reason": reason}


def room_entry(room: str, members: int, offset: int) -> Event:
    """One room of a room list: its live member count and its latest offset."""
    return {"room": room, "members": members, "offset": offset}


def room_page(entries: Sequence[Event], has_more: bool) -> Event:
    """One page of the room list: the HTTP rooms answer, and the body of `room_list`."""
    return {"rooms": list(entries), "has_more": has_more}


def room_list(ref: Ref | None, entries: Sequence[Event], has_more: bool) -> Event:
    return _event("room_list", ref, room_page(entries, has_more))


def refreshed(ref: Ref | None, expires: int | float | None, left: Sequence[str]) -> Event:
    return _event("refreshed", ref, {"expires": expires, "left": list(left)})


def pong(ref: Ref | None) -> Event:
    return _event("pong", ref, {})


def error_body(code: str, reason: str) -> Event:
    """A refusal: every HTTP error answer, and the body of `error`. `code` is an
    `ErrorCode`'s value, or one of the HTTP layer's own (docs/http-api.md)."""
    return {"code": code, "reason": reason}


def error(code: ErrorCode, reason: str, ref: Ref | None = None, *,
          retry_after: int | None = None) -> Event:
    """A refused request; `retry_after` (milliseconds) only for `rate_limited`. The `ref`
    follows the body here, unlike in replies, as clients have always seen it."""
    event: Event = {"type": "error"}
    event.update(error_body(code.value, reason))
    if ref is not None:
        event["ref"] = ref
    if retry_after is not None:
        event["retry_after"] = retry_after
    return event
