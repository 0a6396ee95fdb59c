"""Publishing with a chosen id through the client library, against a real server.

The resend test needs a connection that drops after the server stored a publish and before
its ack reached the client. A real server answers too fast for that to be arranged by
timing, so the client talks to it through a TCP relay on 127.0.0.1 that the test can cut,
as a network fault would: it holds back what the server sends, then closes both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from hubbub.client import ConnectionLost, Reconnected, ReconnectPolicy, connect, http
from support.server import ServerProcess
from support.wsclient import unique

from .helpers import WAIT, messages, next_of, post

FAST = ReconnectPolicy(base=0.1, max_delay=0.5)


class Relay:
    """Forwards TCP connections from its own port to the server's; `hold()` stops passing
    the server's bytes to the client, `cut()` closes every connection it relays."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.holding = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [client_w, server_w]
        await asyncio.gather(self._pump(client_r, server_w, held=False),
                             self._pump(server_r, client_w, held=True))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    held: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if held and self.holding:
                    continue  # lost on the way, as an ack is when a network fails
                writer.write(data)
                await writer.drain()
        writer.close()

    def hold(self) -> None:
        self.holding = True

    def cut(self) -> None:
        """Close every relayed connection; later ones are relayed in full again."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        self.holding = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@asynccontextmanager
async def relay_to(server: ServerProcess) -> AsyncIterator[Relay]:
    relay = Relay(server.port)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


async def test_a_publish_with_an_id_is_resent_after_a_drop_and_stored_once(
    shared_server: ServerProcess,
) -> None:
    room = unique("resend")
    async with (
        relay_to(shared_server) as relay,
        connect(relay.ws_url, nick="writer", reconnect=FAST) as writer,
        connect(shared_server.ws_url, nick="watcher") as watcher,
    ):
        await writer.join(room)
        await watcher.join(room)
        relay.hold()
        sending = asyncio.create_task(writer.send(room, "once", id="order-17"))
        [stored] = await messages(watcher, 1)  # the server has it; its ack is held back
        assert (stored.id, stored.text) == ("order-17", "once")
        relay.cut()
        ack = await asyncio.wait_for(sending, WAIT)
        # The resend after reconnecting was answered with the original's ack.
        assert ack.duplicate
        assert (ack.id, ack.offset, ack.epoch) == ("order-17", stored.offset, stored.epoch)
        # Stored once: the next message follows it directly, and the writer got it once.
        status, body = await post(shared_server.url, room, {"text": "after"})
        assert status == 201 and body["offset"] == stored.offset + 1
        assert [m.text for m in await messages(watcher, 1)] == ["after"]
        seen = [m.text for m in await messages(writer, 2)]
        assert seen == ["once", "after"]


async def test_a_publish_without_an_id_is_not_resent(shared_server: ServerProcess) -> None:
    room = unique("no-resend")
    async with (
        relay_to(shared_server) as relay,
        connect(relay.ws_url, reconnect=FAST) as writer,
        connect(shared_server.ws_url) as watcher,
    ):
        await writer.join(room)
        await watcher.join(room)
        relay.hold()
        sending = asyncio.create_task(writer.send(room, "maybe"))
        await messages(watcher, 1)
        relay.cut()
        with pytest.raises(ConnectionLost, match="may or may not have been stored"):
            await asyncio.wait_for(sending, WAIT)
        await next_of(writer, Reconnected)
        # Stored once, by the first and only send.
        page = await writer.history(room)
        assert [m.text for m in page.messages] == ["maybe"]


async def test_ids_over_http_and_websocket_are_one_message(
    shared_server: ServerProcess,
) -> None:
    room = unique("both-ways")
    first = await http.publish(shared_server.url, room, "via http", id="job-1")
    again = await http.publish(shared_server.url, room, "other text", id="job-1")
    assert not first.duplicate and again.duplicate
    assert (again.id, again.offset, again.epoch, again.ts) == (
        first.id, first.offset, first.epoch, first.ts)
    async with connect(shared_server.ws_url, rooms=[room]) as chat:
        ws_again = await chat.send(room, "and over ws", id="job-1")
        assert ws_again.duplicate and ws_again.offset == first.offset
        fresh = await chat.send(room, "new", id="job-2")
        assert not fresh.duplicate and fresh.offset == first.offset + 1
        page = await chat.history(room)
        assert [m.text for m in page.messages] == ["via http", "new"]
    with pytest.raises(ValueError, match="bad message id 'a b'"):
        await http.publish(shared_server.url, room, "x", id="a b")
    async with connect(shared_server.ws_url, rooms=[room]) as chat:
        with pytest.raises(ValueError, match="bad message id ''"):
            await chat.send(room, "x", id="")
