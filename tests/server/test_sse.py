"""`GET /api/rooms/{room}/events` on a real `hubbub serve`: live events, exact resume,
resets, heartbeats, errors, auth and origin, read by an aiohttp client and by curl."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator

import aiohttp
import pytest

from support.server import ADAPTERS, ServerProcess, running, wait_until
from support.sseclient import sse_stream
from support.wsclient import TIMEOUT, http_get_json, http_post_json, join, json_client, unique

pytestmark = pytest.mark.timeout(60)

KEY = "sse-api-key-123"


@pytest.fixture(scope="module", params=list(ADAPTERS))
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--heartbeat", "1",
                 adapter=request.param) as srv:
        yield srv


def events_url(server: ServerProcess, room: str, query: str = "") -> str:
    return f"{server.url}/api/rooms/{room}/events{query}"


async def publish(server: ServerProcess, room: str, text: str,
                  headers: dict[str, str] | None = None) -> dict[str, object]:
    status, body = await http_post_json(f"{server.url}/api/rooms/{room}/messages",
                                        {"text": text}, headers=headers)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


async def test_live_messages_are_the_websocket_event_with_epoch_offset_ids(
        server: ServerProcess) -> None:
    room = unique("sse-live")
    async with json_client(server.ws_url) as ws, sse_stream(events_url(server, room)) as sse:
        await join(ws, room)
        start = await sse.started()
        assert start is not None and start.endswith(":0")
        stored = await publish(server, room, "hello")
        over_ws = await ws.wait_for(lambda e: e["type"] == "message")
        event = await sse.next_of("message")
        assert event.json() == over_ws  # the same JSON object as the WebSocket event
        assert event.id == f"{stored['epoch']}:{stored['offset']}"


async def test_presence_events(server: ServerProcess) -> None:
    room = unique("sse-presence")
    async with sse_stream(events_url(server, room)) as sse:
        await sse.started()
        async with json_client(server.ws_url, nick="walker") as ws:
            await join(ws, room)
            joined = await sse.next_of("presence")
        left = await sse.next_of("presence")
    assert joined.json()["event"] == "join" and joined.json()["member"]["nick"] == "walker"
    assert left.json()["event"] == "leave" and left.json()["room"] == room


async def test_last_event_id_resumes_with_no_gap_and_no_duplicate(server: ServerProcess) -> None:
    room = unique("sse-resume")
    async with sse_stream(events_url(server, room)) as sse:
        await sse.started()
        for i in range(3):
            await publish(server, room, f"m{i}")
        seen = [(await sse.next_of("message")).json()["text"] for _ in range(3)]
        last = sse.last_id
    assert seen == ["m0", "m1", "m2"]
    assert last is not None
    for i in range(3, 6):  # while nobody listens
        await publish(server, room, f"m{i}")
    async with sse_stream(events_url(server, room), {"Last-Event-ID": last}) as sse:
        missed = [(await sse.next_of("message")).json()["text"] for _ in range(3)]
        await publish(server, room, "live")
        after = (await sse.next_of("message")).json()["text"]
    assert missed == ["m3", "m4", "m5"]
    assert after == "live"


async def test_since_and_epoch_query_resume(server: ServerProcess) -> None:
    room = unique("sse-since")
    first = await publish(server, room, "one")
    await publish(server, room, "two")
    query = f"?since={first['offset']}&epoch={first['epoch']}"
    async with sse_stream(events_url(server, room, query)) as sse:
        event = await sse.next_of("message")
    assert event.json()["text"] == "two"


async def test_a_position_from_another_epoch_or_the_future_is_a_reset_then_live(
        server: ServerProcess) -> None:
    room = unique("sse-reset")
    stored = await publish(server, room, "old")
    for last_id, reason in (("not-this-epoch:1", "epoch_changed"),
                            (f"{stored['epoch']}:99", "offset_ahead")):
        async with sse_stream(events_url(server, room), {"Last-Event-ID": last_id}) as sse:
            reset = await sse.next()
            assert reset.event == "reset"
            assert reset.json() == {"room": room, "epoch": stored["epoch"],
                                    "offset": stored["offset"], "reason": reason}
            assert reset.id == f"{stored['epoch']}:{stored['offset']}"
            stored = await publish(server, room, "new")
            assert (await sse.next_of("message")).json()["text"] == "new"


async def test_heartbeat_comments(server: ServerProcess) -> None:
    async with sse_stream(events_url(server, unique("sse-beat"))) as sse:
        assert await sse.comment(seconds=TIMEOUT) == "heartbeat"


@pytest.mark.parametrize(("headers", "query"), [
    ({"Last-Event-ID": "no-colon"}, ""),
    ({"Last-Event-ID": "epoch:-1"}, ""),
    ({"Last-Event-ID": "epoch:1x"}, ""),
    ({"Last-Event-ID": ":5"}, ""),
    ({}, "?since=abc&epoch=e"),
    ({}, "?since=5"),
    ({}, "?epoch=e"),
    ({}, "?since=99999999999999999999&epoch=e"),
])
async def test_malformed_positions_are_400_json(server: ServerProcess, headers: dict[str, str],
                                                query: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            events_url(server, "lobby", query), headers=headers) as response:
        assert response.status == 400
        body = await response.json()
    assert body["code"] == "bad_request" and body["reason"]


async def test_invalid_room_and_foreign_origin(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(events_url(server, "no%20spaces")) as response:
            assert response.status == 400
            assert (await response.json())["code"] == "invalid_room"
        async with session.get(events_url(server, "lobby"),
                               headers={"Origin": "https://elsewhere.example"}) as response:
            assert response.status == 403
            assert (await response.json())["code"] == "origin_not_allowed"


async def test_streams_are_hub_connections_closed_on_shutdown(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory") as srv:
        async with sse_stream(events_url(srv, "lobby")) as sse:
            await sse.started()
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{srv.url}/healthz") as response:
                assert (await response.json())["connections"] == 1
            assert srv.stop() == 0
            with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                await sse.next()
        assert "Traceback" not in srv.log_text()


async def test_api_key_is_required_as_for_the_rest_of_the_api(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--api-key", KEY) as srv:
        async with aiohttp.ClientSession() as session, \
                session.get(events_url(srv, "lobby")) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "unauthorized"
        auth = {"Authorization": f"Bearer {KEY}"}
        async with sse_stream(events_url(srv, "lobby"), auth) as sse:
            await sse.started()
            await publish(srv, "lobby", "keyed", headers=auth)
            assert (await sse.next_of("message")).json()["text"] == "keyed"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_curl_prints_live_messages(server: ServerProcess) -> None:
    room = unique("sse-curl")
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sN", "--max-time", "20", events_url(server, room), stdout=subprocess.PIPE)
    try:
        assert curl.stdout is not None
        reader = curl.stdout
        first = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert first.startswith(b"id: ")  # the stream has started: a publish now reaches it
        await publish(server, room, "through curl")
        lines: list[bytes] = []
        while not lines or lines[-1] != b"\n":
            lines.append(await asyncio.wait_for(reader.readline(), TIMEOUT))
            if lines == [b"\n"]:
                lines = []
    finally:
        curl.kill()
        await curl.wait()
    assert lines[0].startswith(b"id: ") and lines[1] == b"event: message\n"
    assert lines[2].startswith(b'data: {"type":"message"') and b"through curl" in lines[2]


async def test_a_stream_that_does_not_read_is_cut_off_by_the_outbox_limit(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--outbox-max-bytes", "65536") as srv:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
        stalled.connect(("127.0.0.1", srv.port))
        stalled.sendall(b"GET /api/rooms/slow/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            async with sse_stream(events_url(srv, "slow")) as reader:
                await reader.started()

                async def connections(count: int) -> bool:
                    _, health = await http_get_json(f"{srv.url}/healthz")
                    return bool(health["connections"] == count)

                assert await wait_until(lambda: connections(2))  # both streams are in
                text = "x" * 8000
                async with aiohttp.ClientSession() as session:
                    for _ in range(1000):
                        async with session.post(f"{srv.url}/api/rooms/slow/messages",
                                                json={"text": text}) as response:
                            assert response.status == 201
                        # the reader keeps up: it must get every one
                        assert (await reader.next_of("message")).json()["text"] == text
                assert await wait_until(lambda: connections(1))  # only the reader is left
        finally:
            stalled.close()
        assert "closing a connection that fell 65536 bytes behind (4008)" in srv.log_text()
