"""Round trips of `hubbub.client` against a real server process."""

from __future__ import annotations

import pytest

from hubbub.client import (
    Ack,
    HubbubError,
    Member,
    Message,
    PresenceEvent,
    connect,
)
from support.server import ServerProcess

from .helpers import messages, next_of, post


async def test_join_send_ack_and_receive(shared_server: ServerProcess) -> None:
    async with (
        connect(shared_server.ws_url, nick="ada") as ada,
        connect(shared_server.url, nick="bob") as bob,
    ):
        await ada.join("general", "random")
        await bob.join("general")
        assert set(ada.rooms) == {"general", "random"}
        ack = await ada.send("general", "hello", data={"n": 1})
        assert isinstance(ack, Ack)
        assert (ack.room, ack.offset) == ("general", 1)
        assert ack.id and ack.epoch and ack.ts > 0

        [got] = await messages(bob, 1)
        assert (got.room, got.offset, got.id, got.epoch) == ("general", 1, ack.id, ack.epoch)
        assert (got.nick, got.text, got.data, got.sender) == ("ada", "hello", {"n": 1},
                                                              ada.connection_id)
        assert not got.own
        [echo] = await messages(ada, 1)
        assert echo.own and echo.id == ack.id

        second = await bob.send("general", data=[1, 2])
        assert second.offset == 2
        [mine] = await messages(bob, 1)
        assert mine.text is None and mine.body == "[1,2]"


async def test_history_pages(shared_server: ServerProcess) -> None:
    async with connect(shared_server.ws_url, nick="ada") as ada:
        await ada.join("log")
        for i in range(1, 8):
            assert (await ada.send("log", f"m{i}")).offset == i
        latest = await ada.history("log", limit=3)
        assert [m.offset for m in latest.messages] == [5, 6, 7]
        assert latest.has_more and latest.offset == 7
        older = await ada.history("log", limit=3, before=5)
        assert [m.text for m in older.messages] == ["m2", "m3", "m4"]
        assert older.has_more
        oldest = await ada.history("log", limit=3, before=2)
        assert [m.offset for m in oldest.messages] == [1] and not oldest.has_more
        newer = await ada.history("log", after=5)
        assert [m.offset for m in newer.messages] == [6, 7] and not newer.has_more
        assert all(m.own for m in newer.messages)


async def test_history_of_unknown_room_and_bad_limit(shared_server: ServerProcess) -> None:
    async with connect(shared_server.ws_url) as chat:
        with pytest.raises(HubbubError) as info:
            await chat.history("never-used")
        assert info.value.code == "room_not_found"
        await chat.join("x")
        with pytest.raises(HubbubError) as info:
            await chat.history("x", limit=10_000)
        assert info.value.code == "bad_request"
        with pytest.raises(HubbubError) as info:
            await chat.history("x", limit=-1)
        assert info.value.code == "bad_request"


async def test_presence_tracks_join_nick_and_leave(shared_server: ServerProcess) -> None:
    async with connect(shared_server.ws_url, nick="ada") as ada:
        await ada.join("room")
        assert ada.presence("room") == (Member(ada.connection_id or "", "ada"),)
        async with connect(shared_server.ws_url, nick="bob") as bob:
            await bob.join("room")
            joined = await next_of(ada, PresenceEvent)
            assert (joined.event, joined.member.nick) == ("join", "bob")
            assert {m.nick for m in ada.presence("room")} == {"ada", "bob"}
            assert {m.nick for m in bob.presence("room")} == {"ada", "bob"}

            assert await bob.set_nick("robert") == "robert"
            assert bob.nick == "robert"
            renamed = await next_of(ada, PresenceEvent)
            assert (renamed.event, renamed.old_nick, renamed.member.nick) == (
                "nick", "bob", "robert")
            assert {m.nick for m in ada.presence("room")} == {"ada", "robert"}
            assert {m.nick for m in bob.presence("room")} == {"ada", "robert"}
            assert {m.nick for m in await ada.members("room")} == {"ada", "robert"}

            await bob.leave("room")
            assert bob.rooms == () and bob.presence("room") == ()
            left = await next_of(ada, PresenceEvent)
            assert (left.event, left.member.nick) == ("leave", "robert")
            assert [m.nick for m in ada.presence("room")] == ["ada"]


async def test_room_list(shared_server: ServerProcess) -> None:
    async with connect(shared_server.ws_url) as chat:
        await chat.join("a1", "b2")
        await chat.send("b2", "x")
        rooms = {info.room: info for info in await chat.list_rooms()}
        assert rooms["a1"].members == 1 and rooms["b2"].offset == 1
        await chat.ping()


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.join("bad room"), "invalid_room"),
        (lambda c: c.join("x" * 65), "invalid_room"),
        (lambda c: c.send("not-joined", "hi"), "not_joined"),
        (lambda c: c.send("bad room!", "hi"), "invalid_room"),
        (lambda c: c.set_nick(" spaced "), "invalid_nick"),
        (lambda c: c.set_nick("x" * 33), "invalid_nick"),
        (lambda c: c.set_nick(""), "invalid_nick"),
        (lambda c: c.send("lobby"), "bad_request"),
        (lambda c: c.send("lobby", "x" * 8193), "message_too_large"),
    ],
)
async def test_server_errors_raise_hubbub_error(shared_server: ServerProcess, call, code) -> None:  # type: ignore[no-untyped-def]
    async with connect(shared_server.ws_url, nick="ada") as chat:
        await chat.join("lobby")
        with pytest.raises(HubbubError) as info:
            await call(chat)
        assert info.value.code == code
        assert info.value.reason
        # The connection stays usable after an error.
        assert (await chat.send("lobby", "still here")).offset >= 1
        assert chat.nick == "ada"


async def test_http_published_message_reaches_client(shared_server: ServerProcess) -> None:
    async with connect(shared_server.ws_url) as chat:
        await chat.join("alerts")
        status, body = await post(shared_server.url, "alerts", {"data": {"build": 1}, "from": "ci"})
        assert status == 201, body
        [msg] = await messages(chat, 1)
        assert isinstance(msg, Message)
        assert (msg.nick, msg.sender, msg.data, msg.offset) == ("ci", None, {"build": 1}, 1)
        assert not msg.own
