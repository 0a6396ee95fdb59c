"""`MemoryStore`: history kept in process memory, lost on exit (its epochs say so)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hubbub.core.message import Draft, Message
from hubbub.core.store import HistoryPage, MessageStore, Outcome, RoomState, new_epoch


@dataclass(slots=True)
class _Room:
    epoch: str = field(default_factory=new_epoch)
    offset: int = 0
    messages: list[Message] = field(default_factory=list)

    def state(self) -> RoomState:
        first = self.messages[0].offset if self.messages else self.offset + 1
        return RoomState(self.epoch, self.offset, first)


class MemoryStore(MessageStore):
    def __init__(self, *, max_per_room: int | None = None) -> None:
        self._rooms: dict[str, _Room] = {}
        self._max_per_room = max_per_room

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room()
        return room

    def submit(self, draft: Draft, then: Outcome) -> None:
        room = self._room(draft.room)
        room.offset += 1
        message = Message.from_draft(draft, offset=room.offset, epoch=room.epoch)
        room.messages.append(message)
        if self._max_per_room is not None and len(room.messages) > self._max_per_room * 2:
            # Trimmed in halves so that appends stay O(1) amortised.
            del room.messages[: len(room.messages) - self._max_per_room]
        self._stored((message,))
        self._report(then, message)

    def discard(self, room: str) -> None:
        found = self._rooms.get(room)
        if found is not None and found.offset == 0:
            del self._rooms[room]

    async def room_count(self) -> int:
        return len(self._rooms)

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        if create:
            return self._room(room).state()
        found = self._rooms.get(room)
        return None if found is None else found.state()

    async def read(
        self,
        room: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
    ) -> HistoryPage | None:
        found = self._rooms.get(room)
        if found is None:
            return None
        messages = found.messages
        # Stored offsets are contiguous, so positions follow from the first one.
        first = messages[0].offset if messages else found.offset + 1
        lo = 0 if after is None else min(max(after + 1 - first, 0), len(messages))
        hi = len(messages) if before is None else min(max(before - first, 0), len(messages))
        hi = max(hi, lo)
        if after is not None:
            page = messages[lo : min(hi, lo + limit)]
            has_more = lo + limit < hi
        else:
            page = messages[max(lo, hi - limit) : hi]
            has_more = hi - limit > lo
        return HistoryPage(found.state(), list(page), has_more)

    async def rooms(self) -> dict[str, RoomState]:
        return {name: room.state() for name, room in self._rooms.items()}

    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        removed = 0
        for room in self._rooms.values():
            keep_from = 0
            if max_count is not None:
                keep_from = max(keep_from, len(room.messages) - max_count)
            if max_age_ms is not None:
                cutoff = now_ms - max_age_ms
                while keep_from < len(room.messages) and room.messages[keep_from].ts < cutoff:
                    keep_from += 1
            if keep_from:
                del room.messages[:keep_from]
                removed += keep_from
        return removed
