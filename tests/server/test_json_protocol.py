"""`hubbub.v1`: one test per message type of docs/protocol.md, with its exact fields."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from support.server import ServerProcess
from support.wsclient import Event, http_post_json, join, json_client, plain_client, unique

pytestmark = pytest.mark.timeout(60)

ID = re.compile(r"[0-9a-f]{12}")


@pytest.fixture(scope="module")
def module_server(adapter_server: ServerProcess) -> ServerProcess:
    """These protocol tests run over both adapters (conftest's `adapter_server`)."""
    return adapter_server



def is_message(room: str) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "message" and e["room"] == room


async def publish_n(url: str, room: str, count: int) -> list[int]:
    """Publish `count` messages through the HTTP API; returns their offsets."""
    offsets = []
    for i in range(count):
        status, body = await http_post_json(f"{url}/api/rooms/{room}/messages",
                                            {"text": f"m{i}"})
        assert status == 201, body
        offsets.append(body["offset"])
    return offsets


async def test_welcome(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as a, json_client(module_server.ws_url) as b:
        w = a.welcome
        assert set(w) == {"type", "protocol", "server", "id", "nick", "heartbeat", "limits"}
        assert w["protocol"] == "hubbub.v1"
        assert w["server"].startswith("hubbub/")
        assert ID.fullmatch(w["id"])
        assert re.fullmatch(r"guest-[0-9a-f]{4}", w["nick"])
        assert w["heartbeat"] == 30 and isinstance(w["heartbeat"], int)  # as documented
        assert w["limits"] == {"max_frame_bytes": 65536, "max_text_bytes": 8192,
                               "max_rooms": 100, "history_page_max": 100,
                               "rate_per_second": 0, "rate_burst": 100}
        assert b.welcome["id"] != w["id"]


async def test_welcome_uses_nick_query(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url, nick="carol") as c:
        assert c.welcome["nick"] == "carol"


async def test_nick_set_and_presence_nick_to_others(module_server: ServerProcess) -> None:
    room = unique("nick")
    async with json_client(module_server.ws_url, nick="bob") as bob, \
            json_client(module_server.ws_url, nick="watcher") as watcher:
        await join(watcher, room)
        await join(bob, room)
        await watcher.wait_for(lambda e: e["type"] == "presence" and e["event"] == "join")
        reply = await bob.request("nick", nick="robert")
        assert reply == {"type": "nick_set", "nick": "robert", "ref": reply["ref"]}
        event = await watcher.wait_for(lambda e: e["type"] == "presence")
        assert event == {"type": "presence", "room": room, "event": "nick",
                         "member": {"id": bob.id, "nick": "robert"}, "old_nick": "bob"}
        # The new name is used from then on.
        await bob.expect("publish", room=room, text="hi")
        message = await watcher.wait_for(is_message(room))
        assert message["from"] == "robert"


async def test_join_several_rooms_at_once(module_server: ServerProcess) -> None:
    busy, empty = unique("busy"), unique("empty")
    await publish_n(module_server.url, busy, 3)
    async with json_client(module_server.ws_url, nick="alice") as alice, \
            json_client(module_server.ws_url, nick="bob") as bob:
        await join(bob, busy)
        reply = await alice.request("join", rooms=[busy, empty])
        assert reply["type"] == "joined"
        assert set(reply) == {"type", "ref", "rooms"}
        first, second = reply["rooms"]
        assert first["room"] == busy and second["room"] == empty
        assert first["offset"] == 3 and second["offset"] == 0
        assert first["recovered"] is True and second["recovered"] is True
        assert isinstance(first["epoch"], str) and first["epoch"]
        assert isinstance(second["epoch"], str) and second["epoch"]
        assert sorted(m["id"] for m in first["members"]) == sorted([alice.id, bob.id])
        assert {"id": alice.id, "nick": "alice"} in first["members"]
        assert second["members"] == [{"id": alice.id, "nick": "alice"}]
        # Exactly one reply: the next frame for this connection is the answer to a ping.
        await alice.assert_alive()
        assert [e for e in alice.pending if e["type"] == "joined"] == []


async def test_join_mixed_forms(module_server: ServerProcess) -> None:
    a, b = unique("mixed"), unique("mixed")
    async with json_client(module_server.ws_url) as client:
        reply = await join(client, a, {"room": b})
        assert [r["room"] for r in reply["rooms"]] == [a, b]


async def test_join_already_joined_room(module_server: ServerProcess) -> None:
    room = unique("again")
    async with json_client(module_server.ws_url) as client, \
            json_client(module_server.ws_url) as other:
        await join(other, room)
        first = await join(client, room)
        second = await join(client, room)
        assert second["rooms"][0]["room"] == room
        assert second["rooms"][0]["epoch"] == first["rooms"][0]["epoch"]
        members = (await client.expect("members", room=room))["members"]
        assert [m["id"] for m in members].count(client.id) == 1
        # Not joined twice: one publish arrives once.
        await other.expect("publish", room=room, text="once")
        await client.wait_for(is_message(room))
        await client.assert_alive()
        assert not [e for e in client.pending if e["type"] == "message"]


async def test_rejoining_with_a_position_from_elsewhere_says_it_cannot_recover(
        module_server: ServerProcess) -> None:
    room = unique("rejoin")
    async with json_client(module_server.ws_url) as client:
        await join(client, room)
        ack = await client.expect("publish", room=room, text="something to have seen")
        epoch, offset = ack["epoch"], ack["offset"]
        cases = [
            ({"offset": offset, "epoch": epoch}, True, None),
            ({"offset": offset, "epoch": "0" * len(epoch)}, False, "epoch_changed"),
            ({"offset": offset + 5, "epoch": epoch}, False, "offset_ahead"),
            # Nothing seen (offset 0) cannot be wrong, whatever the epoch.
            ({"offset": 0, "epoch": "0" * len(epoch)}, True, None),
        ]
        for since, recovered, reason in cases:
            entry = (await join(client, {"room": room, "since": since}))["rooms"][0]
            assert entry["recovered"] is recovered, (since, entry)
            assert entry.get("reason") == reason
        await client.assert_alive()


async def test_leave(module_server: ServerProcess) -> None:
    room = unique("leave")
    async with json_client(module_server.ws_url, nick="stayer") as stayer, \
            json_client(module_server.ws_url, nick="goer") as goer:
        await join(stayer, room)
        await join(goer, room)
        await stayer.wait_for(lambda e: e["type"] == "presence" and e["event"] == "join")
        reply = await goer.request("leave", rooms=[room])
        assert reply == {"type": "left", "rooms": [room], "ref": reply["ref"]}
        event = await stayer.wait_for(lambda e: e["type"] == "presence")
        assert event == {"type": "presence", "room": room, "event": "leave",
                         "member": {"id": goer.id, "nick": "goer"}}
        # Gone: no more messages, and publishing needs a new join.
        await stayer.expect("publish", room=room, text="after leave")
        await goer.send({"type": "publish", "room": room, "text": "x"})
        refused = await goer.wait_for(lambda e: e["type"] == "error")
        assert refused["code"] == "not_joined"
        assert not [e for e in goer.pending if e["type"] == "message"]


async def test_leave_a_room_never_joined_still_answers(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as client:
        reply = await client.request("leave", rooms=[unique("never")])
        assert reply["type"] == "left"


async def test_publish_ack_follows_own_message(module_server: ServerProcess) -> None:
    room = unique("pub")
    async with json_client(module_server.ws_url, nick="alice") as alice:
        joined = await join(alice, room)
        epoch = joined["rooms"][0]["epoch"]
        before = int(time.time() * 1000)
        await alice.send({"type": "publish", "room": room, "text": "hello", "ref": "p1"})
        first, second = await alice.recv(), await alice.recv()
        after = int(time.time() * 1000)
        assert first["type"] == "message", (first, second)
        assert second == {"type": "ack", "ref": "p1", "room": room, "id": first["id"],
                          "offset": 1, "epoch": epoch, "ts": first["ts"]}
        assert set(first) == {"type", "room", "offset", "epoch", "id", "from", "sender",
                              "text", "ts"}
        assert first["room"] == room and first["offset"] == 1 and first["epoch"] == epoch
        assert first["from"] == "alice" and first["sender"] == alice.id
        assert first["text"] == "hello"
        assert before - 5_000 <= first["ts"] <= after + 5_000  # ms since the Unix epoch
        assert isinstance(first["id"], str) and first["id"]


async def test_message_to_other_members(module_server: ServerProcess) -> None:
    room = unique("msg")
    async with json_client(module_server.ws_url, nick="alice") as alice, \
            json_client(module_server.ws_url, nick="bob") as bob:
        await join(alice, room)
        await join(bob, room)
        ack = await alice.expect("publish", room=room, text="to bob")
        event = await bob.wait_for(is_message(room))
        assert event == {"type": "message", "room": room, "offset": ack["offset"],
                         "epoch": ack["epoch"], "id": ack["id"], "from": "alice",
                         "sender": alice.id, "text": "to bob", "ts": ack["ts"]}


async def test_publish_data_beside_text(module_server: ServerProcess) -> None:
    room = unique("data")
    async with json_client(module_server.ws_url) as client:
        await join(client, room)
        data = {"build": 812, "nested": [1, None, {"ok": True}], "s": "ü"}
        await client.expect("publish", room=room, text="with data", data=data)
        await client.expect("publish", room=room, data=[1, 2, 3])
        both, only_data = await client.messages(room, 2)
        assert both["text"] == "with data" and both["data"] == data
        assert only_data["data"] == [1, 2, 3] and "text" not in only_data


async def test_server_initiated_message_has_null_sender(module_server: ServerProcess) -> None:
    room = unique("server")
    async with json_client(module_server.ws_url) as client:
        await join(client, room)
        await http_post_json(f"{module_server.url}/api/rooms/{room}/messages", {"text": "x"})
        event = await client.wait_for(is_message(room))
        assert event["sender"] is None and event["from"] == "server"


async def test_presence_join_to_others_not_to_self(module_server: ServerProcess) -> None:
    room = unique("presence")
    async with json_client(module_server.ws_url, nick="first") as first, \
            json_client(module_server.ws_url, nick="second") as second:
        await join(first, room)
        await join(second, room)
        event = await first.wait_for(lambda e: e["type"] == "presence")
        assert event == {"type": "presence", "room": room, "event": "join",
                         "member": {"id": second.id, "nick": "second"}}
        await second.assert_alive()
        await first.assert_alive()
        assert not [e for e in second.pending if e["type"] == "presence"]
        assert not [e for e in first.pending if e["type"] == "presence"]


async def test_members(module_server: ServerProcess) -> None:
    room = unique("members")
    async with json_client(module_server.ws_url, nick="a") as a, \
            json_client(module_server.ws_url, nick="b") as b:
        await join(a, room)
        await join(b, room)
        reply = await a.request("members", room=room)
        assert set(reply) == {"type", "ref", "room", "members"}
        assert reply["type"] == "member_list" and reply["room"] == room
        assert sorted(reply["members"], key=lambda m: m["nick"]) == [
            {"id": a.id, "nick": "a"}, {"id": b.id, "nick": "b"}]


async def test_members_of_empty_room(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as client:
        reply = await client.expect("members", room=unique("nobody"))
        assert reply["members"] == []


async def test_rooms(module_server: ServerProcess) -> None:
    room = unique("listed")
    await publish_n(module_server.url, room, 2)
    async with json_client(module_server.ws_url) as client:
        await join(client, room)
        reply = await client.request("rooms", limit=1000)
        assert reply["type"] == "room_list"
        assert set(reply) == {"type", "ref", "rooms", "has_more"}
        entry = next(r for r in reply["rooms"] if r["room"] == room)
        assert entry == {"room": room, "members": 1, "offset": 2}


async def test_ping_pong(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as client:
        await client.send({"type": "ping", "ref": 9})
        assert await client.recv() == {"type": "pong", "ref": 9}
        await client.send({"type": "ping"})
        assert await client.recv() == {"type": "pong"}


@pytest.mark.parametrize("ref", ["a-string-ref", 42, 0, -7, "x" * 64])
async def test_ref_echoed_on_every_reply_and_error(module_server: ServerProcess,
                                                   ref: str | int) -> None:
    room = unique("ref")
    requests: list[dict[str, object]] = [
        {"type": "nick", "nick": "reffy"},
        {"type": "join", "rooms": [room]},
        {"type": "publish", "room": room, "text": "t"},
        {"type": "history", "room": room},
        {"type": "members", "room": room},
        {"type": "rooms"},
        {"type": "ping"},
        {"type": "leave", "rooms": [room]},
        {"type": "publish", "room": room, "text": "t"},  # error: not_joined
        {"type": "nick", "nick": ""},  # error: invalid_nick
        {"type": "nosuch"},  # error: unknown_type
        {"type": "history", "room": unique("never")},  # error: room_not_found
    ]
    async with json_client(module_server.ws_url) as client:
        for request in requests:
            await client.send({**request, "ref": ref})
            reply = await client.wait_for(lambda e: e["type"] not in ("message", "presence"))
            assert reply.get("ref") == ref, (request, reply)
            assert type(reply["ref"]) is type(ref)


async def _history_room(url: str, count: int) -> str:
    room = unique("hist")
    await publish_n(url, room, count)
    return room


def offsets(page: Event) -> list[int]:
    return [m["offset"] for m in page["messages"]]


async def test_history_latest_default(module_server: ServerProcess) -> None:
    room = await _history_room(module_server.url, 60)
    async with json_client(module_server.ws_url) as client:
        page = await client.request("history", room=room)
        assert page["type"] == "history_page"
        assert set(page) == {"type", "ref", "room", "epoch", "offset", "messages", "has_more"}
        assert page["room"] == room and page["offset"] == 60
        assert offsets(page) == list(range(11, 61))  # default limit 50, latest, ascending
        assert page["has_more"] is True
        first = page["messages"][0]
        assert first["type"] == "message" and first["room"] == room
        assert first["text"] == "m10" and first["epoch"] == page["epoch"]


async def test_history_limit_before_after(module_server: ServerProcess) -> None:
    room = await _history_room(module_server.url, 10)
    async with json_client(module_server.ws_url) as client:
        page = await client.expect("history", room=room, limit=2, before=5)
        assert offsets(page) == [3, 4] and page["has_more"] is True
        page = await client.expect("history", room=room, limit=5, before=3)
        assert offsets(page) == [1, 2] and page["has_more"] is False
        page = await client.expect("history", room=room, limit=3, after=2)
        assert offsets(page) == [3, 4, 5] and page["has_more"] is True
        page = await client.expect("history", room=room, limit=3, after=7)
        assert offsets(page) == [8, 9, 10] and page["has_more"] is False
        page = await client.expect("history", room=room, limit=3, after=10)
        assert offsets(page) == [] and page["has_more"] is False
        page = await client.expect("history", room=room, limit=3)
        assert offsets(page) == [8, 9, 10] and page["has_more"] is True
        page = await client.expect("history", room=room, limit=10)
        assert offsets(page) == list(range(1, 11)) and page["has_more"] is False
        page = await client.expect("history", room=room, limit=100)
        assert offsets(page) == list(range(1, 11)) and page["has_more"] is False


async def test_history_of_joined_but_silent_room_is_empty(
        module_server: ServerProcess) -> None:
    room = unique("silent")
    async with json_client(module_server.ws_url) as client:
        await join(client, room)
        page = await client.expect("history", room=room)
        assert page["messages"] == [] and page["offset"] == 0 and page["has_more"] is False


async def test_history_join_option(module_server: ServerProcess) -> None:
    room = await _history_room(module_server.url, 8)
    async with json_client(module_server.ws_url) as client:
        reply = await join(client, {"room": room, "history": 3})
        assert reply["rooms"][0]["offset"] == 8
        replayed = await client.messages(room, 3)
        assert [m["offset"] for m in replayed] == [6, 7, 8]
        await client.assert_alive()
        assert not [e for e in client.pending if e["type"] == "message"]


async def test_history_join_option_capped_at_page_max(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as client:
        reply = await client.request("join", rooms=[{"room": unique("cap"), "history": 101}])
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        assert reply["reason"] == "history must be an integer from 1 to 100"


async def test_history_above_page_max_refuses_the_whole_join(
        module_server: ServerProcess) -> None:
    # Documented in docs/protocol.md: not a cap, a refusal of every room in the request.
    fine, capped = unique("fine"), unique("cap")
    async with json_client(module_server.ws_url) as client:
        reply = await client.request("join", rooms=[fine, {"room": capped, "history": 101}])
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        for room in (fine, capped):
            refused = await client.request("publish", room=room, text="x")
            assert refused["type"] == "error" and refused["code"] == "not_joined", refused
        assert (await join(client, {"room": capped, "history": 100}))["type"] == "joined"


async def test_concurrent_publishers_offsets_strictly_increase(
        module_server: ServerProcess) -> None:
    room = unique("race")
    publishers, each = 4, 25
    async with json_client(module_server.ws_url) as subscriber:
        await join(subscriber, room)

        async def publisher(n: int) -> None:
            async with json_client(module_server.ws_url) as client:
                await join(client, room)
                for i in range(each):
                    await client.send({"type": "publish", "room": room, "text": f"{n}-{i}",
                                       "ref": i})
                for _ in range(each):
                    await client.wait_for(lambda e: e["type"] == "ack")

        await asyncio.gather(*(publisher(n) for n in range(publishers)))
        received = await subscriber.messages(room, publishers * each)
        assert [m["offset"] for m in received] == list(range(1, publishers * each + 1))
        assert len({m["text"] for m in received}) == publishers * each


async def test_presence_leave_on_disconnect(module_server: ServerProcess) -> None:
    room = unique("vanish")
    async with json_client(module_server.ws_url, nick="stays") as stays:
        await join(stays, room)
        async with json_client(module_server.ws_url, nick="drops") as drops:
            await join(drops, room)
            await stays.wait_for(lambda e: e["type"] == "presence" and e["event"] == "join")
            gone = drops.id
        event = await stays.wait_for(lambda e: e["type"] == "presence")
        assert event == {"type": "presence", "room": room, "event": "leave",
                         "member": {"id": gone, "nick": "drops"}}
        assert (await stays.expect("members", room=room))["members"] == [
            {"id": stays.id, "nick": "stays"}]


async def test_plain_client_is_a_lobby_member(module_server: ServerProcess) -> None:
    async with json_client(module_server.ws_url) as watcher:
        await join(watcher, "lobby")
        async with plain_client(module_server.ws_url, nick="plainpal"):
            event = await watcher.wait_for(lambda e: e["type"] == "presence"
                                           and e["member"]["nick"] == "plainpal")
            assert event["event"] == "join" and event["room"] == "lobby"
            members = (await watcher.expect("members", room="lobby"))["members"]
            assert event["member"] in members
        event = await watcher.wait_for(lambda e: e["type"] == "presence"
                                       and e["member"]["nick"] == "plainpal")
        assert event["event"] == "leave"


@pytest.mark.parametrize("room", ["café", "日本語", "a" * 64, "a.b:c@d_e-f", "Αθήνα", "١٢٣"])
async def test_valid_unusual_room_names_work_end_to_end(module_server: ServerProcess,
                                                        room: str) -> None:
    async with json_client(module_server.ws_url, nick="n" * 32) as client:
        await join(client, room)
        ack = await client.expect("publish", room=room, text="ok")
        event = await client.wait_for(is_message(room))
        assert event["id"] == ack["id"] and event["from"] == "n" * 32
        status, body = await http_post_json(
            f"{module_server.url}/api/rooms/{quote(room)}/messages", {"text": "http"})
        assert status == 201 and body["room"] == room
        assert (await client.wait_for(is_message(room)))["text"] == "http"


async def test_rooms_are_case_sensitive(module_server: ServerProcess) -> None:
    lower = unique("case")
    upper = lower.upper()
    async with json_client(module_server.ws_url) as client:
        await join(client, lower)
        await client.expect("publish", room=lower, text="lower")
        refused = await client.request("publish", room=upper, text="upper")
        assert refused["code"] == "not_joined"
