"""A scripted hubbub.v1 server (real aiohttp on a real socket) for misbehaviour the real
server never shows: broken frames, missing replies, duplicates."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

WELCOME = {"type": "welcome", "protocol": "hubbub.v1", "server": "fake", "id": "c0nn",
           "nick": "guest-0000", "heartbeat": 30, "limits": {}}

Script = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]


def joined(request: dict[str, Any], offset: int = 0, epoch: str = "e1") -> str:
    rooms = [r if isinstance(r, str) else r["room"] for r in request["rooms"]]
    return json.dumps({"type": "joined", "ref": request.get("ref"), "rooms": [
        {"room": r, "epoch": epoch, "offset": offset, "recovered": True, "members": []}
        for r in rooms]})


def message(room: str, offset: int, epoch: str = "e1") -> str:
    return json.dumps({"type": "message", "room": room, "offset": offset, "epoch": epoch,
                       "id": f"id{offset}", "from": "x", "sender": None,
                       "text": f"m{offset}", "ts": 1})


class FakeServer:
    def __init__(self, script: Script, *, first_frame: str | None = None,
                 subprotocol: bool = True) -> None:
        self.script = script
        self.first_frame = json.dumps(WELCOME) if first_frame is None else first_frame
        self.subprotocol = subprotocol
        self.connections = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> FakeServer:
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.connections += 1
        ws = web.WebSocketResponse(protocols=("hubbub.v1",) if self.subprotocol else ())
        await ws.prepare(request)
        if self.first_frame:
            await ws.send_str(self.first_frame)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await self.script(ws, json.loads(msg.data))
        return ws
