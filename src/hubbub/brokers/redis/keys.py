"""Key and channel names. Every key of a room carries `{<room>}`, its hash tag."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomKeys:
    room: str
    meta: str
    log: str
    members: str
    info: str
    channel: str
    id_prefix: str

    def id(self, message_id: str) -> str:
        return self.id_prefix + message_id


def room_keys(prefix: str, room: str) -> RoomKeys:
    # Room names never hold braces (`hubbub.core.names`), so the tag is the whole name.
    base = f"{prefix}:{{{room}}}:"
    return RoomKeys(room=room, meta=base + "meta", log=base + "log", members=base + "members",
                    info=base + "info", channel=base + "channel", id_prefix=base + "id:")


def rooms_key(prefix: str) -> str:
    """The set of every room's name (for room lists; not per room, so not hash-tagged)."""
    return f"{prefix}:rooms"


def node_channel(prefix: str, node_id: str) -> str:
    """A node's own channel: the listener's liveness probe goes through it."""
    return f"{prefix}:node:{node_id}"
