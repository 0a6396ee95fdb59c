"""Rooms are not a resource anyone can exhaust: joining leaves no trace, there is a cap on
rooms, and both room lists come in pages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from support.server import ServerFactory, ServerProcess, running
from support.wsclient import http_get_json, http_post_json, join, json_client, unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--rate-per-second", "0", "--max-total-rooms", "40") as s:
        yield s


async def _listed(server: ServerProcess) -> set[str]:
    status, body = await http_get_json(server.url + "/api/rooms?limit=1000")
    assert status == 200 and body["has_more"] is False, body
    return {entry["room"] for entry in body["rooms"]}


async def test_rooms_joined_and_left_without_a_message_leave_no_trace(
        server: ServerProcess) -> None:
    names = [unique("passing") for _ in range(20)]
    async with json_client(server.ws_url) as client:
        entries = (await join(client, *names))["rooms"]
        assert names[0] in await _listed(server)  # while it has a member
        epoch = entries[1]["epoch"]
        ack = await client.expect("publish", room=names[1], text="first words")
        assert ack["epoch"] == epoch  # its first message keeps the epoch it was joined with
    listed = await _listed(server)
    assert names[1] in listed
    assert not listed.intersection(names[:1] + names[2:])
    status, _ = await http_get_json(f"{server.url}/api/rooms/{names[0]}/messages")
    assert status == 404  # never used
    with sqlite3.connect(server.data_dir / "hubbub.sqlite3") as db:
        stored = {name for (name,) in db.execute("SELECT name FROM rooms")}
    assert names[1] in stored and not stored.intersection(names[:1] + names[2:])


async def test_the_room_cap_refuses_new_rooms_and_keeps_serving_the_others(
        server: ServerProcess) -> None:
    async with json_client(server.ws_url) as holder:
        # Fill the server up to its 40 rooms (whatever other tests left written).
        known = len(await _listed(server))
        names = [unique("filler") for _ in range(40 - known)]
        await join(holder, *names)
        reply = await holder.request("join", rooms=[unique("one-too-many")])
        assert reply["type"] == "error" and reply["code"] == "too_many_rooms", reply
        assert "max_total_rooms" in reply["reason"]
        status, body = await http_post_json(f"{server.url}/api/rooms/{unique('new')}/messages",
                                            {"text": "hi"})
        assert status == 403 and body["code"] == "too_many_rooms", body
        # Existing rooms work as before.
        assert (await holder.expect("publish", room=names[0], text="still here"))["offset"] == 1
        status, _ = await http_post_json(f"{server.url}/api/rooms/{names[0]}/messages",
                                         {"text": "and here"})
        assert status == 201
    # The fillers without a message were forgotten when the holder left: room for more.
    async with json_client(server.ws_url) as client:
        await join(client, unique("after-the-cap"))


async def test_room_lists_come_in_pages_over_http_and_websocket(server: ServerProcess) -> None:
    names = sorted(unique("paged") for _ in range(7))
    async with json_client(server.ws_url) as client:
        await join(client, *names)
        seen: list[str] = []
        after = names[0][:-1]  # just before the first of them
        while True:
            status, body = await http_get_json(f"{server.url}/api/rooms?limit=3&after={after}")
            assert status == 200 and len(body["rooms"]) <= 3
            seen += [entry["room"] for entry in body["rooms"]]
            if not body["has_more"]:
                break
            after = body["rooms"][-1]["room"]
        assert [name for name in seen if name in names] == names
        assert seen == sorted(seen)
        reply = await client.expect("rooms", limit=2, after=names[2])
        assert [entry["room"] for entry in reply["rooms"]] == names[3:5]
        assert reply["has_more"] is True


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "limit=-1"])
async def test_bad_room_pages_over_http_are_refused(server: ServerProcess, query: str) -> None:
    status, body = await http_get_json(f"{server.url}/api/rooms?{query}")
    assert status == 400 and body["code"] == "bad_request", body


@pytest.mark.parametrize("fields", [{"limit": 0}, {"limit": 5000}, {"limit": "3"},
                                    {"after": 7}, {"after": "x" * 300}, {"after": ["a"]}])
async def test_bad_room_pages_over_websocket_are_refused(server: ServerProcess,
                                                         fields: dict[str, object]) -> None:
    async with json_client(server.ws_url) as client:
        reply = await client.request("rooms", **fields)
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        await client.assert_alive()


async def test_a_client_that_saw_nothing_of_a_room_recovers_across_a_restart(
        start_server: ServerFactory) -> None:
    server = start_server("--rate-per-second", "0")
    room = unique("quiet")
    async with json_client(server.ws_url) as client:
        epoch = (await join(client, room))["rooms"][0]["epoch"]
    server.restart()  # the room was never written: its epoch is gone with the process
    for text in ("one", "two"):
        status, _ = await http_post_json(f"{server.url}/api/rooms/{room}/messages",
                                         {"text": text})
        assert status == 201
    async with json_client(server.ws_url) as back:
        entry = (await join(back, {"room": room, "since": {"epoch": epoch, "offset": 0}}))
        entry = entry["rooms"][0]
        assert entry["recovered"] is True and entry["epoch"] != epoch, entry
        got = await back.messages(room, 2)
        assert [m["text"] for m in got] == ["one", "two"]
        assert {m["epoch"] for m in got} == {entry["epoch"]}
