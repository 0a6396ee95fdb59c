"""Rooms and membership: who is in which room, and who is still catching up.

A member joins in steps so that recovery has no gap and no duplicate: `begin_join` makes
it collect the room's live messages in a buffer while its history is read and sent;
`take_buffered` hands over what has collected; `go_live` moves it to the live set once the
buffer is empty (the hub does that with no await in between).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hubbub.core.broker import Presence
from hubbub.core.codec import Wire
from hubbub.core.events import Event

M = TypeVar("M")  # a member (the hub's connection object)
P = TypeVar("P")  # what is buffered for a joining member
T = TypeVar("T")


class Joiner(Protocol):
    """A member that knows the names of the rooms it is in (the hub's connection)."""

    id: str
    joined: tuple[str, ...]


J = TypeVar("J", bound=Joiner)


def _by_wire() -> dict[Wire, dict[str, Any]]:
    return {wire: {} for wire in Wire}


@dataclass(slots=True)
class Room(Generic[M, P]):
    """Live members are kept apart by wire format (`live[Wire.JSON]`, `live[Wire.PLAIN]`;
    see `Wire` for why)."""

    name: str
    live: dict[Wire, dict[str, M]] = field(default_factory=_by_wire)
    joining: dict[str, tuple[M, Wire, list[P]]] = field(default_factory=dict)
    _views: dict[Wire, list[Any]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.live_count() + len(self.joining)

    def live_count(self) -> int:
        return sum(len(members) for members in self.live.values())

    def begin_join(self, member_id: str, member: M, wire: Wire = Wire.JSON) -> None:
        self.joining[member_id] = (member, wire, [])

    def buffer(self, item: P, cap: int) -> list[M]:
        """Add `item` to every joining member's buffer; return the members whose buffer it
        took past `cap` (the caller must stop their join: their buffer would grow without
        bound while a replay does not progress)."""
        over: list[M] = []
        for member, _, pending in self.joining.values():
            pending.append(item)
            if len(pending) == cap + 1:
                over.append(member)
        return over

    def take_buffered(self, member_id: str) -> list[P]:
        member, wire, pending = self.joining[member_id]
        self.joining[member_id] = (member, wire, [])
        return pending

    def go_live(self, member_id: str) -> None:
        member, wire, pending = self.joining[member_id]
        if pending:
            raise RuntimeError("go_live with buffered messages would lose them")
        del self.joining[member_id]
        self.live[wire][member_id] = member
        self._views.clear()

    def view(self, wire: Wire, project: Callable[[M], T]) -> list[T]:
        """The live members of one wire format, each mapped through `project`.

        The same list object is returned until somebody goes live or leaves, so that
        delivery can tell by identity that consecutive messages go to the same recipients,
        and a busy room does not rebuild its recipient list for every message. `project`
        must give the same result for a member every time.
        """
        view = self._views.get(wire)
        if view is None:
            view = self._views[wire] = [project(member) for member in self.live[wire].values()]
        return view

    def live_members(self) -> list[M]:
        return [member for members in self.live.values() for member in members.values()]

    def remove(self, member_id: str) -> M | None:
        self._views.clear()
        for members in self.live.values():
            member = members.pop(member_id, None)
            if member is not None:
                return member
        entry = self.joining.pop(member_id, None)
        return None if entry is None else entry[0]


class RoomRegistry(Generic[M, P]):
    """Every room with at least one member, by name; empty rooms are dropped at once."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room[M, P]] = {}

    def get(self, name: str) -> Room[M, P] | None:
        return self._rooms.get(name)

    def get_or_create(self, name: str) -> Room[M, P]:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
        return room

    def remove_member(self, name: str, member_id: str) -> M | None:
        room = self._rooms.get(name)
        if room is None:
            return None
        member = room.remove(member_id)
        if not room:
            del self._rooms[name]
        return member

    def member_count(self, name: str) -> int:
        room = self._rooms.get(name)
        return 0 if room is None else room.live_count()

    def names(self) -> list[str]:
        return list(self._rooms)


class Membership(RoomRegistry[J, P]):
    """Who is in which room on this node, both ways (room -> members, and each member's
    `joined`), kept together here and nowhere else. It tells its caller when a room gets
    its first member on this node and when it empties: the points where the node
    subscribes to the room's messages and unsubscribes (`hubbub.core.broker`)."""

    def enter(self, name: str, member: J, wire: Wire) -> bool:
        """Begin `member`'s join of `name` (see `Room.begin_join`); True if it is the
        room's first member on this node."""
        first = self.get(name) is None
        self.get_or_create(name).begin_join(member.id, member, wire)
        member.joined = (*member.joined, name)
        return first

    def leave(self, name: str, member: J) -> tuple[J | None, bool]:
        """Take `member` out of `name`: what was removed (None if it was not there), and
        whether the room is now empty on this node."""
        member.joined = tuple(room for room in member.joined if room != name)
        removed = self.remove_member(name, member.id)
        return removed, self.get(name) is None


class LocalPresence(Presence):
    """Presence of a single node: its own members are everyone."""

    def __init__(self, registry: RoomRegistry[Any, Any]) -> None:
        self._registry = registry

    async def members(self, room: str) -> list[Event]:
        found = self._registry.get(room)
        return [] if found is None else [m.member() for m in found.live_members()]

    async def counts(self, rooms: Sequence[str]) -> dict[str, int]:
        return {room: self._registry.member_count(room) for room in rooms}
