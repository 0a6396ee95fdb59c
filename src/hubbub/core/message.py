"""Messages: what a publisher hands in (`Draft`) and what the store hands back (`Message`).

How a message looks on the wire is `hubbub.core.events.message` (JSON) and the plain-text
codec's line (`hubbub.core.codec`)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any


def new_message_id() -> str:
    return secrets.token_urlsafe(12)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Draft:
    """A message before the store has given it an offset."""

    room: str
    nick: str
    sender: str | None
    text: str | None = None
    data: Any = None
    id: str = field(default_factory=new_message_id)
    ts: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message: `offset` is strictly increasing per room within one `epoch`."""

    room: str
    offset: int
    epoch: str
    id: str
    nick: str
    sender: str | None
    text: str | None
    data: Any
    ts: int

    @classmethod
    def from_draft(cls, draft: Draft, *, offset: int, epoch: str) -> Message:
        return cls(
            room=draft.room,
            offset=offset,
            epoch=epoch,
            id=draft.id,
            nick=draft.nick,
            sender=draft.sender,
            text=draft.text,
            data=draft.data,
            ts=draft.ts,
        )
