"""The join boundary under load: `joined.offset` splits replay from live delivery exactly.

The contract (docs/protocol.md, "The join boundary"): everything at or below a room's
`joined.offset` reaches the member only through its replay (`since`) or history
(`history: N`), never live; everything above it exactly once, in offset order, live or
replayed. These tests hold it while a publisher that never stops keeps the room busy, with
many joins of every form at once, on every store, and check every sequence exactly:
contiguous from the expected first offset, no repeats, each message's id the one its
publisher was acknowledged with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from support.server import ServerProcess, running
from support.wsclient import Event, JsonClient, join, json_client, unique

pytestmark = pytest.mark.timeout(180)

IN_FLIGHT = 8
"""Publishes the publisher keeps waiting for acks, as in the issue's reproduction."""

ROUNDS = 12
"""Rounds of simultaneous joins per test; each round joins every form several times."""

TAIL = 12
"""Live messages above the boundary each joiner must see before its sequence is judged."""

STORES = {
    "sqlite-fsync": ("--store", "sqlite", "--durability", "fsync"),
    "sqlite-batch": ("--store", "sqlite", "--durability", "batch"),
    "memory": ("--store", "memory"),
}


@pytest.fixture(scope="module", params=list(STORES))
def busy_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, *STORES[request.param], "--rate-per-second", "0",
                 "--max-rooms", "100") as server:
        yield server


@dataclass
class Publisher:
    """Publishes to its rooms without pause, `IN_FLIGHT` at a time, and records each ack."""

    client: JsonClient
    rooms: tuple[str, ...]
    ids: dict[tuple[str, int], str] = field(default_factory=dict)
    top: dict[str, int] = field(default_factory=dict)
    epoch: dict[str, str] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        refs = itertools.count(1)
        waiting: dict[str, str] = {}
        rooms = itertools.cycle(self.rooms)
        while True:
            while len(waiting) < IN_FLIGHT:
                ref, room = f"p{next(refs)}", next(rooms)
                waiting[ref] = room
                await self.client.send({"type": "publish", "room": room, "text": ref,
                                        "ref": ref})
            event = await self.client.recv(10)
            if event.get("ref") not in waiting:
                continue  # its own rooms' messages and presence
            room = waiting.pop(event["ref"])
            assert event["type"] == "ack", event
            self.ids[room, event["offset"]] = event["id"]
            self.top[room] = max(self.top.get(room, 0), event["offset"])
            self.epoch[room] = event["epoch"]
            self.progress.set()
            self.progress.clear()

    async def wait_past(self, room: str, offset: int) -> None:
        while self.top.get(room, 0) < offset:
            await asyncio.wait_for(self.progress.wait(), 10)


@contextlib.asynccontextmanager
async def publishing(server: ServerProcess, *rooms: str) -> AsyncIterator[Publisher]:
    async with json_client(server.ws_url, nick="pub") as client:
        await join(client, *rooms)
        publisher = Publisher(client, rooms)
        task = asyncio.create_task(publisher.run())
        try:
            for room in rooms:
                await publisher.wait_past(room, 20)
            yield publisher
            assert not task.done(), task  # it must still be running, not have failed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _read_until(client: JsonClient, room: str, last: int) -> list[Event]:
    """The room's message events as they arrive, until one with offset >= `last`."""
    got: list[Event] = []
    while not got or got[-1]["offset"] < last:
        event = await client.wait_for(lambda e: e["type"] == "message" and e["room"] == room)
        got.append(event)
    return got


async def _check(publisher: Publisher, room: str, got: list[Event], first: int,
                 what: str) -> None:
    offsets = [m["offset"] for m in got]
    expected = list(range(first, first + len(got)))
    assert offsets == expected, f"{what}: expected {first}.. contiguous, got {offsets}"
    await publisher.wait_past(room, offsets[-1])  # its ack may still be on its way
    for message in got:
        assert message["id"] == publisher.ids[room, message["offset"]], (what, message)


async def _join_and_check(server: ServerProcess, publisher: Publisher, room: str,
                          form: str) -> None:
    async with json_client(server.ws_url) as client:
        spec: Any = room
        since = None
        if form == "since":
            since = max(publisher.top[room] - 25, 0)
            spec = {"room": room, "since": {"epoch": publisher.epoch[room], "offset": since}}
        elif form == "history":
            spec = {"room": room, "history": 5}
        entry = (await join(client, spec))["rooms"][0]
        boundary = entry["offset"]
        assert entry["recovered"] is True, entry
        await publisher.wait_past(room, boundary + TAIL)
        got = await _read_until(client, room, boundary + TAIL)
        first = {"since": (since or 0) + 1, "history": boundary - 4, "plain": boundary + 1}[form]
        await _check(publisher, room, got, first, f"{form} join at {boundary}")


@pytest.mark.parametrize("form", ["since", "history", "plain"])
async def test_many_joins_while_publishing_have_no_gap_and_no_duplicate(
        busy_server: ServerProcess, form: str) -> None:
    room = unique(f"busy-{form}")
    async with publishing(busy_server, room) as publisher:
        for _ in range(ROUNDS):
            await asyncio.gather(*(_join_and_check(busy_server, publisher, room, form)
                                   for _ in range(6)))


async def test_joins_of_several_rooms_at_once_have_exact_boundaries(
        busy_server: ServerProcess) -> None:
    a, b = unique("multi-a"), unique("multi-b")
    async with publishing(busy_server, a, b) as publisher:

        async def one() -> None:
            async with json_client(busy_server.ws_url) as client:
                since = max(publisher.top[a] - 10, 0)
                reply = await join(client,
                                   {"room": a, "since": {"epoch": publisher.epoch[a],
                                                         "offset": since}},
                                   {"room": b, "history": 3})
                entries = {e["room"]: e for e in reply["rooms"]}
                for room in (a, b):
                    await publisher.wait_past(room, entries[room]["offset"] + TAIL)
                got_a = await _read_until(client, a, entries[a]["offset"] + TAIL)
                got_b = await _read_until(client, b, entries[b]["offset"] + TAIL)
                await _check(publisher, a, got_a, since + 1, "since in a two-room join")
                await _check(publisher, b, got_b, entries[b]["offset"] - 2,
                       "history in a two-room join")

        for _ in range(ROUNDS // 2):
            await asyncio.gather(*(one() for _ in range(4)))


async def test_rejoining_a_joined_room_repeats_nothing(busy_server: ServerProcess) -> None:
    room = unique("rejoin")
    async with publishing(busy_server, room) as publisher, \
            json_client(busy_server.ws_url) as client:
        entry = (await join(client, room))["rooms"][0]
        got: list[Event] = []
        for _ in range(ROUNDS):
            again = (await join(client, {"room": room, "since": {
                "epoch": publisher.epoch[room], "offset": publisher.top[room] - 5}}))
            assert again["rooms"][0]["recovered"] is True, again
            got += await _read_until(client, room,
                                     max(again["rooms"][0]["offset"], entry["offset"] + TAIL))
        await _check(publisher, room, got, entry["offset"] + 1, "live member rejoining")
