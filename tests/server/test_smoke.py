from __future__ import annotations

import aiohttp

from support.server import ServerProcess


async def test_plain_client_sees_its_own_line(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url + "?nick=ann") as ws:
        await ws.send_str("hello?")
        msg = await ws.receive(timeout=5)
        assert msg.data == "ann: hello?"
