"""Hostile `data`: refused before it is stored, so nothing stored can fail to go out again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hubbub.core.limits import MAX_DATA_DEPTH
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
