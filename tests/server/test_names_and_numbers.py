"""Look-alike names and integers beyond 64 bits against a real server (issue 10, items 10, 11)."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest

from support.server import ServerProcess
from support.wsclient import http_get_json, http_post_json, json_client, plain_client, unique

from .conftest import ModuleServer  # noqa: F401 - the fixture's type, for readers

pytestmark = pytest.mark.timeout(60)

LOOK_ALIKES = ["\u0430dmin", "\u3164", "al\u200bice", "server", "SERVER", "\uffa0x"]


@pytest.mark.parametrize("nick", LOOK_ALIKES)
async def test_nick_request_refuses_look_alikes(module_server: ServerProcess, nick: str) -> None:
    async with json_client(module_server.ws_url) as client:
        reply = await client.request("nick", nick=nick)
        assert reply["type"] == "error" and reply["code"] == "invalid_nick", reply


@pytest.mark.parametrize("nick", LOOK_ALIKES)
async def test_handshake_nick_refuses_look_alikes(module_server: ServerProcess,
                                                  nick: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{module_server.ws_url}?nick={quote(nick)}")
        assert refused.value.status == 400


@pytest.mark.parametrize("sender", ["server", "Server", "\u0430dmin", "a\u3164"])
async def test_http_from_refuses_the_server_name_and_look_alikes(
        module_server: ServerProcess, sender: str) -> None:
    status, body = await http_post_json(
        f"{module_server.url}/api/rooms/lobby/messages", {"text": "hi", "from": sender})
    assert status == 400 and body["code"] == "invalid_nick", body


async def test_names_are_normalised(module_server: ServerProcess) -> None:
    room = unique("norm")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in room if c.isalpha()) + room[4:]
    async with json_client(module_server.ws_url) as client:
        reply = await client.expect("nick", nick="e\u0301mile")
        assert reply["nick"] == "\u00e9mile"
        joined = await client.expect("join", rooms=[fullwidth])
        assert joined["rooms"][0]["room"] == room
        await client.expect("publish", room=room, text="hi")
        [message] = await client.messages(room, 1)
        assert message["from"] == "\u00e9mile"


# --- integers ---------------------------------------------------------------------------

EXACT = [2**64 - 1, -(2**63), 2**63, 12345678901234567890]


async def test_64_bit_integers_round_trip_exactly(module_server: ServerProcess) -> None:
    room = unique("ints")
    async with json_client(module_server.ws_url) as client, plain_client(
            module_server.ws_url) as plain:
        await client.expect("join", rooms=[room])
        data = str(EXACT).replace(" ", "")
        frame = f'{{"type":"publish","room":"{room}","data":{data},"ref":"p"}}'
        await client.send_raw(frame)
        ack = await client.wait_for(lambda e: e.get("ref") == "p")
        assert ack["type"] == "ack", ack
        [live] = await client.messages(room, 1)
        assert live["data"] == EXACT
        history = await client.expect("history", room=room)
        assert history["messages"][-1]["data"] == EXACT
        del plain
    status, body = await http_get_json(f"{module_server.url}/api/rooms/{room}/messages")
    assert status == 200 and body["messages"][-1]["data"] == EXACT, body


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809",
                                    "1" + "0" * 40, "9" * 300])
async def test_larger_integers_are_refused_over_websocket(module_server: ServerProcess,
                                                          number: str) -> None:
    room = unique("big")
    async with json_client(module_server.ws_url) as client:
        await client.expect("join", rooms=[room])
        await client.send_raw(
            f'{{"type":"publish","room":"{room}","data":{{"n":{number}}},"ref":7}}')
        reply = await client.wait_for(lambda e: e.get("ref") == 7)
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        assert "integers" in reply["reason"]
        history = await client.expect("history", room=room)
        assert history["messages"] == []


async def test_larger_integers_are_refused_over_http(module_server: ServerProcess) -> None:
    room = unique("bighttp")
    status, body = await http_post_json(f"{module_server.url}/api/rooms/{room}/messages",
                                        None, raw=b'{"data": [1, 18446744073709551616]}')
    assert status == 400 and body["code"] == "bad_request", body
    # A string of digits, or digits inside a string, is fine.
    status, body = await http_post_json(f"{module_server.url}/api/rooms/{room}/messages",
                                        {"data": {"n": "18446744073709551616"},
                                         "text": "id 123456789012345678901234"})
    assert status == 201, body
