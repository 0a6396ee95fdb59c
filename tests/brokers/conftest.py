"""Brokers under test: every contract test runs against each factory in `FACTORIES` and
against the Redis broker on the test session's private `redis-server` (its own prefix per
test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hubbub.brokers.local import LocalBroker
from hubbub.brokers.redis import RedisBroker
from hubbub.core.broker import Broker
from hubbub.core.events import Event
from hubbub.core.message import Message
from hubbub.core.store import RoomState
from hubbub.stores.memory import MemoryStore
from hubbub.stores.sqlite import SQLiteStore

BrokerFactory = Callable[[Path], Broker]
"""A new, unopened broker whose data (if any) lives under the given empty directory."""

FACTORIES: dict[str, BrokerFactory] = {
    "local-memory": lambda _: LocalBroker(MemoryStore()),
    # A short commit window keeps the tests quick and still batches publishes of one step.
    "local-sqlite": lambda directory: LocalBroker(
        SQLiteStore(directory / "hubbub.sqlite3", durability="batch", commit_window_ms=0.5)),
}


@dataclass
class RecordingNode:
    """The broker's `Node` interface, recording what it is handed (the hub's part)."""

    delivered: list[Message] = field(default_factory=list)
    resets: list[tuple[str, RoomState]] = field(default_factory=list)
    presence: list[tuple[str, str, Event, str | None]] = field(default_factory=list)

    def deliver(self, messages: Sequence[Message]) -> None:
        self.delivered.extend(messages)

    def reset(self, room: str, state: RoomState) -> None:
        self.resets.append((room, state))

    def presence_changed(self, room: str, kind: str, member: Event,
                         old_nick: str | None) -> None:
        self.presence.append((room, kind, member, old_nick))

    def offsets(self, room: str) -> list[int]:
        return [m.offset for m in self.delivered if m.room == room]


    async def settled(self, room: str, count: int, seconds: float = 5.0) -> list[int]:
        """The room's delivered offsets once `count` have arrived (at once for a local
        broker; a Redis broker delivers what its channel carries, after the outcome)."""
        for _ in range(int(seconds / 0.01)):
            if len(self.offsets(room)) >= count:
                break
            await asyncio.sleep(0.01)
        return self.offsets(room)


@dataclass
class Opened:
    broker: Broker
    node: RecordingNode
    local: bool
    """A single node's broker: it delivers a message before telling its outcome, and
    forgets an unused room at once."""


@pytest.fixture(params=[*FACTORIES, "redis"])
def broker_factory(request: pytest.FixtureRequest) -> BrokerFactory:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        # A prefix per directory: each hypothesis example gets rooms of its own.
        return lambda directory: RedisBroker(url, prefix=f"{prefix}:{directory.name}",
                                             timeout=2.0)
    return FACTORIES[request.param]


@pytest.fixture
async def opened(broker_factory: BrokerFactory, tmp_path: Path) -> AsyncIterator[Opened]:
    """An open broker listened to by a `RecordingNode`."""
    broker = broker_factory(tmp_path)
    node = RecordingNode()
    broker.listen(node)
    await broker.open()
    yield Opened(broker, node, isinstance(broker, LocalBroker))
    await broker.close()
