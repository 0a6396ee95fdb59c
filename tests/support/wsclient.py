"""Small WebSocket clients for end-to-end tests against a real `hubbub serve` process.

Every receive has a timeout so a missing frame fails the test instead of hanging it.
`JsonClient` speaks `hubbub.v1`; `PlainClient` speaks the teaching note's plain text.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

TIMEOUT = 5.0
"""Seconds any single expected frame may take; generous for a loaded 2-core machine."""

Event = dict[str, Any]


class ClosedError(AssertionError):
    """The server closed the connection while a frame was expected."""

    def __init__(self, msg: aiohttp.WSMessage) -> None:
        super().__init__(f"connection closed: {msg.type.name} {msg.data!r} {msg.extra!r}")
        self.msg = msg


class JsonClient:
    """A `hubbub.v1` client that keeps every frame it has read but not yet consumed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, welcome: Event) -> None:
        self.ws = ws
        self.welcome = welcome
        self.id: str = welcome["id"]
        self.pending: list[Event] = []
        self._refs = itertools.count(1)

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(json.dumps(obj))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def _read(self, seconds: float) -> Event:
        msg = await self.ws.receive(timeout=seconds)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ClosedError(msg)
        event = json.loads(msg.data)
        assert isinstance(event, dict), f"server sent a non-object frame: {msg.data!r}"
        return event

    async def recv(self, seconds: float = TIMEOUT) -> Event:
        """The next frame, oldest unconsumed first."""
        if self.pending:
            return self.pending.pop(0)
        return await self._read(seconds)

    async def wait_for(self, match: Callable[[Event], bool], seconds: float = TIMEOUT) -> Event:
        """The first frame matching `match`; frames skipped on the way stay pending."""
        for index, event in enumerate(self.pending):
            if match(event):
                return self.pending.pop(index)
        while True:
            event = await self._read(seconds)
            if match(event):
                return event
            self.pending.append(event)

    async def request(self, kind: str, **fields: Any) -> Event:
        """Send a request with a fresh `ref` and return the reply carrying that `ref`."""
        ref = f"r{next(self._refs)}"
        await self.send({"type": kind, "ref": ref, **fields})
        return await self.wait_for(lambda e: e.get("ref") == ref)

    async def expect(self, kind: str, **fields: Any) -> Event:
        """`request` that also asserts the reply is not an error."""
        reply = await self.request(kind, **fields)
        assert reply["type"] != "error", reply
        return reply

    async def messages(self, room: str, count: int, seconds: float = TIMEOUT) -> list[Event]:
        """The next `count` message events for `room`, in arrival order."""
        return [
            await self.wait_for(lambda e: e["type"] == "message" and e["room"] == room, seconds)
            for _ in range(count)
        ]

    async def assert_alive(self) -> None:
        """A full round trip: proves the connection and the server still serve requests."""
        reply = await self.request("ping")
        assert reply["type"] == "pong", reply

    async def closed(self, seconds: float = TIMEOUT) -> aiohttp.WSMessage:
        """Read until the close arrives (frames before it are dropped); return the close."""
        while True:
            msg = await self.ws.receive(timeout=seconds)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return msg


class PlainClient:
    """A plain-text client: every frame is one line of text."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, seconds: float = TIMEOUT) -> str:
        msg = await self.ws.receive(timeout=seconds)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ClosedError(msg)
        assert isinstance(msg.data, str)
        return msg.data

    async def wait_for(self, line: str | Callable[[str], bool],
                       seconds: float = TIMEOUT) -> str:
        match = (lambda text: text == line) if isinstance(line, str) else line
        while True:
            text = await self.recv(seconds)
            if match(text):
                return text

    async def round_trip(self, text: str) -> str:
        """Send a line and wait for its echo; returns the echoed line."""
        await self.send(text)
        return await self.wait_for(lambda line: line.endswith(": " + text))


@asynccontextmanager
async def json_client(ws_url: str, *, nick: str | None = None,
                      headers: dict[str, str] | None = None,
                      **connect: Any) -> AsyncIterator[JsonClient]:
    url = ws_url + (f"?nick={nick}" if nick else "")
    async with aiohttp.ClientSession() as session, session.ws_connect(
        url, protocols=("hubbub.v1",), headers=headers, **connect
    ) as ws:
        assert ws.protocol == "hubbub.v1"
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        welcome = json.loads(msg.data)
        assert welcome["type"] == "welcome", welcome
        yield JsonClient(ws, welcome)


@asynccontextmanager
async def plain_client(ws_url: str, *, nick: str | None = None,
                       **connect: Any) -> AsyncIterator[PlainClient]:
    url = ws_url + (f"?nick={nick}" if nick else "")
    async with aiohttp.ClientSession() as session, session.ws_connect(url, **connect) as ws:
        assert ws.protocol is None
        yield PlainClient(ws)


async def handshake_refusal(ws_url: str) -> int:
    """The HTTP status a `hubbub.v1` handshake to `ws_url` is refused with (fails if it is
    accepted)."""
    try:
        async with json_client(ws_url):
            pass
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    raise AssertionError(f"the handshake to {ws_url} was accepted")


async def join(client: JsonClient, *rooms: Any) -> Event:
    reply = await client.expect("join", rooms=list(rooms))
    assert reply["type"] == "joined", reply
    return reply


async def http_get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json(content_type=None)


async def http_post_json(url: str, body: Any, headers: dict[str, str] | None = None,
                         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, session.post(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    ) as response:
        return response.status, await response.json(content_type=None)


def unique(prefix: str) -> str:
    """A room or nick name no other test in the same server uses."""
    return f"{prefix}-{next(_unique)}"


_unique = itertools.count(1)
