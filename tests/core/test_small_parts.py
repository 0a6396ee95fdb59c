"""Names, frames, the outbox, the rate limiter and the room registry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hubbub.core.codec import Wire
from hubbub.core.names import guest_name, is_valid_nick, is_valid_room
from hubbub.core.outbox import Outbox
from hubbub.core.ratelimit import TokenBucket
from hubbub.core.rooms import Room, RoomRegistry
from hubbub.core.wsframe import text_frame


def decode_with_websockets(data: bytes) -> Frame:
    """Parse with the `websockets` library's own sans-I/O frame reader (client side)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frames_of_every_length_class_decode(size: int) -> None:
    payload = b"x" * size
    frame = decode_with_websockets(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


@given(st.text(max_size=300))
def test_any_text_round_trips(text: str) -> None:
    payload = text.encode("utf-8", "surrogatepass")
    assert decode_with_websockets(text_frame(payload)).data == payload


@pytest.mark.parametrize("name", ["lobby", "a", "x" * 64, "dev:ops", "a@b", "c.d-e_f", "日本"])
def test_valid_rooms(name: str) -> None:
    assert is_valid_room(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "a#b", "a\x00", "a\n", None, 5])
def test_invalid_rooms(name: object) -> None:
    assert not is_valid_room(name)


@pytest.mark.parametrize("nick", ["", " a", "a ", "a  b", "a\tb", "x" * 33, "a:b", "<b>", 3])
def test_invalid_nicks(nick: object) -> None:
    assert not is_valid_nick(nick)


def test_guest_names_are_valid_nicks() -> None:
    assert all(is_valid_nick(guest_name()) for _ in range(50))


def test_outbox_coalesces_and_refuses_past_its_limit() -> None:
    box = Outbox(limit=10)
    assert box.push(b"abc") and box.push(b"def")
    assert box.size == 6 and len(box) == 2
    assert not box.push(b"12345")  # 6 + 5 > 10
    assert box.overflowed
    assert not box.push(b"1")  # once overflowed, stays refused
    assert box.take() == b"abcdef"
    assert box.size == 0 and not box


def test_outbox_counts_what_the_socket_already_holds() -> None:
    box = Outbox(limit=10)
    assert not box.push(b"abc", already_buffered=8)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0
    assert TokenBucket(rate=0, burst=1, now=0.0).take(0.0) == 0.0


def test_rooms_buffer_for_joining_members_until_they_go_live() -> None:
    rooms: RoomRegistry[str, int] = RoomRegistry()
    room = rooms.get_or_create("r")
    room.begin_join("m1", "member-1")
    assert room.buffer(1, cap=2) == []
    assert room.buffer(2, cap=2) == []
    assert room.take_buffered("m1") == [1, 2]
    room.go_live("m1")
    assert room.live[Wire.JSON] == {"m1": "member-1"}
    room.begin_join("m2", "member-2", Wire.PLAIN)
    room.buffer(3, cap=2)
    with pytest.raises(RuntimeError):
        room.go_live("m2")  # would drop message 3
    room.take_buffered("m2")
    room.go_live("m2")
    assert room.live[Wire.PLAIN] == {"m2": "member-2"}
    assert rooms.member_count("r") == 2
    rooms.remove_member("r", "m1")
    rooms.remove_member("r", "m2")
    assert rooms.get("r") is None


def test_a_joining_members_buffer_is_capped() -> None:
    room: Room[str, int] = Room("r")
    room.begin_join("m", "member")
    assert [room.buffer(n, cap=2) for n in range(4)] == [[], [], ["member"], []]  # said once


def test_a_room_view_is_the_same_list_until_membership_changes() -> None:
    rooms: RoomRegistry[str, int] = RoomRegistry()
    room = rooms.get_or_create("r")
    for member_id, wire in (("a", Wire.JSON), ("b", Wire.JSON), ("p", Wire.PLAIN)):
        room.begin_join(member_id, member_id.upper(), wire)
        room.go_live(member_id)
    view = room.view(Wire.JSON, str.lower)
    assert view == ["a", "b"] and room.view(Wire.PLAIN, str.lower) == ["p"]
    assert room.view(Wire.JSON, str.lower) is view  # same audience, same object
    room.begin_join("c", "C")
    assert room.view(Wire.JSON, str.lower) is view  # joining members receive no live messages
    room.go_live("c")
    after_join = room.view(Wire.JSON, str.lower)
    assert after_join == ["a", "b", "c"] and after_join is not view
    rooms.remove_member("r", "a")
    assert room.view(Wire.JSON, str.lower) == ["b", "c"]
    assert view == ["a", "b"]  # a list handed out earlier is never changed in place


def test_message_ids_are_unique_url_safe_and_differ_in_a_forked_child() -> None:
    import os
    import re

    from hubbub.core.message import new_message_id

    ids = [new_message_id() for _ in range(10_000)]  # crosses several reads of the pool
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what would its next ids be?
        os.close(read)
        os.write(write, "".join(new_message_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1000).decode()
    os.close(read)
    os.waitpid(pid, 0)
    mine = "".join(new_message_id() for _ in range(4))
    assert len(child) == 64 and child != mine  # not the parent's pooled ids
