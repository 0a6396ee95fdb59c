"""Durable history through a real server: SIGKILL mid-publish, concurrent publishers, restarts.

Every test runs `hubbub serve` with its default SQLite store in a temp data directory and
talks to it over real HTTP and WebSocket connections.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from support.server import ServerFactory, ServerProcess

PROTOCOL = "hubbub.v1"


async def read_history(session: aiohttp.ClientSession, server: ServerProcess,
                       room: str) -> tuple[str, list[dict[str, Any]]]:
    """The whole history of `room`, page by page with `after`; returns (epoch, messages)."""
    messages: list[dict[str, Any]] = []
    after = 0
    epoch = ""
    while True:
        url = f"{server.url}/api/rooms/{room}/messages"
        async with session.get(url, params={"after": str(after), "limit": "100"}) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        epoch = page["epoch"]
        messages.extend(page["messages"])
        if not page["has_more"]:
            return epoch, messages
        assert page["messages"], "has_more with an empty page"
        after = page["messages"][-1]["offset"]


def assert_contiguous(messages: list[dict[str, Any]], first: int = 1) -> None:
    offsets = [m["offset"] for m in messages]
    assert offsets == list(range(first, first + len(offsets))), offsets[:20]
    ids = [m["id"] for m in messages]
    assert len(set(ids)) == len(ids), "a message id is stored twice"


# ------------------------------------------------------------------ crash safety


async def test_acknowledged_messages_survive_sigkill(start_server: ServerFactory) -> None:
    server = start_server("--rate-per-second", "0")
    total, publishers = 1000, 8
    acked: dict[str, dict[str, Any]] = {}
    attempted = 0
    # The kill lands at a random point in the run: after a random number of acks.
    kill_after = random.randint(100, 900)
    reached = threading.Event()
    killed = threading.Event()
    exit_codes: list[int] = []

    def killer() -> None:
        reached.wait(60)
        exit_codes.append(server.stop(signal.SIGKILL))
        killed.set()

    thread = threading.Thread(target=killer)
    thread.start()
    url = f"{server.url}/api/rooms/crash/messages"
    counter = iter(range(total))

    async def publisher(session: aiohttp.ClientSession) -> None:
        nonlocal attempted
        for n in counter:
            attempted += 1
            try:
                async with session.post(url, json={"text": f"m{n}", "from": "crash"}) as resp:
                    if resp.status == 201:
                        body = await resp.json()
                        acked[body["id"]] = {**body, "text": f"m{n}"}
                        if len(acked) >= kill_after:
                            reached.set()
                    else:
                        assert resp.status >= 500, await resp.text()
            except (aiohttp.ClientError, ConnectionError):
                pass  # the server died under this request: not acknowledged

    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(publisher(session) for _ in range(publishers)))
    finally:
        reached.set()
        await asyncio.to_thread(thread.join, 60)
    assert killed.is_set() and exit_codes == [-signal.SIGKILL]
    assert attempted == total
    assert kill_after <= len(acked) < total, "the kill did not land mid-run"

    server.start()
    async with aiohttp.ClientSession() as session:
        epoch, stored = await read_history(session, server, "crash")
    assert_contiguous(stored)
    by_id = {m["id"]: m for m in stored}
    missing = set(acked) - set(by_id)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    for message_id, ack in acked.items():
        assert by_id[message_id]["offset"] == ack["offset"]
        assert by_id[message_id]["text"] == ack["text"]
        assert ack["epoch"] == epoch
    # Unacknowledged requests may or may not have been stored, but nothing else was.
    assert len(stored) <= total


# ------------------------------------------------------------------ concurrency over WS


@asynccontextmanager
async def ws_client(session: aiohttp.ClientSession, server: ServerProcess,
                    room: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with session.ws_connect(server.ws_url, protocols=(PROTOCOL,)) as ws:
        assert ws.protocol == PROTOCOL
        welcome = await ws.receive_json()
        assert welcome["type"] == "welcome"
        await ws.send_json({"type": "join", "rooms": [room], "ref": "j"})
        while (event := await ws.receive_json())["type"] != "joined":
            pass
        assert event["ref"] == "j"
        yield ws


async def test_concurrent_ws_publishers_get_gap_free_offsets(
    start_server: ServerFactory,
) -> None:
    server = start_server("--rate-per-second", "0")
    publishers, each = 10, 50
    room = "busy"
    async with aiohttp.ClientSession() as session, ws_client(session, server, room) as sub:

        async def publish_all(n: int) -> list[dict[str, Any]]:
            async with ws_client(session, server, room) as ws:
                # Pipelined: every publish is sent before the first ack is read.
                for i in range(each):
                    await ws.send_json({"type": "publish", "room": room,
                                        "text": f"{n}:{i}", "ref": f"{n}:{i}"})
                acks: list[dict[str, Any]] = []
                while len(acks) < each:
                    event = await asyncio.wait_for(ws.receive_json(), 30)
                    assert event["type"] != "error", event
                    if event["type"] == "ack":
                        acks.append(event)
                return acks

        results = await asyncio.gather(*(publish_all(n) for n in range(publishers)))
        received: list[dict[str, Any]] = []
        while len(received) < publishers * each:
            event = await asyncio.wait_for(sub.receive_json(), 30)
            if event["type"] == "message":
                received.append(event)

    all_acks = [a for acks in results for a in acks]
    assert sorted(a["offset"] for a in all_acks) == list(range(1, publishers * each + 1))
    assert len({a["epoch"] for a in all_acks}) == 1
    for n, acks in enumerate(results):
        # Each publisher's acks answer its publishes in order, with rising offsets.
        assert [a["ref"] for a in acks] == [f"{n}:{i}" for i in range(each)]
        assert [a["offset"] for a in acks] == sorted(a["offset"] for a in acks)
    # The subscriber sees exactly offset order, and each message is the acknowledged one.
    assert_contiguous(received)
    ack_by_offset = {a["offset"]: a for a in all_acks}
    for message in received:
        ack = ack_by_offset[message["offset"]]
        assert (message["id"], message["text"]) == (ack["id"], ack["ref"])


# ------------------------------------------------------------------ restart recovery


async def test_history_and_epoch_survive_restart(start_server: ServerFactory) -> None:
    server = start_server("--rate-per-second", "0")
    async with aiohttp.ClientSession() as session:
        sent = []
        for i in range(30):
            body: dict[str, Any] = {"text": f"t{i}"} if i % 2 else {"data": {"i": i}}
            async with session.post(f"{server.url}/api/rooms/keep/messages", json=body) as r:
                assert r.status == 201
                sent.append(await r.json())
        epoch, before = await read_history(session, server, "keep")
    assert {s["epoch"] for s in sent} == {epoch}
    assert server.stop() == 0  # SIGTERM: a clean shutdown

    server.start()
    async with aiohttp.ClientSession() as session:
        epoch_after, after = await read_history(session, server, "keep")
        assert (epoch_after, after) == (epoch, before)
        assert [m["id"] for m in after] == [s["id"] for s in sent]
        async with session.get(f"{server.url}/api/rooms") as r:
            rooms = {entry["room"]: entry for entry in (await r.json())["rooms"]}
        assert rooms["keep"]["offset"] == 30
        # A client that saw offset 25 before the restart recovers exactly 26..30, then
        # live messages continue from 31 in the same epoch.
        async with session.ws_connect(server.ws_url, protocols=(PROTOCOL,)) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "join", "ref": 1, "rooms": [
                {"room": "keep", "since": {"offset": 25, "epoch": epoch}}]})
            joined = await ws.receive_json()
            assert joined["type"] == "joined"
            assert joined["rooms"][0]["recovered"] is True
            assert joined["rooms"][0]["epoch"] == epoch
            replay = [await ws.receive_json() for _ in range(5)]
            assert [m["offset"] for m in replay] == [26, 27, 28, 29, 30]
            await ws.send_json({"type": "publish", "room": "keep", "text": "new", "ref": 2})
            events = [await ws.receive_json() for _ in range(2)]
            ack = next(e for e in events if e["type"] == "ack")
            assert (ack["offset"], ack["epoch"]) == (31, epoch)


async def test_second_server_on_same_data_dir_refuses_to_start(
    start_server: ServerFactory,
) -> None:
    first = start_server()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{first.url}/api/rooms/mine/messages", json={"text": "a"}) as r:
            assert r.status == 201
        _, before = await read_history(session, first, "mine")
    second = ServerProcess(first.data_dir)
    try:
        second.start(timeout=10)
    except RuntimeError as exc:
        assert "in use by another hubbub server" in str(exc)
    else:
        second.kill()
        raise AssertionError("a second server started on the same data directory")
    assert second.proc is not None and second.proc.returncode == 1
    second.kill()  # closes its log file; the process has already exited
    # The first server is untouched: same history, and it keeps accepting messages.
    async with aiohttp.ClientSession() as session:
        _, after = await read_history(session, first, "mine")
        assert after == before
        async with session.post(f"{first.url}/api/rooms/mine/messages", json={"text": "b"}) as r:
            assert r.status == 201 and (await r.json())["offset"] == 2


async def test_store_failure_is_reported_and_leaves_no_gap(start_server: ServerFactory) -> None:
    server = start_server("--rate-per-second", "0")
    url = f"{server.url}/api/rooms/locked/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"text": "one"}) as r:
            assert r.status == 201
        # Another process holds SQLite's write lock (as the sqlite3 shell could), so the
        # server's commit fails once its busy timeout runs out.
        blocker = sqlite3.connect(server.data_dir / "hubbub.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            async with session.ws_connect(server.ws_url, protocols=(PROTOCOL,)) as ws:
                await ws.receive_json()
                await ws.send_json({"type": "join", "rooms": ["locked"], "ref": 1})
                assert (await ws.receive_json())["type"] == "joined"
                await ws.send_json({"type": "publish", "room": "locked", "text": "x", "ref": 2})
                async with session.post(url, json={"text": "lost"}) as r:
                    assert r.status == 503
                    assert (await r.json())["code"] == "unavailable"
                refused = await asyncio.wait_for(ws.receive_json(), 30)
                assert (refused["type"], refused["code"], refused["ref"]) == (
                    "error", "unavailable", 2)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        async with session.post(url, json={"text": "two"}) as r:
            assert r.status == 201
            assert (await r.json())["offset"] == 2
        _, stored = await read_history(session, server, "locked")
    assert [m["text"] for m in stored] == ["one", "two"]
    assert_contiguous(stored)
