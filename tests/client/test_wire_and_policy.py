"""The sans-I/O parts: frame parsing against hostile input, request encoding, backoff and
close-code rules, URL normalisation."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.client import ProtocolViolation, ReconnectPolicy, wire
from hubbub.client.handshake import ws_url
from hubbub.client.http import http_base
from hubbub.client.policy import should_reconnect

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["type", "room", "offset", "epoch", "id", "from", "sender", "text", "ts", "rooms",
          "members", "messages", "has_more", "event", "member", "nick", "code", "reason",
          "recovered", "limits"]
frames = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12)
PARSERS: list[Callable[[dict[str, Any]], object]] = [
    wire.message, wire.ack, wire.presence, wire.room_list, wire.members, wire.joined,
    wire.welcome, lambda obj: wire.history_page(obj, set()),
]


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decode_raises_only_protocol_violation(frame: bytes | str) -> None:
    try:
        obj = wire.decode(frame)
    except ProtocolViolation:
        return
    assert isinstance(obj["type"], str)


@given(frames)
def test_parsers_raise_only_protocol_violation(obj: dict[str, Any]) -> None:
    for parse in PARSERS:
        with contextlib.suppress(ProtocolViolation):
            parse(obj)


def test_message_round_trip_and_own_flag() -> None:
    frame = {"type": "message", "room": "r", "offset": 3, "epoch": "e", "id": "i",
             "from": "ada", "sender": "c1", "data": {"k": [1]}, "ts": 5}
    msg = wire.message(wire.decode(orjson.dumps(frame)), {"c1"})
    assert (msg.nick, msg.own, msg.text, msg.body) == ("ada", True, None, '{"k":[1]}')
    assert not wire.message(frame, {"c2"}).own


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"offset": "3"}, "offset"), ({"offset": True}, "offset"), ({"from": None}, "from"),
     ({"ts": 1.5}, "ts"), ({"sender": 7}, "sender"), ({"text": ["x"]}, "text")],
)
def test_message_field_types_are_checked(bad: dict[str, Any], field: str) -> None:
    frame = {"type": "message", "room": "r", "offset": 3, "epoch": "e", "id": "i",
             "from": "ada", "sender": None, "text": "t", "ts": 5, **bad}
    with pytest.raises(ProtocolViolation, match=repr(field)):
        wire.message(frame)


def test_encoders_omit_what_was_not_given() -> None:
    assert wire.publish_request("r", None, {"k": 1}) == {"type": "publish", "room": "r",
                                                         "data": {"k": 1}}
    assert wire.history_request("r", limit=None, before=4, after=None) == {
        "type": "history", "room": "r", "before": 4}
    assert orjson.loads(wire.encode(wire.ping_request(), 7)) == {"type": "ping", "ref": 7}


def test_backoff_is_full_jitter_capped() -> None:
    policy = ReconnectPolicy(base=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt in range(1, 200):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        samples = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(0 <= s <= ceiling for s in samples)
    # Full jitter spreads attempts: not every client waits the ceiling.
    assert len({round(policy.delay(10, rng), 6) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"max_delay": -1}, {"max_attempts": 0}, {"base": -0.1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)


def test_policy_attempts() -> None:
    assert ReconnectPolicy(max_attempts=2).allows(2)
    assert not ReconnectPolicy(max_attempts=2).allows(3)
    assert ReconnectPolicy().allows(10**9)


@pytest.mark.parametrize(
    ("code", "retry"),
    [(1001, True), (1011, True), (4008, True), (None, True), (1006, True), (1012, True),
     (1000, False), (1003, False), (1009, False), (4001, False), (1002, False), (4999, False)],
)
def test_close_codes(code: int | None, retry: bool) -> None:
    assert should_reconnect(code) is retry


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [("http://h:1", "ws://h:1/ws"), ("https://h", "wss://h/ws"), ("ws://h:2/ws", "ws://h:2/ws"),
     ("ws://h/", "ws://h/ws"), ("wss://h/custom", "wss://h/custom")],
)
def test_ws_url(given_url: str, expected: str) -> None:
    assert str(ws_url(given_url)) == expected


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [("http://h:1", "http://h:1/"), ("ws://h:2/ws", "http://h:2/"),
     ("wss://h/ws", "https://h/"), ("http://h/prefix", "http://h/prefix")],
)
def test_http_base(given_url: str, expected: str) -> None:
    assert str(http_base(given_url)) == expected
