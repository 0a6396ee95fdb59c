"""The message store interface: durable per-room history with offsets and epochs.

Implementations: `MemoryStore` (`hubbub.stores.memory`, for tests and throwaway rooms) and
`SQLiteStore` (`hubbub.stores.sqlite`, the default). A Redis store must fit the same interface.

Contract every implementation keeps (tests in `tests/stores/test_contract.py` run against
each):

- Offsets in a room start at 1 and increase by exactly 1 per appended message within one
  epoch; `submit` assigns them in the order it is called (it takes the message's place
  synchronously, before it returns; `append` is `submit` awaited).
- A submitted message's outcome is reported exactly once: the stored `Message` only once it
  is stored as durably as the store promises, or a `StoreError`, and then the message is
  not stored and its offset is not used.
- An epoch changes only when a room's history is lost or reset; a new epoch restarts
  offsets from 1.
- Retention (`trim`) removes the oldest messages; it never changes offsets or the epoch.
- Every stored message is handed to the listener (`listen`) exactly once, on the event
  loop, in offset order per room, in the same step that makes `room_state` report it and
  before its outcome is reported. So at every moment on the loop, a room's
  `room_state().offset` is the highest offset the listener has been given: everything at
  or below it has been delivered, everything above it will be, later. The hub's join
  boundary rests on this (see `Hub.join`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from hubbub.core.message import Draft, Message

log = logging.getLogger("hubbub.store")

Listener = Callable[[Sequence[Message]], None]
"""Receives stored messages (see the module docstring for when and in which order)."""


class StoreError(Exception):
    """The store could not do what was asked; nothing was stored."""

    client_reason = "the message store is unavailable; nothing was stored"
    """What a client is told (the details are for the server's log)."""


class StoreOpenError(StoreError):
    """The store cannot be opened (unwritable, corrupt, locked, newer schema)."""


Outcome = Callable[[Message | StoreError], None]
"""Told, once, what became of one submitted message: stored (the `Message`, with its offset
and epoch) or refused (the `StoreError`; nothing was stored)."""


def report(then: Outcome, outcome: Message | StoreError) -> None:
    """Stores and brokers report every outcome through this: a caller whose `then` fails
    must not keep the other outcomes of a batch from theirs, nor see its message refused
    after it was stored."""
    try:
        then(outcome)
    except Exception:
        log.exception("a store outcome callback failed")


def new_epoch() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class RoomState:
    epoch: str
    offset: int
    """The latest offset (0 when the room has no messages yet)."""
    first_offset: int
    """The oldest offset still stored (`offset + 1` when none are)."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    state: RoomState
    messages: list[Message]
    """Ascending by offset."""
    has_more: bool


class MessageStore(abc.ABC):
    """Per-room history. All methods are coroutines so that I/O-bound stores fit."""

    _listener: Listener | None = None

    def listen(self, listener: Listener) -> None:
        """Hand every message stored from now on to `listener` (one listener per store)."""
        self._listener = listener

    def _stored(self, messages: Sequence[Message]) -> None:
        """Implementations call this for each batch they store, at the moment the contract
        says (the module docstring). A failing listener must not fail the appends: their
        messages are stored."""
        listener = self._listener
        if listener is None or not messages:
            return
        try:
            listener(messages)
        except Exception:
            log.exception("the store's listener failed on %d messages", len(messages))

    _report = staticmethod(report)

    on_commit: Callable[[float, int], None] | None = None
    """Set by whoever watches the store (the server's metrics): a store that writes in
    transactions calls it after each successful one with its duration in seconds and the
    number of writes it held. It may be called from the store's own thread."""

    def usable(self) -> bool:
        """False while the store cannot take writes (not open, closing, or its last
        commit failed); `/readyz` reports it."""
        return True

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store; raise `StoreOpenError` with a one-line reason if impossible."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Finish every pending write, then release resources."""

    @abc.abstractmethod
    def submit(self, draft: Draft, then: Outcome) -> None:
        """Give `draft` the room's next place in the store's order now, and call `then` with
        its outcome later, on the loop (or before returning, for a store that needs no I/O,
        or one that refuses at once). Never raises for a store failure: `then` gets it.

        A store that writes in batches reports a whole batch in one loop step: its rooms'
        states advance, the listener gets its messages, then each `then` runs, in the
        order they were submitted. So the commit of many appends costs one event-loop
        callback, not a future, a task and a wake-up each; and a caller that answers from
        `then` (a connection's acks) answers in submission order without a task of its own.
        """

    async def append(self, draft: Draft) -> Message:
        """Store `draft` at the room's next offset (creating the room if needed): `submit`,
        awaited. Raises `StoreError` if it was not stored."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.submit(draft, partial(settle, future))
        return await future

    @abc.abstractmethod
    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        """The room's epoch and offsets; `None` for an unknown room unless `create`.

        A room created here has no message yet: its epoch is fixed (its first message gets
        it) but nothing needs to be written for it, and `discard` forgets it again."""

    @abc.abstractmethod
    def discard(self, room: str) -> None:
        """Forget a room that has never had a message and has no append pending (a room
        joined and left without a word leaves no trace); any other room is kept."""

    @abc.abstractmethod
    async def room_count(self) -> int:
        """How many rooms the store knows, those with no message yet included."""

    @abc.abstractmethod
    async def read(
        self,
        room: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
    ) -> HistoryPage | None:
        """Up to `limit` messages, ascending; `None` for an unknown room.

        - `after` only: the oldest messages with offset > after; `has_more` if newer exist.
        - `before` only, or neither: the newest messages with offset < before;
          `has_more` if older exist.
        - both: the oldest messages with after < offset < before.
        """

    @abc.abstractmethod
    async def rooms(self) -> dict[str, RoomState]:
        """Every known room."""

    @abc.abstractmethod
    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        """Apply retention to every room; return how many messages were removed."""


def settle(future: asyncio.Future[Message], outcome: Message | StoreError) -> None:
    """Resolve `future` with an `Outcome`'s value (an `Outcome` for whoever awaits one)."""
    if future.done():  # the awaiting task was cancelled
        return
    if isinstance(outcome, StoreError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
