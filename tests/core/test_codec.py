"""Each wire format's codec (`hubbub.core.codec`), without sockets: what a frame decodes to
and exactly which bytes (if any) each event becomes."""

from __future__ import annotations

import orjson
import pytest

from hubbub.core import events
from hubbub.core import protocol as p
from hubbub.core.codec import CODECS, LOBBY, JsonCodec, PlainCodec, Wire
from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits
from hubbub.core.message import Message
from hubbub.core.store import RoomState

JSON, PLAIN = JsonCodec(), PlainCodec()
LIMITS = Limits(max_text_bytes=8)
TEXT = Message(room="lobby", offset=1, epoch="e", id="m1", nick="ann", sender="c1",
               text="hi there", data=None, ts=5)
DATA = Message(room="lobby", offset=2, epoch="e", id="m2", nick="ops", sender=None,
               text=None, data={"n": 1, "s": "é"}, ts=6)
ANN = events.member("c1", "ann")


def no_members(room: str) -> list[events.Event]:
    raise AssertionError("the plain-text codec must not ask for member lists")


def test_each_wire_has_one_shared_codec() -> None:
    assert {wire: codec.wire for wire, codec in CODECS.items()} == {
        Wire.JSON: Wire.JSON, Wire.PLAIN: Wire.PLAIN}
    assert set(CODECS) == set(Wire)


def test_json_decodes_requests_and_peeks_refs() -> None:
    assert JSON.decode('{"type":"ping","ref":4}', LIMITS) == p.Ping(4)
    assert JSON.peek_ref('{"type":"nonsense","ref":"x"}') == "x"
    with pytest.raises(p.ProtocolError) as refused:
        JSON.decode("hello", LIMITS)
    assert refused.value.code is ErrorCode.BAD_JSON


def test_a_plain_line_is_a_publication_to_the_lobby() -> None:
    # Even a line that looks like a JSON request is only text to a plain-text client.
    line = '{"type":"ping"}'
    assert PLAIN.decode("hi", LIMITS) == p.Publish(LOBBY, "hi", None, None)
    assert PLAIN.peek_ref('{"ref":3}') is None
    with pytest.raises(p.ProtocolError) as refused:
        PLAIN.decode(line, LIMITS)  # 15 bytes, over this test's 8
    assert refused.value.code is ErrorCode.MESSAGE_TOO_LARGE


def test_json_encodes_each_event_as_built() -> None:
    state = RoomState("e", 2, 1)
    assert JSON.message(TEXT) == orjson.dumps(events.message(TEXT))
    assert JSON.ack(TEXT, 1) == orjson.dumps(events.ack(TEXT, 1))
    assert JSON.error(ErrorCode.RATE_LIMITED, "slow", 2, retry_after=9) == (
        b'{"type":"error","code":"rate_limited","reason":"slow","ref":2,"retry_after":9}')
    assert JSON.joined("j", [events.JoinedRoom("lobby", state)], lambda room: [ANN]) == (
        b'{"type":"joined","ref":"j","rooms":[{"room":"lobby","epoch":"e","offset":2,'
        b'"recovered":true,"members":[{"id":"c1","nick":"ann"}]}]}')
    assert JSON.presence("lobby", "leave", ANN) == orjson.dumps(
        events.presence("lobby", "leave", ANN))
    assert JSON.event(events.pong(3)) == b'{"type":"pong","ref":3}'


def test_plain_text_gets_message_lines_and_error_lines_only() -> None:
    """The teaching note's protocol: `<name>: <text>`, data as compact JSON, errors by their
    reason alone, and nothing else."""
    assert PLAIN.message(TEXT) == b"ann: hi there"
    assert PLAIN.message(DATA) == 'ops: {"n":1,"s":"é"}'.encode()
    assert PLAIN.error(ErrorCode.RATE_LIMITED, "too many requests", 3, retry_after=9) == (
        b"error: too many requests")
    state = RoomState("e", 2, 1)
    assert PLAIN.ack(TEXT, 1) is None
    assert PLAIN.joined(None, [events.JoinedRoom("lobby", state)], no_members) is None
    assert PLAIN.presence("lobby", "join", ANN) is None
    assert PLAIN.event(events.pong(None)) is None
    assert PLAIN.event(events.welcome(protocol="hubbub.v1", server="s", conn_id="c", nick="n",
                                      heartbeat=1, limits=LIMITS)) is None


def test_wire_names_hash_like_strings() -> None:
    # The fan-out hashes `(room, Wire)` keys per message; see `Wire`'s docstring.
    assert isinstance(Wire.JSON, str) and hash(Wire.PLAIN) == hash("plain")
