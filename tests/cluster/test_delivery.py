"""Rooms shared by real nodes through Redis: delivery across nodes is in order and exactly
once, offsets are one sequence whichever node publishes, joins and moves between nodes
have exact boundaries, and an idempotent publish is one message on every node.

Publisher and subscriber are always on different nodes.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from cluster.helpers import NodesFactory, acked, offsets, publish_all, until_marker
from support.storm import join_and_check, publishing
from support.wsclient import http_post_json, join, json_client, unique

pytestmark = pytest.mark.timeout(60)

COUNT = 40
"""Messages per publisher: enough for order to matter, few enough to stay quick."""


async def test_fan_out_across_three_nodes_in_order_exactly_once(nodes: NodesFactory) -> None:
    a, b, c = nodes(3)
    room = unique("fanout")
    async with AsyncExitStack() as stack:
        subscribers = [await stack.enter_async_context(json_client(node.ws_url))
                       for node in (b, b, c, c)]
        for subscriber in subscribers:
            await join(subscriber, room)
        publisher = await stack.enter_async_context(json_client(a.ws_url))
        await join(publisher, room)
        texts = [f"m{i}" for i in range(COUNT)]
        acks = acked(await publish_all(publisher, room, texts))
        assert offsets(acks) == list(range(1, COUNT + 1))
        await publisher.expect("publish", room=room, text="end")
        for subscriber in subscribers:
            got = await until_marker(subscriber, room, "end")
            assert [m["text"] for m in got] == texts
            assert [m["id"] for m in got] == [ack["id"] for ack in acks]
            assert offsets(got) == offsets(acks)
            assert {m["epoch"] for m in got} == {acks[0]["epoch"]}


async def test_three_nodes_publishing_share_one_sequence(nodes: NodesFactory) -> None:
    room = unique("shared")
    servers = nodes(3)
    async with AsyncExitStack() as stack:
        publishers = [await stack.enter_async_context(json_client(node.ws_url))
                      for node in servers]
        subscribers = [await stack.enter_async_context(json_client(node.ws_url))
                       for node in servers]
        for client in (*subscribers, *publishers):
            await join(client, room)
        replies = await asyncio.gather(*(
            publish_all(publisher, room, [f"n{index}-{i}" for i in range(COUNT)])
            for index, publisher in enumerate(publishers)))
        everything = [ack for node_acks in replies for ack in acked(node_acks)]
        # Unique and contiguous: every offset of 1..3*COUNT taken exactly once.
        assert sorted(offsets(everything)) == list(range(1, 3 * COUNT + 1))
        assert len({ack["epoch"] for ack in everything}) == 1
        for node_acks in replies:  # each node's publishes keep their send order
            assert offsets(node_acks) == sorted(offsets(node_acks))
        await publishers[0].expect("publish", room=room, text="end")
        by_offset = {ack["offset"]: ack["id"] for ack in everything}
        sequences = [await until_marker(subscriber, room, "end") for subscriber in subscribers]
        for got in sequences:
            assert offsets(got) == list(range(1, 3 * COUNT + 1))
            assert [m["id"] for m in got] == [by_offset[o] for o in offsets(got)]
        # Identical on every node, field by field (text, sender, ts: the stored message).
        assert sequences[1] == sequences[0] and sequences[2] == sequences[0]


@pytest.mark.parametrize("form", ["plain", "since", "history"])
async def test_joins_on_another_node_during_a_publish_storm_are_exact(
        nodes: NodesFactory, form: str) -> None:
    a, b = nodes(2)
    room = unique(f"storm-{form}")
    async with publishing(a, room) as publisher:
        for _ in range(3):
            await asyncio.gather(*(join_and_check(b, publisher, room, form) for _ in range(4)))


async def test_a_client_moving_to_another_node_recovers_exactly_once(
        nodes: NodesFactory) -> None:
    a, b, c = nodes(3)
    room = unique("move")
    async with json_client(c.ws_url) as publisher:
        await join(publisher, room)
        async with json_client(a.ws_url) as mover:
            await join(mover, room)
            seen = await publish_all(publisher, room, [f"seen {i}" for i in range(5)])
            got = await mover.messages(room, 5)
            assert offsets(got) == offsets(acked(seen))
            since = {"offset": got[-1]["offset"], "epoch": got[-1]["epoch"]}
        missed = acked(await publish_all(publisher, room, [f"missed {i}" for i in range(8)]))
        async with json_client(b.ws_url) as back:
            entry = (await join(back, {"room": room, "since": since}))["rooms"][0]
            assert entry["recovered"] is True and "reason" not in entry, entry
            assert entry["offset"] == missed[-1]["offset"] and entry["epoch"] == since["epoch"]
            live = acked(await publish_all(publisher, room, [f"live {i}" for i in range(4)]))
            await publisher.expect("publish", room=room, text="end")
            after = await until_marker(back, room, "end")
            assert [m["text"] for m in after] == (
                [f"missed {i}" for i in range(8)] + [f"live {i}" for i in range(4)])
            assert offsets(after) == list(range(since["offset"] + 1, live[-1]["offset"] + 1))
            assert [m["id"] for m in after] == [ack["id"] for ack in missed + live]


async def test_an_idempotent_retry_on_another_node_is_one_message(nodes: NodesFactory) -> None:
    a, b, c = nodes(3)
    room = unique("retry")
    async with json_client(c.ws_url) as subscriber, json_client(a.ws_url) as on_a, \
            json_client(b.ws_url) as on_b:
        for client in (subscriber, on_a, on_b):
            await join(client, room)
        first = await on_a.expect("publish", room=room, text="original", id="order-17")
        assert first["id"] == "order-17" and "duplicate" not in first, first
        # The retry goes to another node, by HTTP, with another text: the original stands.
        status, body = await http_post_json(f"{b.url}/api/rooms/{room}/messages",
                                            {"text": "retried", "id": "order-17"})
        assert status == 200, body
        assert body["duplicate"] is True, body
        assert (body["id"], body["offset"], body["epoch"]) == (
            "order-17", first["offset"], first["epoch"])
        # And the other way round: first by HTTP on B, retried over WebSocket on A.
        status, created = await http_post_json(f"{b.url}/api/rooms/{room}/messages",
                                               {"text": "by http", "id": "order-18"})
        assert status == 201 and "duplicate" not in created, created
        again = await on_a.expect("publish", room=room, text="again", id="order-18")
        assert again["duplicate"] is True, again
        assert (again["offset"], again["epoch"]) == (created["offset"], created["epoch"])
        await on_b.expect("publish", room=room, text="end")
        got = await until_marker(subscriber, room, "end")
        assert [(m["id"], m["text"]) for m in got] == [("order-17", "original"),
                                                         ("order-18", "by http")]
        assert offsets(got) == [first["offset"], first["offset"] + 1]

