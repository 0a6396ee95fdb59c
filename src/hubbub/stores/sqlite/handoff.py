"""The store's event-loop side: the rooms as the loop knows them, and the hand-off of each
commit from the writer thread to the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hubbub.core.message import Draft, Message
from hubbub.core.store import MessageStore, Outcome, RoomState, StoreError, new_epoch
from hubbub.stores.sqlite.retention import Trim
from hubbub.stores.sqlite.writer import Append, Request

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs

_report = MessageStore._report


class LoopSide:
    """Each room's state on the event loop, the appends queued for the writer, and the steps
    the writer hands its results to. Everything here runs on the loop but `hand_over`.

    Room state is kept twice, once per thread, and that is inherent: the writer's counters
    (`RoomRow`, in `Writer`) advance when a transaction is built, which may still fail, and
    only the writer may touch them; this copy advances in the loop step that hands a
    committed batch to the listener (`stored_batch`), which is what the store contract
    asks `room_state` to match (`core/store.py`), and it answers without I/O. A room joined
    but never written lives only here (`_unwritten_room`). Nothing else keeps a copy: a
    commit's `states` are only the rooms it changed, applied here at once.
    """

    def __init__(self, put: Callable[[Request], None],
                 stored: Callable[[Sequence[Message]], None]) -> None:
        self._put = put
        self._stored = stored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._states: dict[str, RoomState] = {}
        self._first_appends: dict[str, int] = {}  # pending appends per room not yet written

    def start(self, loop: asyncio.AbstractEventLoop, states: dict[str, RoomState]) -> None:
        """Take the rooms the file holds; from now on every result is handed to `loop`."""
        self._loop = loop
        self._states = states

    @property
    def states(self) -> Mapping[str, RoomState]:
        return self._states

    # ---------------------------------------------------------------- loop: requests

    def place(self, draft: Draft, data_json: str | None, then: Outcome) -> None:
        """Queue `draft` for the writer, in submission order (`MessageStore.submit`)."""
        room = draft.room
        state = self._states.get(room)
        first = state is None or state.offset == 0
        if first:
            # A first message: `discard` keeps the room while any is pending.
            if state is None:
                state = self._states[room] = _unwritten_room()
            self._first_appends[room] = self._first_appends.get(room, 0) + 1
        assert state is not None
        self._put(Append(draft, data_json, state.epoch, first, then))

    def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        state = self._states.get(room)
        if state is None and create:
            state = self._states[room] = _unwritten_room()
        return state

    def discard(self, room: str) -> None:
        if room not in self._first_appends:
            state = self._states.get(room)
            if state is not None and state.offset == 0:
                del self._states[room]

    # ---------------------------------------------------------------- writer: hand-off

    def hand_over(self, step: Callable[..., None], *args: Any) -> None:
        """Run `step(*args)` on the loop, in one callback (called by the writer thread): a
        whole batch's outcome is one loop wake-up, whatever its size."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(step, *args)
        except RuntimeError:
            log.error("event loop closed before store results could be reported")

    # ---------------------------------------------------------------- loop: results

    def stored_batch(self, states: dict[str, RoomState], batch: list[Append],
                     messages: list[Message]) -> None:
        # One step, in the order `MessageStore.submit` asks for.
        self._states.update(states)
        self._stored(messages)
        for op, message in zip(batch, messages, strict=True):
            self._settled(op, message)

    def trimmed(self, states: dict[str, RoomState], op: Trim,
                result: tuple[int, list[str]]) -> None:
        self._states.update(states)
        if not op.future.done():
            op.future.set_result(result)

    def refuse(self, ops: list[Append | Trim], reason: str) -> None:
        for op in ops:
            if isinstance(op, Append):
                self._settled(op, StoreError(reason))
            elif not op.future.done():
                op.future.set_exception(StoreError(reason))

    def _settled(self, op: Append, outcome: Message | StoreError) -> None:
        """Report one append's outcome; on the loop, in the step that resolves its batch."""
        if op.first:
            left = self._first_appends[op.draft.room] - 1
            if left:
                self._first_appends[op.draft.room] = left
            else:
                del self._first_appends[op.draft.room]
        _report(op.then, outcome)


def _unwritten_room() -> RoomState:
    """A room joined before it has a message: its epoch is fixed now, on the loop, and
    written with its first message (which takes this epoch, so that members told it at
    join are not told another); until then the room is nowhere in the file, and `discard`
    may forget it unless a first append is pending."""
    return RoomState(new_epoch(), 0, 1)


__all__ = ["LoopSide"]
