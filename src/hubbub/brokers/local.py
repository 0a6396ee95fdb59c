"""`LocalBroker`: one node, over a `MessageStore` (SQLite by default, or memory).

The store already keeps the broker contract's ordering and delivery promises for a single
process (`hubbub.core.store`: it hands each stored message to its listener in offset order,
in the step that makes `room_state` report it), so this broker adds only what a store does
not know: which rooms the node is subscribed to, and publisher-chosen ids.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from functools import partial

from hubbub.core.broker import DEDUPE_WINDOW_S, Broker, Node, Presence
from hubbub.core.message import Draft, Message
from hubbub.core.store import (
    HistoryPage,
    MessageStore,
    Outcome,
    RoomState,
    StoreError,
    report,
)

MAX_REMEMBERED_IDS = 100_000
"""Publisher-chosen ids one node remembers at once. Past it the oldest are forgotten before
their window ends, so that a stream of idempotent publishes cannot grow the server without
bound (docs/protocol.md, "Idempotent publish")."""


class RecentIds:
    """Publisher-chosen ids per room, for `window` seconds: each maps to the stored message,
    or, while its publish is pending, to the outcomes waiting for it."""

    def __init__(self, window: float = DEDUPE_WINDOW_S,
                 cap: int = MAX_REMEMBERED_IDS) -> None:
        self._window = window
        self._cap = cap
        self._seen: dict[tuple[str, str], tuple[float, Message | list[Outcome]]] = {}
        self._order: deque[tuple[float, tuple[str, str]]] = deque()
        # Pending ids whose order record `_forget` reached: recorded again once settled.
        self._unrecorded: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, draft: Draft, then: Outcome) -> Outcome | None:
        """The outcome to submit `draft` with, or None when it is a repeat (then `then` is
        answered with the original, now or once the original's outcome is known)."""
        now = time.monotonic()
        self._forget(now)
        key = (draft.room, draft.id)
        seen = self._seen.get(key)
        if seen is not None:
            original = seen[1]
            if isinstance(original, Message):
                report(then, replace(original, duplicate=True))
            else:
                original.append(then)
            return None
        expires = now + self._window
        self._seen[key] = (expires, [then])
        self._order.append((expires, key))
        return partial(self._settled, key)

    def _settled(self, key: tuple[str, str], outcome: Message | StoreError) -> None:
        entry = self._seen.get(key)
        if entry is None or isinstance(entry[1], Message):  # forgotten early (the cap)
            return
        waiting = entry[1]
        unrecorded = key in self._unrecorded
        self._unrecorded.discard(key)
        if isinstance(outcome, Message):
            self._seen[key] = (entry[0], outcome)
            if unrecorded:  # out of expiry order at the end: forgotten a little late
                self._order.append((entry[0], key))
            repeat: Message | StoreError = replace(outcome, duplicate=True)
        else:
            del self._seen[key]  # refused: a retry may store it
            repeat = outcome
        report(waiting[0], outcome)
        for then in waiting[1:]:
            report(then, repeat)

    def _forget(self, now: float) -> None:
        order, seen = self._order, self._seen
        while order and (order[0][0] <= now or len(seen) >= self._cap):
            expires, key = order.popleft()
            entry = seen.get(key)
            # Only the entry this record was made for, and never a pending one (its waiters
            # must be answered): that one is recorded again when it settles.
            if entry is None or entry[0] != expires:
                continue
            if isinstance(entry[1], Message):
                del seen[key]
            else:
                self._unrecorded.add(key)


class LocalBroker(Broker):
    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self._subscribed: set[str] = set()
        self._recent = RecentIds()

    def listen(self, node: Node) -> None:
        super().listen(node)
        self.store.listen(node.deliver)  # straight from the store's commit step

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    def usable(self) -> bool:
        return self.store.usable()

    def publish(self, draft: Draft, then: Outcome) -> None:
        if draft.dedupe:
            claimed = self._recent.claim(draft, then)
            if claimed is None:
                return
            then = claimed
        if draft.room not in self._subscribed:
            # Nobody here holds the room: if its first message fails, forget it again.
            then = partial(self._discard_on_failure, draft.room, then)
        self.store.submit(draft, then)

    def _discard_on_failure(self, room: str, then: Outcome,
                            outcome: Message | StoreError) -> None:
        if isinstance(outcome, StoreError) and room not in self._subscribed:
            self.store.discard(room)
        then(outcome)

    async def subscribe(self, room: str) -> None:
        self._subscribed.add(room)

    def unsubscribe(self, room: str) -> None:
        self._subscribed.discard(room)
        self.store.discard(room)

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        return await self.store.room_state(room, create=create)

    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        return await self.store.read(room, after=after, before=before, limit=limit)

    async def rooms(self) -> dict[str, int]:
        return {name: state.offset for name, state in (await self.store.rooms()).items()}

    async def room_count(self) -> int:
        return await self.store.room_count()

    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        return await self.store.trim(max_count=max_count, max_age_ms=max_age_ms, now_ms=now_ms)

    def presence(self, local: Presence) -> Presence:
        return local
