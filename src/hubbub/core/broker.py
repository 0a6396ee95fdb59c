"""The broker interface: where a room's messages get their place, are kept, and reach every
node that has members in the room.

A node is one hub (one process). It never delivers a message its broker did not hand it:
publishing goes to the broker, and the broker hands the node, through `Node.deliver`, every
message of the rooms the node has subscribed to. Centrifuge's `broker.go` is the model.

Implementations, side by side: `LocalBroker` (`hubbub.brokers.local`: one process, over a
`MessageStore`, SQLite or memory) and `RedisBroker` (`hubbub.brokers.redis`: many processes
and machines sharing rooms). The contract, which `tests/brokers/test_contract.py` runs
against each:

- `publish` takes the message's place in its room synchronously, before it returns: two
  publishes of one caller are stored in the order they were made. `then` is told once what
  became of it: the stored `Message` (with its offset and epoch) or a `StoreError`
  (`BrokerUnavailable` when the broker cannot be reached in time); then nothing was stored.
- Offsets and epochs are the store's (`hubbub.core.store`): contiguous from 1 per epoch, and
  an epoch changes only when a room's history was lost.
- A draft with `dedupe` set is idempotent on its id: while the room remembers that id
  (`DEDUPE_WINDOW_S`), a repeat stores nothing, delivers nothing, and is told the original
  message with `duplicate=True`, whatever its text.
- Once `subscribe(room)` has returned, every message stored in the room is handed to
  `Node.deliver` exactly once, in offset order. While subscribed, `room_state(room)` reports
  as `offset` the highest offset handed to the node: everything at or below it has been
  delivered, everything above it will be. The hub's join boundary rests on this
  (`Hub.join`).
- An epoch change under a subscription (the broker lost the room's data) is told through
  `Node.reset` before any message of the new epoch is delivered.
- `announce` tells the other nodes subscribed to a room about a presence change there
  (`Node.presence_changed`); the announcing node tells its own members itself.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

from hubbub.core.events import Event
from hubbub.core.message import Draft, Message
from hubbub.core.store import HistoryPage, Outcome, RoomState, StoreError

DEDUPE_WINDOW_S = 300.0
"""How long a room remembers a publisher-chosen message id (docs/protocol.md,
"Idempotent publish"): a retry within it is answered with the original message."""


class BrokerUnavailable(StoreError):
    """The broker could not be reached in time; nothing was stored (or, for a read,
    nothing could be read). Clients get `unavailable` (HTTP 503 with Retry-After)."""

    client_reason = "the message broker is unreachable; nothing was stored, retry shortly"


class Node(Protocol):
    """What a broker hands events to: the hub."""

    def deliver(self, messages: Sequence[Message]) -> None:
        """Stored messages of subscribed rooms, in offset order per room."""

    def reset(self, room: str, state: RoomState) -> None:
        """The room's epoch changed under a subscription: its history before `state` is
        gone, and delivery goes on from `state.offset`."""

    def presence_changed(self, room: str, kind: str, member: Event,
                         old_nick: str | None) -> None:
        """A member on another node joined, left, or changed its nick."""


class Presence(abc.ABC):
    """Who is in a room, as the whole deployment sees it. The node's own members are the
    node's `Membership`; a shared presence adds those of the other nodes."""

    async def add(self, room: str, member: Event) -> None:  # noqa: B027 - optional hook
        """`member` (a `events.member`) is now live in `room` on this node."""

    async def remove(self, room: str, member_id: str) -> None:  # noqa: B027 - optional hook
        """The member left `room` on this node."""

    async def rename(self, room: str, member: Event) -> None:  # noqa: B027 - optional hook
        """The member's nick changed."""

    @abc.abstractmethod
    async def members(self, room: str) -> list[Event]:
        """Every live member of the room."""

    @abc.abstractmethod
    async def counts(self, rooms: Sequence[str]) -> dict[str, int]:
        """Live members per room (rooms with none may be left out)."""


class Broker(abc.ABC):
    """Publishing, history and cross-node delivery for one node (see the module docstring
    for the contract)."""

    _node: Node | None = None

    def listen(self, node: Node) -> None:
        """Hand this node every event from now on (one node per broker)."""
        self._node = node

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and prepare; raise `StoreOpenError` with a one-line reason if impossible."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Finish every pending publish, then release resources."""

    def usable(self) -> bool:
        """False while publishes would be refused (`/readyz` answers 503 then)."""
        return True

    def health(self) -> str:
        """"up" or "down", for `/healthz`'s body."""
        return "up" if self.usable() else "down"

    @property
    def listener_restarts(self) -> int:
        """Times the broker restarted its own subscription listener (`/metrics`:
        `hubbub_broker_listener_restarts_total`); always 0 for a broker that has none."""
        return 0

    @abc.abstractmethod
    def publish(self, draft: Draft, then: Outcome) -> None:
        """Give `draft` its room's next place now; tell `then` its outcome later (or before
        returning, for a broker that needs no I/O). Never raises for a broker failure."""

    @abc.abstractmethod
    async def subscribe(self, room: str) -> None:
        """Return once every message stored in `room` from now on will reach the node (for
        Redis: once the subscription is confirmed and the room's position read). Called
        for each join; cheap when the room is subscribed already. Raises `StoreError`."""

    @abc.abstractmethod
    def unsubscribe(self, room: str) -> None:
        """The node's last member left `room`: stop delivering it (a broker may wait a
        little, for a member that comes right back). A room that was never written to is
        forgotten, so joining leaves no trace."""

    @abc.abstractmethod
    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        """As `MessageStore.room_state`; for a subscribed room, as of what the node was
        handed (see the contract)."""

    @abc.abstractmethod
    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        """As `MessageStore.read`."""

    @abc.abstractmethod
    async def rooms(self) -> dict[str, int]:
        """Every room the deployment knows, with its latest offset (the room list's)."""

    @abc.abstractmethod
    async def room_count(self) -> int:
        """How many rooms the deployment knows."""

    @abc.abstractmethod
    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        """Apply retention; return how many messages were removed (as far as known)."""

    @abc.abstractmethod
    def presence(self, local: Presence) -> Presence:
        """The presence the hub should use, given the node's own (`local`): `local` itself
        for a single node, a shared one for a deployment."""

    def announce(self, room: str, kind: str, member: Event,  # noqa: B027 - optional hook
                 old_nick: str | None = None) -> None:
        """Tell the other nodes in `room` about a presence change of a member of this node
        (nothing to do for a single node)."""
