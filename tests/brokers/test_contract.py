"""The broker contract (the module docstring of `hubbub.core.broker`), run against every
broker in `conftest.FACTORIES`, through its interface only: publishes in, outcomes and a
`Node`'s deliveries out."""

from __future__ import annotations

import asyncio
import tempfile
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.core.broker import Broker
from hubbub.core.message import Draft, Message
from hubbub.core.store import StoreError, settle

from .conftest import BrokerFactory, Opened, RecordingNode


def draft(room: str, text: str, message_id: str | None = None) -> Draft:
    if message_id is None:
        return Draft(room=room, nick="alice", sender="c1", text=text)
    return Draft(room=room, nick="alice", sender="c1", text=text, id=message_id, dedupe=True)


def publish(broker: Broker, d: Draft) -> asyncio.Future[Message]:
    """`Broker.publish` with its outcome as a future; the place is taken before it returns."""
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    broker.publish(d, partial(settle, future))
    return future


async def test_publishes_get_contiguous_offsets_in_the_order_they_were_made(
    opened: Opened,
) -> None:
    broker = opened.broker
    await broker.subscribe("r")
    # Not awaited one by one: each takes its place as it is made.
    stored = await asyncio.gather(*(publish(broker, draft("r", f"m{i}")) for i in range(1, 21)))
    assert [m.offset for m in stored] == list(range(1, 21))
    assert [m.text for m in stored] == [f"m{i}" for i in range(1, 21)]
    assert len({m.epoch for m in stored}) == 1 and not any(m.duplicate for m in stored)
    other = await publish(broker, draft("other", "x"))
    assert other.offset == 1
    page = await broker.read("r", limit=50)
    assert page is not None and page.messages == stored


async def test_a_subscribed_room_is_delivered_exactly_once_in_order(opened: Opened) -> None:
    broker, node = opened.broker, opened.node
    await broker.subscribe("r")
    for batch in range(3):
        await asyncio.gather(*(publish(broker, draft("r", f"{batch}-{i}")) for i in range(7)))
        await node.settled("r", 7 * (batch + 1))
        state = await broker.room_state("r")
        # Everything at or below the reported offset has been handed to the node.
        assert state is not None and state.offset == max(node.offsets("r"))
    assert node.offsets("r") == list(range(1, 22))
    assert node.resets == []


async def test_every_outcome_comes_after_its_delivery(opened: Opened) -> None:
    if not opened.local:
        pytest.skip("across nodes the outcome comes from Redis before the channel's copy")
    broker, node = opened.broker, opened.node
    await broker.subscribe("r")
    seen_at_outcome: list[tuple[int, list[int]]] = []

    def then(outcome: Message | StoreError) -> None:
        assert isinstance(outcome, Message)
        seen_at_outcome.append((outcome.offset, node.offsets("r")))

    for i in range(5):
        broker.publish(draft("r", f"m{i}"), then)
    for _ in range(200):
        if len(seen_at_outcome) == 5:
            break
        await asyncio.sleep(0.01)
    assert [offset for offset, _ in seen_at_outcome] == [1, 2, 3, 4, 5]
    assert all(offset in delivered for offset, delivered in seen_at_outcome)


async def test_a_repeated_id_stores_and_delivers_nothing(opened: Opened) -> None:
    broker, node = opened.broker, opened.node
    await broker.subscribe("r")
    first = await publish(broker, draft("r", "original", "order-1"))
    again = await publish(broker, draft("r", "other text", "order-1"))
    assert not first.duplicate and again.duplicate
    assert (again.id, again.offset, again.epoch, again.text, again.ts) == (
        first.id, first.offset, first.epoch, "original", first.ts)
    # The same id in another room is another message.
    elsewhere = await publish(broker, draft("s", "original", "order-1"))
    assert (elsewhere.offset, elsewhere.duplicate) == (1, False)
    after = await publish(broker, draft("r", "next"))
    assert after.offset == first.offset + 1
    assert await node.settled("r", 2) == [1, 2]
    assert [m.text for m in node.delivered if m.room == "r"] == ["original", "next"]
    page = await broker.read("r", limit=10)
    assert page is not None and [m.text for m in page.messages] == ["original", "next"]


async def test_a_repeat_made_while_the_original_is_pending_gets_the_same_answer(
    opened: Opened,
) -> None:
    broker, node = opened.broker, opened.node
    await broker.subscribe("r")
    # All three made before any outcome (the SQLite broker's are pending then).
    futures = [publish(broker, draft("r", "a", "same")), publish(broker, draft("r", "b")),
               publish(broker, draft("r", "c", "same"))]
    first, other, repeat = await asyncio.gather(*futures)
    assert (first.offset, other.offset, repeat.offset) == (1, 2, 1)
    assert (first.duplicate, other.duplicate, repeat.duplicate) == (False, False, True)
    assert await node.settled("r", 2) == [1, 2]


