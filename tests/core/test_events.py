"""The wire schema (`hubbub.core.events`), byte for byte as each event goes out, no sockets.

Field order is part of what is pinned: it is what clients and docs/protocol.md have seen.
"""

from __future__ import annotations

import orjson

from hubbub.core import events
from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits
from hubbub.core.message import Message
from hubbub.core.store import HistoryPage, RoomState

TEXT = Message(room="r", offset=7, epoch="e1", id="m7", nick="ann", sender="c1",
               text="hi", data=None, ts=1000)
DATA = Message(room="r", offset=8, epoch="e1", id="m8", nick="server", sender=None,
               text=None, data={"n": [1, 2]}, ts=1001)
BOTH = Message(room="r", offset=9, epoch="e1", id="m9", nick="bot", sender="c2",
               text="t", data=0, ts=1002)
STATE = RoomState("e1", 9, 1)


def wire(event: events.Event) -> bytes:
    return orjson.dumps(event)


def test_a_message_carries_text_and_data_only_when_present() -> None:
    assert wire(events.message(TEXT)) == (
        b'{"type":"message","room":"r","offset":7,"epoch":"e1","id":"m7","from":"ann",'
        b'"sender":"c1","text":"hi","ts":1000}')
    assert wire(events.message(DATA)) == (
        b'{"type":"message","room":"r","offset":8,"epoch":"e1","id":"m8","from":"server",'
        b'"sender":null,"data":{"n":[1,2]},"ts":1001}')
    # Falsy data is still data: only None means absent.
    assert events.message(BOTH)["data"] == 0 and events.message(BOTH)["text"] == "t"


def test_an_ack_is_the_http_receipt_with_type_and_ref() -> None:
    receipt = events.receipt(TEXT)
    assert wire(receipt) == b'{"room":"r","id":"m7","offset":7,"epoch":"e1","ts":1000}'
    assert wire(events.ack(TEXT, "p1")) == (
        b'{"type":"ack","ref":"p1","room":"r","id":"m7","offset":7,"epoch":"e1","ts":1000}')
    assert events.ack(TEXT, None) == {"type": "ack", **receipt}


def test_a_history_page_is_the_http_history_with_type_and_ref() -> None:
    body = events.history("r", HistoryPage(STATE, [TEXT, DATA], has_more=True))
    assert list(body) == ["room", "epoch", "offset", "messages", "has_more"]
    assert body["messages"] == [events.message(TEXT), events.message(DATA)]
    assert (body["epoch"], body["offset"], body["has_more"]) == ("e1", 9, True)
    page = events.history_page(3, body)
    assert list(page) == ["type", "ref", *body] and page["type"] == "history_page"


def test_joined_entries_say_why_a_room_was_not_recovered() -> None:
    asked: list[str] = []

    def members(room: str) -> list[events.Event]:
        asked.append(room)
        return [events.member("c1", "ann")]

    rooms = [events.JoinedRoom("a", STATE), events.JoinedRoom("b", STATE, "epoch_changed")]
    assert wire(events.joined("j", rooms, members)) == (
        b'{"type":"joined","ref":"j","rooms":['
        b'{"room":"a","epoch":"e1","offset":9,"recovered":true,'
        b'"members":[{"id":"c1","nick":"ann"}]},'
        b'{"room":"b","epoch":"e1","offset":9,"recovered":false,"reason":"epoch_changed",'
        b'"members":[{"id":"c1","nick":"ann"}]}]}')
    assert asked == ["a", "b"]


def test_presence_names_the_old_nick_only_for_a_nick_change() -> None:
    ann = events.member("c1", "ann")
    assert wire(events.presence("r", "join", ann)) == (
        b'{"type":"presence","room":"r","event":"join","member":{"id":"c1","nick":"ann"}}')
    assert wire(events.presence("r", "nick", ann, "anne")) == (
        b'{"type":"presence","room":"r","event":"nick","member":{"id":"c1","nick":"ann"},'
        b'"old_nick":"anne"}')


def test_replies_put_type_then_ref_then_their_fields() -> None:
    ann = [events.member("c1", "ann")]
    entry = events.room_entry("r", 2, 9)
    assert wire(events.left(1, ("a", "b"))) == b'{"type":"left","ref":1,"rooms":["a","b"]}'
    assert wire(events.nick_set(None, "ann")) == b'{"type":"nick_set","nick":"ann"}'
    assert wire(events.member_list(2, "r", ann)) == (
        b'{"type":"member_list","ref":2,"room":"r","members":[{"id":"c1","nick":"ann"}]}')
    assert wire(events.members_body("r", ann)) == (
        b'{"room":"r","members":[{"id":"c1","nick":"ann"}]}')
    assert wire(events.room_list(4, [entry], False)) == (
        b'{"type":"room_list","ref":4,"rooms":[{"room":"r","members":2,"offset":9}],'
        b'"has_more":false}')
    assert events.room_page([entry], True) == {"rooms": [entry], "has_more": True}
    assert wire(events.refreshed("t", 1764104400, ["x"])) == (
        b'{"type":"refreshed","ref":"t","expires":1764104400,"left":["x"]}')
    assert wire(events.refreshed("t", None, [])) == (
        b'{"type":"refreshed","ref":"t","expires":null,"left":[]}')
    assert wire(events.pong(9)) == b'{"type":"pong","ref":9}'
    assert wire(events.pong(None)) == b'{"type":"pong"}'


def test_an_error_has_its_ref_and_retry_after_only_when_given() -> None:
    assert wire(events.error_body("unauthorized", "no")) == (
        b'{"code":"unauthorized","reason":"no"}')
    assert wire(events.error(ErrorCode.NOT_JOINED, "join first", 3)) == (
        b'{"type":"error","code":"not_joined","reason":"join first","ref":3}')
    assert wire(events.error(ErrorCode.BINARY_NOT_SUPPORTED, "send JSON")) == (
        b'{"type":"error","code":"binary_not_supported","reason":"send JSON"}')
    assert wire(events.error(ErrorCode.RATE_LIMITED, "slow", "x", retry_after=21)) == (
        b'{"type":"error","code":"rate_limited","reason":"slow","ref":"x","retry_after":21}')


def test_the_welcome_states_every_limit() -> None:
    limits = Limits(max_frame_bytes=10, max_text_bytes=5, max_rooms=2, history_page_max=3,
                    rate_per_second=1.5, rate_burst=4)
    event = events.welcome(protocol="hubbub.v1", server="hubbub/1", conn_id="c1",
                           nick="ann", heartbeat=30, limits=limits)
    assert wire(event) == (
        b'{"type":"welcome","protocol":"hubbub.v1","server":"hubbub/1","id":"c1",'
        b'"nick":"ann","heartbeat":30,"limits":{"max_frame_bytes":10,"max_text_bytes":5,'
        b'"max_rooms":2,"history_page_max":3,"rate_per_second":1.5,"rate_burst":4}}')
    # Every field of `Limits` is on the wire: a new limit must be added to the welcome too.
    assert set(event["limits"]) == set(Limits.__dataclass_fields__)
