"""What travels through Redis: a message's body (in the Stream and on the channel, the same
bytes) and the channel's presence notes."""

from __future__ import annotations

from typing import Any

import orjson

from hubbub.core.events import Event
from hubbub.core.message import Draft, Message
from hubbub.stores.sqlite.codec import decode_data, encode_data


def encode_body(draft: Draft) -> bytes:
    """The message without its place (the script adds offset and epoch)."""
    fields: dict[str, Any] = {"id": draft.id, "nick": draft.nick, "ts": draft.ts}
    if draft.sender is not None:
        fields["sender"] = draft.sender
    if draft.text is not None:
        fields["text"] = draft.text
    body = orjson.dumps(fields)
    if draft.data is None:
        return body
    # `data` may hold integers beyond 64 bits, which orjson refuses: its codec keeps them.
    return body[:-1] + b',"data":' + encode_data(draft.data).encode() + b"}"


def message_of(room: str, offset: int, epoch: str, body: dict[str, Any]) -> Message:
    return Message(room=room, offset=offset, epoch=epoch, id=body["id"], nick=body["nick"],
                   sender=body.get("sender"), text=body.get("text"), data=body.get("data"),
                   ts=body["ts"])


def decode(raw: bytes | str) -> Any:
    """A body or a channel payload (integers beyond 64 bits kept exactly)."""
    return decode_data(raw if isinstance(raw, str) else raw.decode())


def presence_note(kind: str, member: Event, old_nick: str | None, node: str) -> bytes:
    note: dict[str, Any] = {"p": kind, "node": node, "member": member}
    if old_nick is not None:
        note["old_nick"] = old_nick
    return orjson.dumps(note)
