"""A publisher that never stops, and joins checked against it exactly.

The join boundary's contract (docs/protocol.md, "The join boundary"): everything at or below
a room's `joined.offset` reaches the member only through its replay (`since`) or history
(`history: N`), never live; everything above it exactly once, in offset order. `publishing`
keeps rooms busy from one server; `join_and_check` joins on any server (the same one, or
another node of the deployment) and checks the joiner's sequence: contiguous from the
expected first offset, no repeats, each message's id the one its publisher was acked with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from support.server import ServerProcess
from support.wsclient import Event, JsonClient, join, json_client

IN_FLIGHT = 8
"""Publishes the publisher keeps waiting for acks, as in the issue's reproduction."""

TAIL = 12
"""Live messages above the boundary each joiner must see before its sequence is judged."""


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


async def read_until(client: JsonClient, room: str, last: int) -> list[Event]:
    """The room's message events as they arrive, until one with offset >= `last`."""
    got: list[Event] = []
    while not got or got[-1]["offset"] < last:
        event = await client.wait_for(lambda e: e["type"] == "message" and e["room"] == room)
        got.append(event)
    return got


async def check(publisher: Publisher, room: str, got: list[Event], first: int,
                 what: str) -> None:
    offsets = [m["offset"] for m in got]
    expected = list(range(first, first + len(got)))
    assert offsets == expected, f"{what}: expected {first}.. contiguous, got {offsets}"
    await publisher.wait_past(room, offsets[-1])  # its ack may still be on its way
    for message in got:
        assert message["id"] == publisher.ids[room, message["offset"]], (what, message)


async def join_and_check(server: ServerProcess, publisher: Publisher, room: str,
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
        got = await read_until(client, room, boundary + TAIL)
        first = {"since": (since or 0) + 1, "history": boundary - 4, "plain": boundary + 1}[form]
        await check(publisher, room, got, first, f"{form} join at {boundary}")
