"""Idempotent publish (`id`), over WebSocket and HTTP, on both adapters; `/healthz`'s broker."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from support.server import ServerFactory, ServerProcess
from support.wsclient import (
    http_get_json,
    http_post_json,
    join,
    json_client,
    unique,
)

ID_RULE = "id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"


async def test_a_repeated_id_is_answered_with_the_original(adapter_server: ServerProcess) -> None:
    room = unique("idem")
    async with json_client(adapter_server.ws_url) as writer, \
            json_client(adapter_server.ws_url) as reader:
        await join(writer, room)
        await join(reader, room)
        first = await writer.expect("publish", room=room, text="one", id="order-1")
        assert first["type"] == "ack" and first["id"] == "order-1"
        assert "duplicate" not in first
        again = await writer.expect("publish", room=room, text="other text", id="order-1")
        assert again["duplicate"] is True
        assert (again["id"], again["offset"], again["epoch"], again["ts"]) == (
            first["id"], first["offset"], first["epoch"], first["ts"])
        other_room = unique("idem-other")
        await join(writer, other_room)
        elsewhere = await writer.expect("publish", room=other_room, text="one", id="order-1")
        assert elsewhere["offset"] == 1 and "duplicate" not in elsewhere
        await writer.expect("publish", room=room, text="next")
        got = await reader.messages(room, 2)
        assert [m["text"] for m in got] == ["one", "next"]  # the repeat delivered nothing
        page = await reader.expect("history", room=room)
        assert [m["text"] for m in page["messages"]] == ["one", "next"]


async def test_http_answers_201_then_200_duplicate_and_shares_ids_with_websocket(
    adapter_server: ServerProcess,
) -> None:
    room = unique("idem-http")
    url = f"{adapter_server.url}/api/rooms/{room}/messages"
    status, first = await http_post_json(url, {"text": "via http", "id": "job-7"})
    assert status == 201 and first["id"] == "job-7" and "duplicate" not in first
    status, again = await http_post_json(url, {"text": "changed", "id": "job-7"})
    assert status == 200 and again == {**first, "duplicate": True}
    async with json_client(adapter_server.ws_url) as client:
        await join(client, room)
        ws_again = await client.expect("publish", room=room, text="over ws", id="job-7")
        assert ws_again["duplicate"] is True and ws_again["offset"] == first["offset"]
        ws_first = await client.expect("publish", room=room, text="ws first", id="job-8")
    status, http_again = await http_post_json(url, {"text": "x", "id": "job-8"})
    assert status == 200 and http_again["offset"] == ws_first["offset"]
    status, page = await http_get_json(url)
    assert status == 200 and [m["text"] for m in page["messages"]] == ["via http", "ws first"]


BAD_IDS: list[Any] = ["", "x" * 65, "a b", "é", "a/b", 7, 1.5, True, ["a"], {"a": 1}]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_bad_ids_are_refused_clearly(adapter_server: ServerProcess, bad: Any) -> None:
    room = unique("idem-bad")
    async with json_client(adapter_server.ws_url) as client:
        await join(client, room)
        reply = await client.request("publish", room=room, text="t", id=bad)
        assert (reply["type"], reply["code"], reply["reason"]) == ("error", "bad_request", ID_RULE)
        await client.assert_alive()
    status, body = await http_post_json(f"{adapter_server.url}/api/rooms/{room}/messages",
                                        {"text": "t", "id": bad})
    assert (status, body["code"], body["reason"]) == (400, "bad_request", ID_RULE)


async def test_null_id_is_no_id(adapter_server: ServerProcess) -> None:
    room = unique("idem-null")
    async with json_client(adapter_server.ws_url) as client:
        await join(client, room)
        one = await client.expect("publish", room=room, text="a", id=None)
        two = await client.expect("publish", room=room, text="b", id=None)
        assert (one["offset"], two["offset"]) == (1, 2) and one["id"] != two["id"]
    status, body = await http_post_json(f"{adapter_server.url}/api/rooms/{room}/messages",
                                        {"text": "c", "id": None})
    assert status == 201 and body["offset"] == 3
    status, body = await http_post_json(f"{adapter_server.url}/api/rooms/{room}/messages",
                                        {"text": "d", "id": "A-z_9" + "x" * 59})
    assert status == 201 and body["id"] == "A-z_9" + "x" * 59


def has_ref(ref: object, event: dict[str, Any]) -> bool:
    return event.get("ref") == ref


async def pipelined_repeats(server: ServerProcess) -> None:
    room = unique("idem-pipe")
    async with json_client(server.ws_url) as client:
        await join(client, room)
        frames = [{"type": "publish", "room": room, "text": text, "id": message_id,
                   "ref": f"p{n}"}
                  for n, (text, message_id) in enumerate(
                      [("first", "same"), ("between", None), ("repeat", "same"),
                       ("again", "same")])]
        for frame in frames:  # all sent before any answer is read
            await client.send(frame)
        replies = [await client.wait_for(partial(has_ref, frame["ref"])) for frame in frames]
        assert [r["type"] for r in replies] == ["ack"] * 4
        assert [r["offset"] for r in replies] == [1, 2, 1, 1]
        assert [r.get("duplicate", False) for r in replies] == [False, False, True, True]
        got = await client.messages(room, 2)
        assert [m["text"] for m in got] == ["first", "between"]
        page = await client.expect("history", room=room)
        assert [m["text"] for m in page["messages"]] == ["first", "between"]


async def test_pipelined_repeats_on_one_connection(adapter_server: ServerProcess) -> None:
    await pipelined_repeats(adapter_server)


async def test_a_repeat_while_the_original_is_pending_gets_its_offset(
    start_server: ServerFactory,
) -> None:
    # The SQLite store commits in batches: a repeat read in the same batch as its original
    # arrives while the original is still pending.
    await pipelined_repeats(start_server())


async def test_healthz_says_the_broker_is_up(adapter_server: ServerProcess) -> None:
    status, body = await http_get_json(f"{adapter_server.url}/healthz")
    assert status == 200 and body["broker"] == "up" and body["status"] == "ok"
