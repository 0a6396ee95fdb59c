"""The delivery engine's behaviour: framing once, corking, coalescing, slow clients."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.fanout import HIGH_WATER, AutoDelivery, CorkedOutlet, Payload, make_delivery
from memsocket import MemorySocket


async def pass_loop() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_messages_of_one_loop_pass_leave_in_one_write_per_socket() -> None:
    engine = AutoDelivery(outbox_limit=1 << 20)
    sockets = [MemorySocket() for _ in range(5)]
    outlets = [engine.outlet(s) for s in sockets]
    for n in range(3):
        await engine.fanout(outlets, Payload(f"m{n}".encode()))
    assert all(s.writes == [] for s in sockets)  # corked until the pass ends
    await pass_loop()
    for sock in sockets:
        assert len(sock.writes) == 1
        assert sock.received() == ["m0", "m1", "m2"]


async def test_a_payload_is_framed_once_for_every_socket() -> None:
    engine = AutoDelivery(outbox_limit=1 << 20)
    sockets = [MemorySocket() for _ in range(4)]
    await engine.fanout([engine.outlet(s) for s in sockets], Payload(b"same"))
    await pass_loop()
    first = sockets[0].writes[0]
    assert all(s.writes[0] is first for s in sockets)


async def test_a_lagging_socket_gets_its_backlog_in_one_write_when_it_drains() -> None:
    engine = AutoDelivery(outbox_limit=1 << 20)
    fast, slow = MemorySocket(), MemorySocket()
    slow.held = HIGH_WATER + 1
    outlets = [engine.outlet(fast), engine.outlet(slow)]
    for n in range(10):
        await engine.fanout(outlets, Payload(f"m{n}".encode()))
        await pass_loop()
    assert len(fast.writes) == 10 and slow.writes == []
    slow.release()
    await pass_loop()
    assert len(slow.writes) == 1
    assert slow.received() == [f"m{n}" for n in range(10)]
    slow_outlet = outlets[1]
    assert isinstance(slow_outlet, CorkedOutlet) and slow_outlet.writer is None


async def test_an_overflowing_client_is_closed_and_nobody_else_notices() -> None:
    engine = AutoDelivery(outbox_limit=1000)
    fast, stalled = MemorySocket(), MemorySocket()
    stalled.held = HIGH_WATER + 1  # the peer stopped reading
    outlets = [engine.outlet(fast), engine.outlet(stalled)]
    for _ in range(50):
        await engine.fanout(outlets, Payload(b"x" * 100))
        await pass_loop()
    assert stalled.slow_closed == 1
    assert engine.slow_closes == 1
    stalled_outlet = outlets[1]
    assert isinstance(stalled_outlet, CorkedOutlet)
    assert stalled_outlet.outbox.size <= 1000  # memory held for it stays bounded
    assert len(fast.received()) == 50


async def test_compressed_connections_fall_back_to_a_writer_task() -> None:
    engine = AutoDelivery(outbox_limit=1 << 20)
    plain, deflated = MemorySocket(), MemorySocket(framed=False)
    outlets = [engine.outlet(plain), engine.outlet(deflated)]
    await engine.fanout(outlets, Payload(b"a"))
    await engine.fanout(outlets, Payload(b"b"))
    await pass_loop()
    assert plain.received() == deflated.received() == ["a", "b"]
    for outlet in outlets:
        await outlet.close()


@pytest.mark.parametrize("strategy", ["auto", "sequential", "concurrent", "queued"])
async def test_every_strategy_delivers_everything_in_order(strategy: str) -> None:
    engine = make_delivery(strategy, outbox_limit=1 << 20)
    sockets = [MemorySocket() for _ in range(3)]
    outlets = [engine.outlet(s) for s in sockets]
    for n in range(20):
        await engine.fanout(outlets, Payload(f"m{n}".encode()))
        await engine.send(outlets[0], Payload(f"only-0-{n}".encode()))
    await pass_loop()
    for _ in range(50):
        await asyncio.sleep(0)
    expected_others = [f"m{n}" for n in range(20)]
    assert sockets[1].received() == expected_others
    assert sockets[2].received() == expected_others
    assert sockets[0].received() == [x for n in range(20) for x in (f"m{n}", f"only-0-{n}")]
    for outlet in outlets:
        await outlet.close()


async def test_the_queued_strategy_closes_an_overflowing_client() -> None:
    engine = make_delivery("queued", outbox_limit=100)
    stalled = MemorySocket()
    outlet = engine.outlet(stalled)
    for _ in range(20):
        await engine.fanout([outlet], Payload(b"y" * 10))  # no await: the writer never runs
    assert stalled.slow_closed == 1
    await outlet.close()
