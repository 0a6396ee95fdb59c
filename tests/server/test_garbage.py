"""Floods of garbage: every frame is answered or the connection is closed properly, the
server keeps serving others, and its memory stays bounded."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.rawws import OP_TEXT, RawWebSocket, frame
from support.server import ServerProcess, running
from support.wsclient import JsonClient, http_get_json, json_client

pytestmark = pytest.mark.timeout(90)

ERROR_CODES = {"bad_json", "binary_not_supported", "unknown_type", "bad_request",
               "invalid_room", "invalid_nick", "message_too_large", "not_joined",
               "too_many_rooms", "room_not_found", "rate_limited", "unavailable", "internal"}
REPLY_TYPES = {"nick_set", "joined", "left", "ack", "history_page", "member_list",
               "room_list", "pong"}
EVENT_TYPES = {"message", "presence"}
GARBAGE_FRAMES = 1000
RSS_GROWTH_MAX = 200 * 1024 * 1024
"""Bytes the server may grow by during a flood: generous, but catches per-frame leaks of
the flood's size (1,000 frames of up to 4 KiB each are ~4 MB; a leak of every parsed
frame many times over would show)."""


@pytest.fixture(scope="module")
def garbage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0") as server:
        yield server


@pytest.fixture
async def bystander(garbage_server: ServerProcess) -> AsyncIterator[JsonClient]:
    async with json_client(garbage_server.ws_url) as client:
        yield client


def check_well_formed(event: dict[str, Any]) -> None:
    kind = event.get("type")
    if kind == "error":
        assert event["code"] in ERROR_CODES, event
        assert isinstance(event["reason"], str) and event["reason"], event
        assert event["code"] != "internal", event  # a server bug, whatever the input
    else:
        assert kind in REPLY_TYPES | EVENT_TYPES, event


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    return int(psutil.Process(server.proc.pid).memory_info().rss)


async def assert_healthy(server: ServerProcess, bystander: JsonClient) -> None:
    status, body = await http_get_json(server.url + "/healthz")
    assert status == 200 and body["status"] == "ok"
    await bystander.assert_alive()
    assert "Traceback" not in server.log_text()


async def flood_and_count_replies(client: JsonClient, frames: list[str]) -> list[dict[str, Any]]:
    for text in frames:
        await client.send_raw(text)
    await client.send({"type": "ping", "ref": "end-of-flood"})
    replies: list[dict[str, Any]] = []
    while True:
        event = await client.recv(seconds=15)
        if event.get("ref") == "end-of-flood":
            return replies
        check_well_formed(event)
        replies.append(event)


async def test_random_bytes_as_text(garbage_server: ServerProcess,
                                    bystander: JsonClient) -> None:
    rng = random.Random(1234)
    before = rss(garbage_server)
    async with json_client(garbage_server.ws_url) as client:
        frames = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
                  .decode("latin-1") for _ in range(GARBAGE_FRAMES)]
        replies = await flood_and_count_replies(client, frames)
        assert len(replies) == GARBAGE_FRAMES  # exactly one reply per frame
        assert {r["type"] for r in replies} == {"error"}
    assert rss(garbage_server) - before < RSS_GROWTH_MAX
    await assert_healthy(garbage_server, bystander)


async def test_random_json_values(garbage_server: ServerProcess,
                                  bystander: JsonClient) -> None:
    rng = random.Random(99)
    kinds = ["nick", "join", "leave", "publish", "history", "members", "rooms", "ping",
             "nosuch", 5, None]
    fields = ["nick", "rooms", "room", "text", "data", "limit", "before", "after", "since",
              "history", "ref"]

    def value(depth: int = 0) -> Any:
        choice = rng.randrange(8 if depth < 2 else 5)
        if choice == 0:
            return rng.randrange(-10**6, 10**6)
        if choice == 1:
            return rng.random()
        if choice == 2:
            return rng.choice([True, False, None, "lobby"])
        if choice in (3, 4):
            return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(70)))
        if choice == 5:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(fields): value(depth + 1) for _ in range(rng.randrange(4))}

    frames = []
    for _ in range(GARBAGE_FRAMES):
        obj = {name: value() for name in rng.sample(fields, rng.randrange(len(fields)))}
        obj["type"] = rng.choice(kinds)
        frames.append(json.dumps(obj) if rng.random() < 0.9 else json.dumps(value()))
    before = rss(garbage_server)
    async with json_client(garbage_server.ws_url) as client:
        replies = await flood_and_count_replies(client, frames)
        answers = [r for r in replies if r["type"] not in EVENT_TYPES]
        assert len(answers) == GARBAGE_FRAMES
    assert rss(garbage_server) - before < RSS_GROWTH_MAX
    await assert_healthy(garbage_server, bystander)


async def test_invalid_utf8_flood_closes_properly(garbage_server: ServerProcess,
                                                  bystander: JsonClient) -> None:
    rng = random.Random(7)
    for _ in range(20):
        raw = await RawWebSocket.connect(garbage_server.port, protocol="hubbub.v1")
        welcome = await raw.read_frame()
        assert welcome.opcode == OP_TEXT
        junk = bytes([0xC3, 0x28]) + bytes(rng.randrange(256) for _ in range(100))
        await raw.send(frame(OP_TEXT, junk) * 50)
        closing = await raw.read_until_close()
        assert closing is None or closing.close_code == 1007, closing
        await raw.close()
    await assert_healthy(garbage_server, bystander)


async def test_plain_client_garbage_text(garbage_server: ServerProcess,
                                         bystander: JsonClient) -> None:
    """A plain client's garbage is just chat text: each line comes back as a message."""
    rng = random.Random(5)
    raw = await RawWebSocket.connect(garbage_server.port, "/ws?nick=plainfuzz")
    lines = ["".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
             for _ in range(200)]
    for line in lines:
        await raw.send_text(line)
    echoed: list[str] = []
    while len(echoed) < len(lines):
        got = await raw.read_frame()
        assert got.opcode == OP_TEXT, got
        text = got.payload.decode()
        if text.startswith("plainfuzz: "):  # not lobby history from other tests
            echoed.append(text.split(": ", 1)[1])
    assert echoed == lines
    await raw.close()
    await assert_healthy(garbage_server, bystander)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(["nick", "rooms", "room", "text", "data", "limit", "before",
                               "after", "since", "history", "ref", "offset", "epoch"])
REQUESTS = st.fixed_dictionaries(
    {"type": st.sampled_from(["nick", "join", "leave", "publish", "history", "members",
                              "rooms", "ping"]) | JSON_VALUES},
    optional={"ref": st.integers() | st.text(max_size=70) | JSON_VALUES},
).flatmap(lambda base: st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=5)
          .map(lambda extra: {**extra, **base}))


@pytest.fixture
async def fuzz_client(garbage_server: ServerProcess) -> AsyncIterator[JsonClient]:
    async with json_client(garbage_server.ws_url) as client:
        yield client


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=REQUESTS)
async def test_arbitrary_json_objects(fuzz_client: JsonClient, request: dict[str, Any]) -> None:
    """One live connection takes every example; each gets exactly one well-formed reply."""
    await fuzz_client.send(request)
    await fuzz_client.send({"type": "ping", "ref": "fence"})
    answers = []
    while True:
        event = await fuzz_client.recv()
        if event.get("ref") == "fence" and event["type"] == "pong":
            break
        check_well_formed(event)
        if event["type"] not in EVENT_TYPES:
            answers.append(event)
    assert len(answers) == 1, (request, answers)
    ref = request.get("ref")
    if answers[0]["type"] != "error" and ref is not None:
        assert answers[0]["ref"] == ref
