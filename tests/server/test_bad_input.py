"""Hostile and malformed input: each gets the documented error or close code, and the
server keeps serving a client that was already connected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from support.rawws import OP_TEXT, RawWebSocket, frame
from support.server import ServerProcess, running
from support.wsclient import JsonClient, http_get_json, join, json_client, unique

pytestmark = pytest.mark.timeout(60)

MAX_ROOMS = 5
REPLIES = {"error", "joined", "ack", "history_page", "left", "nick_set", "member_list",
           "room_list", "pong"}


@pytest.fixture(scope="module")
def bad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--max-rooms", str(MAX_ROOMS)) as server:
        yield server


@dataclass
class Bystander:
    client: JsonClient
    room: str

    async def round_trip(self) -> None:
        """Publish and receive one message: the server still serves this connection."""
        ack = await self.client.expect("publish", room=self.room, text="still here?")
        got = await self.client.wait_for(lambda e: e["type"] == "message"
                                         and e["id"] == ack["id"])
        assert got["text"] == "still here?"


@pytest.fixture
async def bystander(bad_server: ServerProcess) -> AsyncIterator[Bystander]:
    """A client connected before the bad input arrives; it must still be served after."""
    async with json_client(bad_server.ws_url, nick="bystander") as client:
        room = unique("bystander")
        await join(client, room)
        yield Bystander(client, room)


@pytest.fixture
async def client(bad_server: ServerProcess) -> AsyncIterator[JsonClient]:
    async with json_client(bad_server.ws_url) as c:
        yield c


async def reply_to(client: JsonClient, raw: str) -> dict[str, Any]:
    """Send one raw frame; return the one reply (events like `message` are skipped)."""
    await client.send_raw(raw)
    return await client.wait_for(lambda e: e["type"] in REPLIES)


async def assert_error(client: JsonClient, raw: str, code: str,
                       ref: object = None, names: str | None = None) -> dict[str, Any]:
    reply = await reply_to(client, raw)
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert isinstance(reply["reason"], str) and reply["reason"], reply
    if ref is None:
        assert "ref" not in reply, reply
    else:
        assert reply.get("ref") == ref, reply
    if names is not None:
        assert names in reply["reason"], reply
    await client.assert_alive()  # the connection stays open after an error
    return reply


# --- frames that are not requests --------------------------------------------------------

@pytest.mark.parametrize("raw", ["{not json", "", "{\"type\": \"ping\"", "\x00\x01", "nan"])
async def test_invalid_json(client: JsonClient, bystander: Bystander, raw: str) -> None:
    await assert_error(client, raw, "bad_json")
    await bystander.round_trip()


@pytest.mark.parametrize("raw", ["[1, 2]", "[]", "5", "-1.5", "\"ping\"", "null", "true"])
async def test_json_that_is_not_an_object(client: JsonClient, bystander: Bystander,
                                          raw: str) -> None:
    await assert_error(client, raw, "bad_json")
    await bystander.round_trip()


@pytest.mark.parametrize("request_", [
    {"type": "nosuch", "ref": "r"},
    {"type": "", "ref": "r"},
    {"type": "PING", "ref": "r"},
    {"type": 5, "ref": "r"},
    {"type": None, "ref": "r"},
    {"type": ["ping"], "ref": "r"},
    {"ref": "r"},
    {"type": "welcome", "ref": "r"},  # a server event is not a request
    {"type": "message", "ref": "r"},
])
async def test_unknown_or_missing_type(client: JsonClient, bystander: Bystander,
                                       request_: dict[str, Any]) -> None:
    await assert_error(client, json.dumps(request_), "unknown_type", ref="r")
    await bystander.round_trip()


# --- fields: (request, expected code, text the reason must contain) ----------------------

LONG = "a" * 65
FIELD_CASES: list[tuple[dict[str, Any], str, str | None]] = [
    # nick
    ({"type": "nick"}, "bad_request", "nick"),
    ({"type": "nick", "nick": 5}, "bad_request", "nick"),
    ({"type": "nick", "nick": ["bob"]}, "bad_request", "nick"),
    ({"type": "nick", "nick": ""}, "invalid_nick", None),
    ({"type": "nick", "nick": "n" * 33}, "invalid_nick", None),
    ({"type": "nick", "nick": "a\u0000b"}, "invalid_nick", None),
    ({"type": "nick", "nick": "a\nb"}, "invalid_nick", None),
    ({"type": "nick", "nick": "a\u001bb"}, "invalid_nick", None),
    ({"type": "nick", "nick": " lead"}, "invalid_nick", None),
    ({"type": "nick", "nick": "trail "}, "invalid_nick", None),
    ({"type": "nick", "nick": "two  spaces"}, "invalid_nick", None),
    ({"type": "nick", "nick": "a/b"}, "invalid_nick", None),
    # join
    ({"type": "join"}, "bad_request", "rooms"),
    ({"type": "join", "rooms": "x"}, "bad_request", "rooms"),
    ({"type": "join", "rooms": []}, "bad_request", "rooms"),
    ({"type": "join", "rooms": {"a": 1}}, "bad_request", "rooms"),
    ({"type": "join", "rooms": [5]}, "bad_request", "rooms"),
    ({"type": "join", "rooms": [None]}, "bad_request", "rooms"),
    ({"type": "join", "rooms": [{"room": 5}]}, "bad_request", "room"),
    ({"type": "join", "rooms": [{}]}, "bad_request", "room"),
    ({"type": "join", "rooms": [""]}, "invalid_room", None),
    ({"type": "join", "rooms": [LONG]}, "invalid_room", None),
    ({"type": "join", "rooms": ["a\u0000b"]}, "invalid_room", None),
    ({"type": "join", "rooms": ["a\nb"]}, "invalid_room", None),
    ({"type": "join", "rooms": ["a b"]}, "invalid_room", None),
    ({"type": "join", "rooms": ["a/b"]}, "invalid_room", None),
    ({"type": "join", "rooms": ["ok", "a/b"]}, "invalid_room", None),
    ({"type": "join", "rooms": ["twice", "twice"]}, "bad_request", "twice"),
    ({"type": "join", "rooms": [{"room": "r", "since": "x"}]}, "bad_request", "since"),
    ({"type": "join", "rooms": [{"room": "r", "since": {"offset": -1, "epoch": "e"}}]},
     "bad_request", "since.offset"),
    ({"type": "join", "rooms": [{"room": "r", "since": {"offset": 1.5, "epoch": "e"}}]},
     "bad_request", "since.offset"),
    ({"type": "join", "rooms": [{"room": "r", "since": {"offset": "1", "epoch": "e"}}]},
     "bad_request", "since.offset"),
    ({"type": "join", "rooms": [{"room": "r", "since": {"offset": 1}}]},
     "bad_request", "since.epoch"),
    ({"type": "join", "rooms": [{"room": "r", "since": {"offset": 1, "epoch": 7}}]},
     "bad_request", "since.epoch"),
    ({"type": "join", "rooms": [{"room": "r", "history": 0}]}, "bad_request", "history"),
    ({"type": "join", "rooms": [{"room": "r", "history": "3"}]}, "bad_request", "history"),
    ({"type": "join", "rooms": [{"room": "r", "history": -1}]}, "bad_request", "history"),
    ({"type": "join", "rooms": [{"room": "r", "history": 3,
                                 "since": {"offset": 1, "epoch": "e"}}]}, "bad_request", None),
    # leave
    ({"type": "leave"}, "bad_request", "rooms"),
    ({"type": "leave", "rooms": "x"}, "bad_request", "rooms"),
    ({"type": "leave", "rooms": [5]}, "bad_request", "room"),
    ({"type": "leave", "rooms": ["a b"]}, "invalid_room", None),
    # publish
    ({"type": "publish", "text": "t"}, "bad_request", "room"),
    ({"type": "publish", "room": 5, "text": "t"}, "bad_request", "room"),
    ({"type": "publish", "room": "", "text": "t"}, "invalid_room", None),
    ({"type": "publish", "room": LONG, "text": "t"}, "invalid_room", None),
    ({"type": "publish", "room": "r"}, "bad_request", "text or data"),
    ({"type": "publish", "room": "r", "text": None, "data": None}, "bad_request", None),
    ({"type": "publish", "room": "r", "text": 5}, "bad_request", "text"),
    ({"type": "publish", "room": "r", "text": ["t"]}, "bad_request", "text"),
    ({"type": "publish", "room": "r", "text": "x" * 8193}, "message_too_large", "8192"),
    ({"type": "publish", "room": "r", "text": "é" * 4097}, "message_too_large", "8192"),
    # history
    ({"type": "history"}, "bad_request", "room"),
    ({"type": "history", "room": 5}, "bad_request", "room"),
    ({"type": "history", "room": "a\u0000b"}, "invalid_room", None),
    ({"type": "history", "room": "r", "limit": -1}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": 0}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": "10"}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": 10**6}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": 101}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": 1.5}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "limit": True}, "bad_request", "limit"),
    ({"type": "history", "room": "r", "before": -5}, "bad_request", "before"),
    ({"type": "history", "room": "r", "before": 1.5}, "bad_request", "before"),
    ({"type": "history", "room": "r", "before": "3"}, "bad_request", "before"),
    ({"type": "history", "room": "r", "before": 2**64}, "bad_request", "before"),
    ({"type": "history", "room": "r", "after": -1}, "bad_request", "after"),
    ({"type": "history", "room": "r", "after": False}, "bad_request", "after"),
    # members
    ({"type": "members"}, "bad_request", "room"),
    ({"type": "members", "room": 5}, "bad_request", "room"),
    ({"type": "members", "room": "a b"}, "invalid_room", None),
]


@pytest.mark.parametrize(("request_", "code", "names"), FIELD_CASES,
                         ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(FIELD_CASES)])
async def test_bad_fields(client: JsonClient, bystander: Bystander, request_: dict[str, Any],
                          code: str, names: str | None) -> None:
    await assert_error(client, json.dumps({**request_, "ref": "bad"}), code, ref="bad",
                       names=names)
    await bystander.round_trip()


@pytest.mark.parametrize("ref", [{}, [], 1.5, True, "r" * 65, 2**53, -(2**53)])
async def test_bad_ref(client: JsonClient, bystander: Bystander, ref: object) -> None:
    await assert_error(client, json.dumps({"type": "ping", "ref": ref}), "bad_request",
                       names="ref")
    await bystander.round_trip()


# --- refusals that depend on state --------------------------------------------------------

async def test_publish_not_joined(client: JsonClient, bystander: Bystander) -> None:
    await assert_error(client, json.dumps({"type": "publish", "room": bystander.room,
                                           "text": "sneaky", "ref": "nj"}),
                       "not_joined", ref="nj")
    # The bystander, who is in that room, got nothing from it.
    await bystander.round_trip()
    assert not [e for e in bystander.client.pending if e.get("text") == "sneaky"]


async def test_too_many_rooms_at_once(client: JsonClient, bystander: Bystander) -> None:
    rooms = [unique("many") for _ in range(MAX_ROOMS + 1)]
    await assert_error(client, json.dumps({"type": "join", "rooms": rooms, "ref": 1}),
                       "too_many_rooms", ref=1)
    reply = await client.expect("rooms")
    assert not {r["room"] for r in reply["rooms"]} & set(rooms)  # nothing half-joined
    await bystander.round_trip()


async def test_too_many_rooms_one_by_one(client: JsonClient, bystander: Bystander) -> None:
    for _ in range(MAX_ROOMS):
        await join(client, unique("fill"))
    await assert_error(client, json.dumps({"type": "join", "rooms": [unique("over")],
                                           "ref": 2}), "too_many_rooms", ref=2)
    # Rejoining a room already joined does not count as a new one.
    await bystander.round_trip()


async def test_history_of_never_used_room(client: JsonClient, bystander: Bystander) -> None:
    await assert_error(client, json.dumps({"type": "history", "room": unique("ghost"),
                                           "ref": "h"}), "room_not_found", ref="h")
    await bystander.round_trip()


async def test_binary_frame_in_json_mode(client: JsonClient, bystander: Bystander) -> None:
    await client.ws.send_bytes(b'{"type": "ping"}')
    reply = await client.recv()
    assert reply["type"] == "error" and reply["code"] == "binary_not_supported", reply
    await client.assert_alive()
    await bystander.round_trip()


async def test_frame_over_default_limit_closes_1009(bad_server: ServerProcess,
                                                    client: JsonClient,
                                                    bystander: Bystander) -> None:
    await client.send_raw(json.dumps({"type": "ping", "pad": "x" * 65536}))
    closed = await client.closed()
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1009, closed
    await bystander.round_trip()
    assert "exceeds limit 65536" in bad_server.log_text()


async def test_frame_over_configured_limit_closes_1009(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--max-frame-bytes", "1024",
                 "--max-text-bytes", "512") as server:
        async with json_client(server.ws_url) as other, json_client(server.ws_url) as client:
            assert client.welcome["limits"]["max_frame_bytes"] == 1024
            await client.send_raw(json.dumps({"type": "ping", "pad": "x" * 900}))
            assert (await client.recv())["type"] == "pong"  # under the limit: fine
            await client.send_raw(json.dumps({"type": "ping", "pad": "x" * 1100}))
            closed = await client.closed()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1009, closed
            await other.assert_alive()


async def test_rate_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "5",
                 "--rate-burst", "5") as server:
        async with json_client(server.ws_url) as other, json_client(server.ws_url) as client:
            for i in range(20):
                await client.send({"type": "ping", "ref": i})
            replies = [await client.recv() for _ in range(20)]  # exactly one reply each
            limited = [r for r in replies if r["type"] == "error"]
            assert [r["type"] for r in replies].count("pong") >= 5
            assert limited, replies
            for reply in limited:
                assert reply["code"] == "rate_limited", reply
                assert isinstance(reply["retry_after"], int) and reply["retry_after"] > 0
            await asyncio.sleep(max(r["retry_after"] for r in limited) / 1000 + 0.3)
            await client.assert_alive()  # works again after waiting
            await other.assert_alive()  # another connection has its own budget


async def test_rate_limit_echoes_ref(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "1",
                 "--rate-burst", "1") as server:
        async with json_client(server.ws_url) as client:
            for i in range(3):
                await client.send({"type": "ping", "ref": f"p{i}"})
            replies = [await client.recv() for _ in range(3)]
            for i, reply in enumerate(replies):
                assert reply.get("ref") == f"p{i}", reply


# --- handshake ------------------------------------------------------------------------------

@pytest.mark.parametrize("nick", ["", "n" * 33, "%20lead", "trail%20", "a%00b", "a%0Ab",
                                  "a/b", "two%20%20spaces"])
async def test_invalid_nick_at_handshake_is_400(bad_server: ServerProcess,
                                                bystander: Bystander, nick: str) -> None:
    async with aiohttp.ClientSession() as session:
        for protocols in ((), ("hubbub.v1",)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"{bad_server.ws_url}?nick={nick}",
                                         protocols=protocols)
            assert info.value.status == 400
    await bystander.round_trip()


# --- raw sockets ------------------------------------------------------------------------------

async def test_disconnect_mid_frame(bad_server: ServerProcess, bystander: Bystander) -> None:
    for protocol in ("hubbub.v1", None):
        raw = await RawWebSocket.connect(bad_server.port, protocol=protocol)
        await raw.send(frame(OP_TEXT, b"x" * 1000)[:16])  # header says 1000, 10 bytes follow
        raw.abort()
    await bystander.round_trip()
    status, body = await http_get_json(bad_server.url + "/healthz")
    assert status == 200 and body["status"] == "ok"
    assert "Traceback" not in bad_server.log_text()


async def test_invalid_utf8_text_frame_closes_1007(bad_server: ServerProcess,
                                                   bystander: Bystander) -> None:
    for protocol in ("hubbub.v1", None):
        raw = await RawWebSocket.connect(bad_server.port, protocol=protocol)
        await raw.send(frame(OP_TEXT, b'{"type": "\xff\xfe"}'))
        closing = await raw.read_until_close()
        assert closing is not None and closing.close_code == 1007, closing
        await raw.close()
    await bystander.round_trip()
    assert "Invalid UTF-8" in bad_server.log_text()
