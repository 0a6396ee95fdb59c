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
from collections.abc import Iterator

import pytest

from support.server import ServerProcess, running
from support.storm import TAIL, check, join_and_check, publishing, read_until
from support.wsclient import Event, join, json_client, unique

pytestmark = pytest.mark.timeout(180)

ROUNDS = 12
"""Rounds of simultaneous joins per test; each round joins every form several times."""

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


@pytest.mark.parametrize("form", ["since", "history", "plain"])
async def test_many_joins_while_publishing_have_no_gap_and_no_duplicate(
        busy_server: ServerProcess, form: str) -> None:
    room = unique(f"busy-{form}")
    async with publishing(busy_server, room) as publisher:
        for _ in range(ROUNDS):
            await asyncio.gather(*(join_and_check(busy_server, publisher, room, form)
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
                got_a = await read_until(client, a, entries[a]["offset"] + TAIL)
                got_b = await read_until(client, b, entries[b]["offset"] + TAIL)
                await check(publisher, a, got_a, since + 1, "since in a two-room join")
                await check(publisher, b, got_b, entries[b]["offset"] - 2,
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
            got += await read_until(client, room,
                                     max(again["rooms"][0]["offset"], entry["offset"] + TAIL))
        await check(publisher, room, got, entry["offset"] + 1, "live member rejoining")
