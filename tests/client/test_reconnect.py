"""Reconnection against a real server that is stopped and started again (same port, data)."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.client import (
    ConnectionLost,
    Disconnected,
    Message,
    Reconnected,
    Reconnecting,
    ReconnectPolicy,
    RecoveryFailed,
    RequestTimeout,
    connect,
)
from support.server import ServerFactory, ServerProcess

from .helpers import drain, messages, next_of, post

FAST = ReconnectPolicy(base=0.2, max_delay=1.0)


async def publish_many(server: ServerProcess, room: str, numbers: range) -> None:
    for i in numbers:
        status, body = await post(server.url, room, {"text": f"m{i}"})
        assert status == 201, body
        assert body["offset"] == i


async def test_every_message_exactly_once_in_order_across_restart(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    async with connect(server.ws_url, nick="reader", reconnect=FAST) as chat:
        await chat.join("news")
        await publish_many(server, "news", range(1, 4))
        first = await messages(chat, 3)
        # 4 and 5 reach the client but are not consumed before the restart: they must be
        # delivered once, not dropped and not replayed a second time.
        await publish_many(server, "news", range(4, 6))
        await chat.ping()  # its reply follows 4 and 5 on the wire

        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        # Published while the client is (most likely) still backing off.
        await publish_many(server, "news", range(6, 11))

        events = await drain(chat, Reconnected)
        reconnected = events[-1]
        assert isinstance(reconnected, Reconnected)
        delivered = first + [e for e in events if isinstance(e, Message)]
        disconnects = [e for e in events if isinstance(e, Disconnected)]
        assert disconnects and disconnects[0].close_code == 1001
        assert disconnects[0].will_reconnect
        assert any(isinstance(e, Reconnecting) for e in events)

        await publish_many(server, "news", range(11, 16))
        delivered += await messages(chat, 15 - len(delivered))
        assert [m.offset for m in delivered] == list(range(1, 16))
        assert [m.text for m in delivered] == [f"m{i}" for i in range(1, 16)]
        assert len({m.epoch for m in delivered}) == 1
        # Nothing else is pending: a fresh message is the very next one.
        await publish_many(server, "news", range(16, 17))
        [last] = await messages(chat, 1)
        assert last.offset == 16
        assert chat.rooms == ("news",) and chat.connected


async def test_recovery_failed_when_history_is_lost(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory")
    async with connect(server.ws_url, reconnect=FAST) as chat:
        await chat.join("volatile")
        await publish_many(server, "volatile", range(1, 3))
        old = await messages(chat, 2)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        failed = await next_of(chat, RecoveryFailed)
        assert failed.room == "volatile"
        assert failed.reason == "epoch_changed"
        # Live messages of the new epoch still arrive.
        await publish_many(server, "volatile", range(1, 2))
        [fresh] = await messages(chat, 1)
        assert fresh.offset == 1 and fresh.epoch != old[0].epoch


async def test_send_while_disconnected_waits_for_reconnection(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    async with connect(server.ws_url, nick="w", reconnect=FAST, reconnect_wait=30) as chat:
        await chat.join("q")
        await asyncio.to_thread(server.stop)
        await next_of(chat, Disconnected)
        pending = asyncio.create_task(chat.send("q", "sent while down"))
        await asyncio.sleep(0)
        assert not pending.done()
        await asyncio.to_thread(server.start)
        ack = await asyncio.wait_for(pending, 20)
        assert ack.offset == 1
        [msg] = await messages(chat, 1)
        assert (msg.text, msg.offset, msg.own) == ("sent while down", 1, True)


async def test_send_while_disconnected_times_out_clearly(start_server: ServerFactory) -> None:
    server = start_server()
    async with connect(server.ws_url, reconnect=FAST, reconnect_wait=0.5) as chat:
        await chat.join("q")
        await asyncio.to_thread(server.stop)
        await next_of(chat, Disconnected)
        with pytest.raises(RequestTimeout, match=r"no reconnection within 0\.5 s; publish was not"):
            await chat.send("q", "lost?")


async def test_gives_up_after_max_attempts(start_server: ServerFactory) -> None:
    server = start_server()
    policy = ReconnectPolicy(base=0.05, max_delay=0.1, max_attempts=3)
    async with connect(server.ws_url, reconnect=policy) as chat:
        await asyncio.to_thread(server.stop)
        attempts = []
        with pytest.raises(ConnectionLost, match=r"gave up reconnecting after 3 attempts"):
            async for event in chat:
                if isinstance(event, Reconnecting):
                    attempts.append(event.attempt)
        assert attempts == [1, 2, 3]
        with pytest.raises(ConnectionLost):
            await chat.send("q", "after the end")


async def test_reconnect_false_stops_at_first_drop(start_server: ServerFactory) -> None:
    server = start_server()
    async with connect(server.ws_url, reconnect=False) as chat:
        await chat.join("q")
        await asyncio.to_thread(server.stop)
        seen = []
        with pytest.raises(ConnectionLost) as info:
            async for event in chat:
                seen.append(event)
        assert info.value.close_code == 1001
        assert seen == [Disconnected(1001, "closed with 1001 (going away)", False)]


async def test_close_1009_is_not_retried(start_server: ServerFactory) -> None:
    server = start_server("--max-frame-bytes", "1024", "--max-text-bytes", "512")
    async with connect(server.ws_url, reconnect=FAST) as chat:
        await chat.join("big")
        with pytest.raises(ConnectionLost) as sent:
            await chat.send("big", "x" * 2000)
        assert "may or may not have been stored" in str(sent.value)
        seen = []
        with pytest.raises(ConnectionLost) as info:
            async for event in chat:
                seen.append(event)
        assert info.value.close_code == 1009
        assert [type(e) for e in seen] == [Disconnected]
        assert seen == [Disconnected(1009, "closed with 1009 (message too big)", False)]
