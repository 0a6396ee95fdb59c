"""Presence across nodes: member lists, room counts and join/leave events are the same on
every node, and the members of a node that died expire within the presence TTL."""

from __future__ import annotations

import signal

import pytest

from cluster.helpers import NodesFactory
from support.server import ServerProcess
from support.wsclient import Event, JsonClient, http_get_json, join, json_client, unique

pytestmark = pytest.mark.timeout(60)

TTL = 3
"""`--presence-ttl` of these tests: short, so that expiry is quick to see."""


async def member_nicks(client: JsonClient, room: str) -> list[str]:
    reply = await client.expect("members", room=room)
    return sorted(member["nick"] for member in reply["members"])


async def http_member_nicks(node: ServerProcess, room: str) -> list[str]:
    status, body = await http_get_json(f"{node.url}/api/rooms/{room}/members")
    assert status == 200, body
    return sorted(member["nick"] for member in body["members"])


async def room_count(node: ServerProcess, room: str) -> int:
    """`GET /api/rooms`' member count of `room` (0 when it is not listed)."""
    status, body = await http_get_json(f"{node.url}/api/rooms?limit=1000")
    assert status == 200, body
    return next((entry["members"] for entry in body["rooms"] if entry["room"] == room), 0)


async def presence_event(client: JsonClient, room: str, kind: str, nick: str,
                         seconds: float = 5.0) -> Event:
    return await client.wait_for(
        lambda e: e["type"] == "presence" and e["room"] == room and e["event"] == kind
        and e["member"]["nick"] == nick, seconds)


async def test_members_counts_and_events_are_the_cluster_s(nodes: NodesFactory) -> None:
    a, b = nodes(2)
    room = unique("presence")
    async with json_client(a.ws_url, nick="alice") as alice:
        await join(alice, room)
        async with json_client(b.ws_url, nick="bob") as bob:
            entry = (await join(bob, room))["rooms"][0]
            assert sorted(m["nick"] for m in entry["members"]) == ["alice", "bob"], entry
            joined = await presence_event(alice, room, "join", "bob")
            assert joined["member"] == {"id": bob.id, "nick": "bob"}
            for client in (alice, bob):
                assert await member_nicks(client, room) == ["alice", "bob"]
            for node in (a, b):
                assert await http_member_nicks(node, room) == ["alice", "bob"]
                assert await room_count(node, room) == 2
            renamed = await bob.expect("nick", nick="robert")
            assert renamed["type"] == "nick_set", renamed
            changed = await presence_event(alice, room, "nick", "robert")
            assert changed["old_nick"] == "bob"
        left = await presence_event(alice, room, "leave", "robert")
        assert left["member"]["id"] == bob.id
        for node in (a, b):
            assert await http_member_nicks(node, room) == ["alice"]
            assert await room_count(node, room) == 1
        # Alice hears of Bob's changes only: never of her own.
        assert not [e for e in alice.pending
                    if e["type"] == "presence" and e["member"]["id"] == alice.id]


async def test_a_killed_node_s_members_expire_with_a_leave_event(nodes: NodesFactory) -> None:
    a, b = nodes(2, "--presence-ttl", str(TTL))
    room = unique("expire")
    async with json_client(a.ws_url, nick="alice") as alice:
        await join(alice, room)
        async with json_client(b.ws_url, nick="carol") as carol:
            await join(carol, room)
            await presence_event(alice, room, "join", "carol")
            assert await room_count(a, room) == 2
            b.stop(signal.SIGKILL)
            # The bound: gone within the TTL (each node sweeps every third of it);
            # twice the TTL leaves room for a loaded machine without hiding a missing sweep.
            left = await presence_event(alice, room, "leave", "carol", seconds=2 * TTL)
            assert left["member"] == {"id": carol.id, "nick": "carol"}
        assert await member_nicks(alice, room) == ["alice"]
        assert await http_member_nicks(a, room) == ["alice"]
        assert await room_count(a, room) == 1
        # Exactly one leave for Carol, however many sweeps ran.
        await alice.assert_alive()
        assert not [e for e in alice.pending if e["type"] == "presence"
                    and e["member"]["id"] == carol.id and e["event"] == "leave"]
