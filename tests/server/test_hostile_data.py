"""Hostile `data`: refused before it is stored, so nothing stored can fail to go out again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hubbub.core.limits import MAX_DATA_DEPTH
from support.rawws import RawWebSocket
from support.server import ServerProcess, running
from support.wsclient import http_get_json, http_post_json, join, json_client, plain_client, unique

pytestmark = pytest.mark.timeout(60)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--rate-per-second", "0") as server:
        yield server


@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH + 1, 255, 300, 990])
async def test_deep_data_over_http_is_refused_and_nothing_is_stored(
        sqlite_server: ServerProcess, depth: int) -> None:
    room = unique("deep")
    url = f"{sqlite_server.url}/api/rooms/{room}/messages"
    status, body = await http_post_json(url, None, raw=b'{"data": %s}' % nested(depth).encode())
    assert status == 400, body
    assert body["code"] == "bad_request" and "nested" in body["reason"]
    status, _ = await http_get_json(url)
    assert status == 404  # the room was never even created


async def test_the_deepest_data_allowed_round_trips_everywhere(
        sqlite_server: ServerProcess) -> None:
    room = unique("deepest")
    url = f"{sqlite_server.url}/api/rooms/{room}/messages"
    data = nested(MAX_DATA_DEPTH).encode()
    status, body = await http_post_json(url, None, raw=b'{"data": %s}' % data)
    assert status == 201, body
    status, page = await http_get_json(url)
    assert status == 200 and len(page["messages"]) == 1
    async with json_client(sqlite_server.ws_url) as client:
        await join(client, {"room": room, "history": 1})
        (message,) = await client.messages(room, 1)
        assert message["offset"] == body["offset"]


async def test_deep_data_over_websocket_is_refused_with_its_ref_and_the_room_goes_on(
        sqlite_server: ServerProcess) -> None:
    room = unique("deep-ws")
    async with json_client(sqlite_server.ws_url) as client, \
            json_client(sqlite_server.ws_url) as member:
        await join(client, room)
        await join(member, room)
        await client.send_raw(f'{{"type": "publish", "room": "{room}", "ref": "d",'
                              f' "data": {nested(300)}}}')
        reply = await client.wait_for(lambda e: e.get("ref") == "d")
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        ack = await client.expect("publish", room=room, text="still fine")
        (message,) = await member.messages(room, 1)
        assert message["offset"] == ack["offset"] == 1  # the refused one took no offset


async def test_plain_text_clients_are_not_closed_by_a_refused_deep_message(
        sqlite_server: ServerProcess) -> None:
    url = f"{sqlite_server.url}/api/rooms/lobby/messages"
    status, _ = await http_post_json(url, None, raw=b'{"data": %s}' % nested(400).encode())
    assert status == 400
    async with plain_client(sqlite_server.ws_url) as plain:
        assert (await plain.round_trip("hello")).endswith(": hello")


async def test_joiners_that_do_not_read_hold_one_page_each_not_the_backlog(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 10, item 2: a join with `since` used to read and frame the whole backlog (up to
    10,000 messages) for a client that never reads; now its replay waits on each page."""
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--max-text-bytes", "60000", "--history-page-max", "20") as server:
        room = unique("backlog")
        url = f"{server.url}/api/rooms/{room}/messages"
        async with aiohttp.ClientSession() as session:
            for n in range(1000):  # 60 MB of history
                async with session.post(url, json={"text": f"{n:05d}" + "x" * 59_000}) as r:
                    assert r.status == 201
        assert server.proc is not None
        before = _peak_rss(server.proc.pid)
        join = json.dumps({"type": "join", "rooms": [
            {"room": room, "since": {"epoch": await _epoch(url), "offset": 0}}]})
        stalled = []
        for _ in range(4):
            ws = await RawWebSocket.connect(server.port, protocol="hubbub.v1", rcvbuf=4096)
            await ws.send_text(join)
            stalled.append(ws)
        try:
            await asyncio.sleep(2)  # what they would be sent is framed well within this
            grown = _peak_rss(server.proc.pid) - before
            # Each holds at most its outbox (1 MiB) and one page (20 x 60 KB): 3 MiB in all
            # when measured; the old code framed the backlog for each (a 60 MiB peak).
            assert grown < 30 * 2**20, f"server peak grew by {grown / 2**20:.1f} MiB"
            async with json_client(server.ws_url) as bystander:
                await bystander.assert_alive()
        finally:
            for ws in stalled:
                ws.abort()


def _peak_rss(pid: int) -> int:
    """The process's highest resident size so far (VmHWM): a join that frames a backlog
    and frees it again still shows here."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


async def _epoch(url: str) -> str:
    status, page = await http_get_json(url + "?limit=1")
    assert status == 200
    return str(page["epoch"])
