"""Pipelined publishes: a client that does not wait for acks, against a real server.

The server starts each publish's append as soon as its frame is read (see `Connection` in
`hubbub.engine.hub`); these tests hold it to the promises in docs/protocol.md, "Pipelining":
replies in request order, offsets in send order, nothing lost or reordered at a disconnect.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from hubbub.brokers.local import LocalBroker
from hubbub.core.codec import Wire
from hubbub.core.limits import Limits
from hubbub.core.message import Draft
from hubbub.core.store import Outcome
from hubbub.engine.fanout import Socket, make_fanout
from hubbub.engine.hub import MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES, Hub
from hubbub.stores.memory import MemoryStore
from hubbub.stores.sqlite import SQLiteStore
from support.memsocket import MemorySocket
from support.rawws import OP_TEXT, RawWebSocket, frame
from support.server import ServerFactory, ServerProcess, running
from support.wsclient import Event, JsonClient, join, json_client, plain_client, unique

pytestmark = pytest.mark.timeout(120)

COUNT = 200
"""Publishes sent without waiting: several times the server's per-connection bound (32),
so the read loop has to stop at the bound and go on again."""

REPLIES = ("ack", "error", "history_page", "pong")


@pytest.fixture(scope="module", params=[("memory", "auto"), ("sqlite", "auto"),
                                        ("sqlite", "sequential")],
                ids=lambda param: "-".join(param))
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # `sequential` delivery awaits each socket, so a publish's task can suspend after its
    # commit too: replies must stay in order without relying on `auto` never suspending.
    store, fanout = request.param
    with running(tmp_path_factory, "--store", store, "--fanout", fanout,
                 "--rate-per-second", "0", "--history-page-max", "1000",
                 "--plain-history", "0") as started:
        yield started


async def send_publishes(client: JsonClient, room: str, count: int, tag: str = "m") -> None:
    for i in range(count):
        await client.send({"type": "publish", "room": room, "text": f"{tag}{i}",
                           "ref": f"{tag}{i}"})


async def replies_until(client: JsonClient, ref: str) -> tuple[list[Event], list[Event]]:
    """Replies (acks, errors, pages, pongs) up to the one with `ref`, and the messages."""
    replies: list[Event] = []
    messages: list[Event] = []
    while not replies or replies[-1].get("ref") != ref:
        event = await client.recv(30)
        if event["type"] in REPLIES:
            replies.append(event)
        elif event["type"] == "message":
            messages.append(event)
    return replies, messages


async def test_replies_come_in_request_order_and_history_sees_every_publish(
        server: ServerProcess) -> None:
    room = unique("pipe")
    async with json_client(server.ws_url) as client:
        await join(client, room)
        await send_publishes(client, room, COUNT)
        await client.send({"type": "history", "room": room, "limit": 1000, "ref": "h"})
        replies, messages = await replies_until(client, "h")

    acks, page = replies[:-1], replies[-1]
    assert [r["type"] for r in acks] == ["ack"] * COUNT, [r for r in acks if r["type"] != "ack"]
    assert [a["ref"] for a in acks] == [f"m{i}" for i in range(COUNT)]
    # Nobody else publishes here, so send order is exactly offset order from 1.
    assert [a["offset"] for a in acks] == list(range(1, COUNT + 1))
    assert page["type"] == "history_page" and page["offset"] == COUNT
    assert [(m["offset"], m["text"]) for m in page["messages"]] == [
        (a["offset"], a["ref"]) for a in acks]
    # The sender's own copies were delivered in offset order too (those that came before
    # the history reply; the rest may follow it).
    offsets = [m["offset"] for m in messages]
    assert offsets == list(range(1, len(offsets) + 1))


async def test_two_pipelining_connections_get_unique_gap_free_offsets_in_send_order(
        server: ServerProcess) -> None:
    room = unique("pair")

    async def publisher(tag: str) -> list[Event]:
        async with json_client(server.ws_url) as client:
            await join(client, room)
            await send_publishes(client, room, COUNT, tag)
            await client.send({"type": "ping", "ref": "end"})
            replies, _ = await replies_until(client, "end")
        assert [r["ref"] for r in replies] == [f"{tag}{i}" for i in range(COUNT)] + ["end"]
        return replies[:-1]

    first, second = await asyncio.gather(publisher("a"), publisher("b"))
    for acks in (first, second):
        assert all(a["type"] == "ack" for a in acks), [a for a in acks if a["type"] != "ack"]
        offsets = [a["offset"] for a in acks]
        assert offsets == sorted(offsets) and len(set(offsets)) == COUNT
    assert sorted(a["offset"] for a in first + second) == list(range(1, 2 * COUNT + 1))


async def test_plain_text_lines_and_refusals_keep_their_order(server: ServerProcess) -> None:
    too_long = "x" * (8 * 1024 + 1)  # the default max_text_bytes is 8 KiB
    lines = [f"line {i}" for i in range(COUNT)]
    lines[COUNT // 2] = too_long
    async with plain_client(server.ws_url, nick="piper") as client:
        for line in lines:
            await client.send(line)
        received = [await client.recv(30) for _ in lines]
    expected = [f"piper: {line}" for line in lines]
    expected[COUNT // 2] = "error: text is longer than 8192 bytes"
    assert received == expected


async def test_a_refused_publish_is_answered_in_turn(server: ServerProcess) -> None:
    room, elsewhere = unique("turn"), unique("not-joined")
    async with json_client(server.ws_url) as client:
        await join(client, room)
        await send_publishes(client, room, 20, "a")
        await client.send({"type": "publish", "room": elsewhere, "text": "no", "ref": "x"})
        await send_publishes(client, room, 20, "b")
        await client.send({"type": "ping", "ref": "end"})
        replies, _ = await replies_until(client, "end")
    assert [(r["type"], r["ref"]) for r in replies] == [
        *[("ack", f"a{i}") for i in range(20)], ("error", "x"),
        *[("ack", f"b{i}") for i in range(20)], ("pong", "end")]
    assert replies[20]["code"] == "not_joined"
    assert [r["offset"] for r in replies if r["type"] == "ack"] == list(range(1, 41))


# ------------------------------------------------------------------ SQLite, own servers


def closed_line(server: ServerProcess) -> tuple[int, int]:
    found = re.search(r"closed after (\d+) appends in (\d+) commits", server.log_text())
    assert found, server.log_text()[-2000:]
    return int(found[1]), int(found[2])


def assert_clean_log(server: ServerProcess) -> None:
    log = server.log_text()
    for bad in ("Traceback", "never retrieved", "was destroyed but it is pending"):
        assert bad not in log, log[-3000:]


async def test_one_connection_fills_group_commits(start_server: ServerFactory) -> None:
    # Without pipelining a lone connection's appends reach the store one at a time, so
    # every append is a commit of its own: commits == appends.
    server = start_server("--rate-per-second", "0")
    async with json_client(server.ws_url) as client:
        await join(client, "fill")
        await send_publishes(client, "fill", COUNT)
        await client.send({"type": "ping", "ref": "end"})
        replies, _ = await replies_until(client, "end")
    assert [r["type"] for r in replies] == ["ack"] * COUNT + ["pong"]
    assert server.stop() == 0
    appends, commits = closed_line(server)
    assert appends == COUNT
    assert commits <= COUNT // 2, f"{appends} appends took {commits} commits"
    assert_clean_log(server)


async def test_publishes_in_flight_at_a_disconnect_are_stored_in_order(
        start_server: ServerFactory) -> None:
    server = start_server("--rate-per-second", "0", "--history-page-max", "1000")
    room = "dropped"
    raw = await RawWebSocket.connect(server.port, protocol="hubbub.v1")

    async def next_event() -> Event:
        while True:
            got = await raw.read_frame(30)
            if got.opcode == OP_TEXT:
                event: Event = json.loads(got.payload)
                return event

    assert (await next_event())["type"] == "welcome"
    await raw.send_text(json.dumps({"type": "join", "rooms": [room], "ref": "j"}))
    while (await next_event()).get("ref") != "j":
        pass
    total = 300
    await raw.send(b"".join(
        frame(OP_TEXT, json.dumps({"type": "publish", "room": room, "text": f"m{i}",
                                   "ref": i}).encode())
        for i in range(total)))
    acked: list[Event] = []
    while len(acked) < 10:
        event = await next_event()
        if event["type"] == "ack":
            acked.append(event)
    raw.abort()  # with up to 32 publishes in flight and more frames unread

    async with json_client(server.ws_url) as client:
        await client.assert_alive()
        await join(client, room)
        # Some publishes may still be finishing; whichever are stored by now must be a
        # prefix of the sent ones, because appends are committed in frame order.
        page = await client.expect("history", room=room, limit=1000)
        stored: list[dict[str, Any]] = page["messages"]
    texts = [m["text"] for m in stored]
    assert texts == [f"m{i}" for i in range(len(texts))], texts[:5]
    assert [m["offset"] for m in stored] == list(range(1, len(stored) + 1))
    for ack in acked:
        assert stored[ack["offset"] - 1]["text"] == f"m{ack['ref']}"
    assert server.stop(signal.SIGTERM) == 0
    assert_clean_log(server)


# ------------------------------------------------------------------ the bound, in process


async def test_a_connection_stops_reading_at_max_in_flight_publishes() -> None:
    # In process, because what is measured is how far `handle_text` (the read loop's only
    # call) gets while the store holds every append; over a socket that is hidden in TCP
    # buffers.
    held: list[tuple[Draft, Outcome]] = []
    entered: list[str | None] = []

    class HeldStore(MemoryStore):
        def submit(self, draft: Draft, then: Outcome) -> None:
            entered.append(draft.text)
            held.append((draft, then))

    store = HeldStore()
    hub = Hub(LocalBroker(store), make_fanout("auto", 1 << 22), Limits(rate_per_second=0))
    sock = MemorySocket()
    conn = hub.connect(hub.fanout.outlet(cast(Socket, sock)), nick="n", wire=Wire.JSON)
    await conn.handle_text(json.dumps({"type": "join", "rooms": ["r"]}))
    total = MAX_IN_FLIGHT + 8

    async def read_loop() -> None:
        for i in range(total):
            await conn.handle_text(json.dumps({"type": "publish", "room": "r",
                                               "text": f"m{i}", "ref": i}))

    reader = asyncio.create_task(read_loop())
    for _ in range(100):
        await asyncio.sleep(0)
    assert entered == [f"m{i}" for i in range(MAX_IN_FLIGHT)]
    assert not reader.done()
    while held or not reader.done():
        await asyncio.sleep(0)
        batch, held[:] = list(held), []
        for draft, then in batch:
            MemoryStore.submit(store, draft, then)
    await reader
    await conn.settle()
    await asyncio.sleep(0)  # the outbox is flushed once per loop pass
    acks = [e for e in sock.events() if e["type"] == "ack"]
    assert [(a["ref"], a["offset"]) for a in acks] == [(i, i + 1) for i in range(total)]


async def test_a_connection_stops_reading_at_max_in_flight_bytes() -> None:
    held: list[tuple[Draft, Outcome]] = []

    class HeldStore(MemoryStore):
        def submit(self, draft: Draft, then: Outcome) -> None:
            held.append((draft, then))

    store = HeldStore()
    hub = Hub(LocalBroker(store), make_fanout("auto", 1 << 24),
              Limits(rate_per_second=0, max_frame_bytes=64 * 1024))
    conn = hub.connect(hub.fanout.outlet(cast(Socket, MemorySocket())), nick="n",
                       wire=Wire.JSON)
    await conn.handle_text(json.dumps({"type": "join", "rooms": ["r"]}))
    big = {"blob": "x" * 60_000}  # `text` is capped far lower; `data` only by the frame
    frames = [json.dumps({"type": "publish", "room": "r", "data": big, "ref": i})
              for i in range(40)]
    fits = MAX_IN_FLIGHT_BYTES // len(frames[0])

    async def read_loop() -> None:
        for text in frames:
            await conn.handle_text(text)

    reader = asyncio.create_task(read_loop())
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(held) == fits < len(frames)  # the bytes bound, not the count, stopped it
    draft, then = held.pop(0)
    MemoryStore.submit(store, draft, then)  # one answered: one more may come in
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(held) == fits
    reader.cancel()


async def test_pipelined_publishes_into_sqlite_take_no_task_each(tmp_path: Path) -> None:
    # The batch path: a commit's one loop callback answers every publish of its batch, so
    # a connection with hundreds of publishes in flight adds no task per publish.
    store = SQLiteStore(tmp_path / "hubbub.sqlite3")
    await store.open()
    try:
        hub = Hub(LocalBroker(store), make_fanout("auto", 1 << 24), Limits(rate_per_second=0))
        sock = MemorySocket()
        conn = hub.connect(hub.fanout.outlet(cast(Socket, sock)), nick="n", wire=Wire.JSON)
        await conn.handle_text(json.dumps({"type": "join", "rooms": ["r"]}))
        tasks_before = len(asyncio.all_tasks())
        for i in range(500):
            await conn.handle_text(json.dumps({"type": "publish", "room": "r",
                                               "text": f"m{i}", "ref": i}))
        assert len(asyncio.all_tasks()) == tasks_before
        await conn.settle()
        await asyncio.sleep(0)  # the outbox is flushed once per loop pass
        acks = [e for e in sock.events() if e["type"] == "ack"]
        assert [(a["ref"], a["offset"]) for a in acks] == [(i, i + 1) for i in range(500)]
        assert store.commits < 500  # they shared commits
    finally:
        await store.close()
