"""A misbehaving server gives a clear error and never a hang (scripted fake server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from hubbub.client import (
    ConnectionFailed,
    ConnectionLost,
    HubbubError,
    Message,
    ProtocolViolation,
    RequestTimeout,
    connect,
)

from .fake_server import FakeServer, Script, joined, message
from .helpers import messages

Factory = Callable[..., Awaitable[FakeServer]]


@pytest.fixture
async def fake() -> AsyncIterator[Factory]:
    servers: list[FakeServer] = []

    async def factory(script: Script | None = None, **options: Any) -> FakeServer:
        async def default(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
            if req["type"] == "join":
                await ws.send_str(joined(req))

        server = await FakeServer(script or default, **options).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"subprotocol": False}, "did not accept the hubbub.v1 subprotocol"),
        ({"first_frame": '{"type": "message"}'}, "first frame is 'message', not welcome"),
        ({"first_frame": "hello?"}, "not JSON"),
        ({"first_frame": "[1, 2]"}, "not an object"),
        ({"first_frame": '{"type": "welcome", "id": 5, "nick": "x"}'}, "'id'"),
    ],
)
async def test_bad_handshake_or_welcome(fake: Factory, options: dict[str, Any],
                                        match: str) -> None:
    server = await fake(**options)
    with pytest.raises(ConnectionFailed, match=match):
        async with connect(server.url, connect_timeout=2):
            pass


async def test_no_welcome_times_out(fake: Factory) -> None:
    server = await fake(first_frame="")
    with pytest.raises(ConnectionFailed, match=r"no welcome within 0\.3 s"):
        async with connect(server.url, connect_timeout=0.3):
            pass


async def test_unparseable_reply_fails_the_request(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        await ws.send_str("{not json")

    server = await fake(script)
    async with connect(server.url, reconnect=False) as chat:
        with pytest.raises(ProtocolViolation, match=r"not JSON"):
            await chat.join("a")
        with pytest.raises(ConnectionLost):
            async for _ in chat:
                pass


@pytest.mark.parametrize(
    "ack",
    [
        {"type": "ack", "room": "a", "id": "i", "offset": "7", "epoch": "e", "ts": 1},
        {"type": "ack", "room": "a", "id": "i", "offset": True, "epoch": "e", "ts": 1},
        {"type": "ack", "room": "a", "id": None, "offset": 7, "epoch": "e", "ts": 1},
        {"type": "ack"},
    ],
)
async def test_malformed_ack_fails_that_request_only(fake: Factory,
                                                     ack: dict[str, Any]) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        if req["type"] == "join":
            await ws.send_str(joined(req))
        elif req["type"] == "publish":
            await ws.send_str(json.dumps({**ack, "ref": req["ref"]}))
        elif req["type"] == "ping":
            await ws.send_str(json.dumps({"type": "pong", "ref": req["ref"]}))

    server = await fake(script)
    async with connect(server.url) as chat:
        await chat.join("a")
        with pytest.raises(ProtocolViolation, match=r"ack"):
            await chat.send("a", "x")
        await chat.ping()


async def test_missing_reply_times_out(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        return None

    server = await fake(script)
    async with connect(server.url, request_timeout=0.3) as chat:
        with pytest.raises(RequestTimeout, match=r"no reply to join within 0\.3 s"):
            await chat.join("a")


async def test_drop_before_ack_raises_connection_lost(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        if req["type"] == "join":
            await ws.send_str(joined(req))
        else:
            await ws.close(code=1011)

    server = await fake(script)
    async with connect(server.url, reconnect=False) as chat:
        await chat.join("a")
        with pytest.raises(ConnectionLost, match=r"may or may not have been stored"):
            await chat.send("a", "x")


async def test_error_reply_carries_code_reason_and_retry_after(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        await ws.send_str(json.dumps({"type": "error", "code": "rate_limited",
                                      "reason": "slow down", "retry_after": 250,
                                      "ref": req["ref"]}))

    server = await fake(script)
    async with connect(server.url) as chat:
        with pytest.raises(HubbubError) as info:
            await chat.join("a")
        assert (info.value.code, info.value.reason, info.value.retry_after) == (
            "rate_limited", "slow down", 250)


async def test_duplicates_and_replays_are_dropped(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        if req["type"] == "join":
            await ws.send_str(joined(req))
            for offset in (1, 2, 2, 1, 3):
                await ws.send_str(message("a", offset))
            await ws.send_str(message("elsewhere", 9))  # a room this client is not in

    server = await fake(script)
    async with connect(server.url) as chat:
        await chat.join("a")
        got = await messages(chat, 3)
        assert [m.offset for m in got] == [1, 2, 3]
        assert all(isinstance(m, Message) and m.room == "a" for m in got)


async def test_binary_frame_from_server_is_a_violation(fake: Factory) -> None:
    async def script(ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        await ws.send_bytes(b"\x00\x01")

    server = await fake(script)
    async with connect(server.url, reconnect=False) as chat:
        with pytest.raises(ProtocolViolation, match=r"binary"):
            await chat.join("a")
