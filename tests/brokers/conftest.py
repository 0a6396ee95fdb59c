"""Brokers under test: every contract test runs against each factory in `FACTORIES`.

A broker implementation joins the contract with one entry there (the Redis broker: a
factory that connects to the test session's private `redis-server`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hubbub.brokers.local import LocalBroker
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


@dataclass
class Opened:
    broker: Broker
    node: RecordingNode


@pytest.fixture(params=list(FACTORIES))
def broker_factory(request: pytest.FixtureRequest) -> BrokerFactory:
    return FACTORIES[request.param]


@pytest.fixture
async def opened(broker_factory: BrokerFactory, tmp_path: Path) -> AsyncIterator[Opened]:
    """An open broker listened to by a `RecordingNode`."""
    broker = broker_factory(tmp_path)
    node = RecordingNode()
    broker.listen(node)
    await broker.open()
    yield Opened(broker, node)
    await broker.close()