async def test_joining_and_leaving_a_room_leaves_no_trace(opened: Opened) -> None:
    broker = opened.broker
    await broker.subscribe("quiet")
    created = await broker.room_state("quiet", create=True)
    assert created is not None and (created.offset, created.first_offset) == (0, 1)
    assert await broker.room_count() == 1
    broker.unsubscribe("quiet")
    # A Redis node unsubscribes a little later (`UNSUBSCRIBE_DELAY_S`), then forgets it.
    for _ in range(100 if opened.local else 800):
        if await broker.room_state("quiet") is None:
            break
        await asyncio.sleep(0.01)
    assert await broker.room_state("quiet") is None
    assert "quiet" not in await broker.rooms() and await broker.room_count() == 0


async def test_a_room_with_messages_outlives_its_subscription(opened: Opened) -> None:
    broker, node = opened.broker, opened.node
    await broker.subscribe("kept")
    stored = await publish(broker, draft("kept", "stays"))
    broker.unsubscribe("kept")
    state = await broker.room_state("kept")
    assert state is not None and (state.epoch, state.offset) == (stored.epoch, 1)
    # Subscribing again goes on from where the room is.
    await broker.subscribe("kept")
    await node.settled("kept", 1)
    before = len(node.delivered)
    assert (await publish(broker, draft("kept", "more"))).offset == 2
    await node.settled("kept", 2)
    assert [m.offset for m in node.delivered[before:]] == [2]
    assert (await broker.rooms())["kept"] == 2


async def test_a_room_never_subscribed_is_stored_but_only_subscribed_ones_are_promised(
    opened: Opened,
) -> None:
    # Publishing (an HTTP publish) to a room nobody on the node is in stores it.
    broker = opened.broker
    stored = await publish(broker, draft("nobody-here", "kept"))
    assert stored.offset == 1
    page = await broker.read("nobody-here", limit=5)
    assert page is not None and [m.text for m in page.messages] == ["kept"]
    assert await broker.read("never", limit=5) is None


async def test_retention_keeps_the_newest_and_never_renumbers(opened: Opened) -> None:
    broker = opened.broker
    await broker.subscribe("r")
    stored = [await publish(broker, draft("r", f"m{i}")) for i in range(1, 11)]
    removed = await broker.trim(max_count=3, max_age_ms=None, now_ms=0)
    assert removed == 7
    page = await broker.read("r", limit=20)
    assert page is not None and [m.offset for m in page.messages] == [8, 9, 10]
    state = await broker.room_state("r")
    assert state is not None and (state.offset, state.first_offset) == (10, 8)
    # By age: everything older than the newest message's time goes.
    newest = stored[-1].ts
    assert await broker.trim(max_count=None, max_age_ms=0, now_ms=newest) >= 0
    page = await broker.read("r", limit=20)
    assert page is not None and all(m.ts >= newest for m in page.messages)
    assert (await publish(broker, draft("r", "next"))).offset == 11


async def test_health_of_an_open_broker(opened: Opened) -> None:
    assert opened.broker.usable() and opened.broker.health() == "up"
    assert opened.broker.listener_restarts == 0


# -- random interleavings, as a property ------------------------------------------------

ROOMS = ("a", "b")
IDS = ("x", "y", "z")

publishes = st.lists(
    st.tuples(st.sampled_from(ROOMS), st.none() | st.sampled_from(IDS), st.booleans()),
    min_size=1, max_size=30,
)
"""(room, id or None, whether to await every outcome so far before this publish)."""


async def _run(factory: BrokerFactory, directory: Path,
               steps: list[tuple[str, str | None, bool]]) -> None:
    broker = factory(directory)
    node = RecordingNode()
    broker.listen(node)
    await broker.open()
    try:
        for room in ROOMS:
            await broker.subscribe(room)
        futures: list[asyncio.Future[Message]] = []
        for index, (room, message_id, wait) in enumerate(steps):
            if wait:
                await asyncio.gather(*futures)
            futures.append(publish(broker, draft(room, f"t{index}", message_id)))
        outcomes = await asyncio.gather(*futures)
        for room in ROOMS:
            await node.settled(room, len({(r, i or n) for n, (r, i, _) in enumerate(steps)
                                          if r == room}))
    finally:
        await broker.close()
    first_of: dict[tuple[str, str], Message] = {}
    expected: dict[str, list[str]] = {room: [] for room in ROOMS}
    for (room, message_id, _), outcome in zip(steps, outcomes, strict=True):
        assert outcome.room == room
        if message_id is not None and (room, message_id) in first_of:
            original = first_of[room, message_id]
            assert outcome.duplicate
            assert (outcome.offset, outcome.epoch, outcome.text) == (
                original.offset, original.epoch, original.text)
            continue
        assert not outcome.duplicate
        if message_id is not None:
            first_of[room, message_id] = outcome
        expected[room].append(outcome.text or "")
    for room in ROOMS:
        delivered = [m for m in node.delivered if m.room == room]
        # Every stored message exactly once, in order, with contiguous offsets.
        assert [m.text for m in delivered] == expected[room]
        assert [m.offset for m in delivered] == list(range(1, len(expected[room]) + 1))
        assert not any(m.duplicate for m in delivered)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=publishes)
def test_random_interleavings_with_and_without_ids(
    broker_factory: BrokerFactory, steps: list[tuple[str, str | None, bool]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_run(broker_factory, Path(directory), steps))
