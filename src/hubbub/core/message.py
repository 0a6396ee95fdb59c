"""Messages: what a publisher hands in (`Draft`) and what the store hands back (`Message`).

How a message looks on the wire is `hubbub.core.events.message` (JSON) and the plain-text
codec's line (`hubbub.core.codec`)."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any

_ID_BYTES = 12
_IDS_PER_READ = 4096


class _RandomIds:
    """Message ids from the OS's random source, read for 4,096 ids at once.

    One `os.urandom` per message was one system call per publish, and each one releases the
    GIL: with the SQLite writer thread waiting for it, the event loop then waited up to the
    interpreter's switch interval (5 ms) to get it back, on every message (docs/storage.md,
    "Where the stalls came from"). The ids are as random as before.
    """

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0
        # A forked worker must not hand out its parent's remaining ids.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._next = b"", 0

    def take(self) -> str:
        start = self._next
        if start + _ID_BYTES > len(self._pool):
            self._pool, start = os.urandom(_ID_BYTES * _IDS_PER_READ), 0
        self._next = start + _ID_BYTES
        # 12 bytes are 16 base64 characters, no padding: what `secrets.token_urlsafe(12)` gave.
        return base64.urlsafe_b64encode(self._pool[start:start + _ID_BYTES]).decode()


new_message_id = _RandomIds().take
"""A new message id: 16 URL-safe characters, 96 random bits."""


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
    dedupe: bool = False
    """The publisher chose `id`: a repeat within the broker's window is the same message
    (`hubbub.core.broker`, idempotent publish)."""


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
    duplicate: bool = False
    """Set only on the copy a repeated publish is answered with (its ack says
    `"duplicate": true`): nothing new was stored. Never stored or delivered."""

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
