"""The HTTP API: publish and read history from other programs; JSON errors with 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from support.server import ADAPTERS, ServerProcess, running
from support.wsclient import http_get_json, http_post_json, join, json_client, plain_client, unique

pytestmark = pytest.mark.timeout(60)

KEY = "s3cret-api-key"


@pytest.fixture(scope="module", params=list(ADAPTERS))
def api_server(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--max-text-bytes", "1000", "--max-frame-bytes", "2048",
                 "--plain-history", "0",
                 adapter=request.param) as server:
        yield server


def messages_url(server: ServerProcess, room: str) -> str:
    return f"{server.url}/api/rooms/{room}/messages"


async def post(server: ServerProcess, room: str, body: Any = None, *,
               raw: bytes | None = None, headers: dict[str, str] | None = None
               ) -> tuple[int, Any]:
    return await http_post_json(messages_url(server, room), body, headers=headers, raw=raw)


def assert_api_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"code", "reason"}, body
    assert body["code"] == code and isinstance(body["reason"], str) and body["reason"]


async def test_publish_returns_201_with_fields(api_server: ServerProcess) -> None:
    room = unique("api")
    status, body = await post(api_server, room, {"text": "hi"})
    assert status == 201
    assert set(body) == {"room", "id", "offset", "epoch", "ts"}
    assert body["room"] == room and body["offset"] == 1
    _, second = await post(api_server, room, {"text": "again"})
    assert second["offset"] == 2 and second["epoch"] == body["epoch"]
    assert second["id"] != body["id"]


async def test_publish_reaches_json_and_plain_clients(api_server: ServerProcess) -> None:
    async with json_client(api_server.ws_url) as jc, \
            plain_client(api_server.ws_url, nick="plainy") as pc:
        await join(jc, "lobby")
        await pc.round_trip("ready")
        status, body = await post(api_server, "lobby", {"text": "from http", "from": "deploy"})
        assert status == 201
        event = await jc.wait_for(lambda e: e["type"] == "message" and e["id"] == body["id"])
        assert event["text"] == "from http" and event["from"] == "deploy"
        assert event["sender"] is None and event["offset"] == body["offset"]
        assert await pc.wait_for("deploy: from http")


async def test_publish_data_only(api_server: ServerProcess) -> None:
    room = unique("apidata")
    async with json_client(api_server.ws_url) as jc:
        await join(jc, room)
        status, body = await post(api_server, room, {"data": {"n": [1, 2]}})
        assert status == 201
        event = await jc.wait_for(lambda e: e["type"] == "message")
        assert event["id"] == body["id"]
        assert event["data"] == {"n": [1, 2]} and "text" not in event
        assert event["from"] == "server"


async def test_http_answers_are_the_websocket_events_without_type_and_ref(
        api_server: ServerProcess) -> None:
    """One shape per thing, whichever way it is asked for: a message, a publish receipt,
    a history page, a member list and a room list (see `hubbub.core.events`)."""
    room = unique("shape")
    async with json_client(api_server.ws_url, nick="shaper") as jc:
        await join(jc, room)
        status, receipt = await post(api_server, room, {"text": "over http"})
        assert status == 201
        live = await jc.wait_for(lambda e: e["type"] == "message")
        ack = await jc.expect("publish", room=room, data={"k": [1, "é"]})
        second = await jc.wait_for(lambda e: e["type"] == "message" and e["id"] == ack["id"])
        assert {k: v for k, v in ack.items() if k not in ("type", "ref")} == {
            "room": room, "id": second["id"], "offset": 2, "epoch": receipt["epoch"],
            "ts": second["ts"]}
        assert list(receipt) == ["room", "id", "offset", "epoch", "ts"]
        assert {k: live[k] for k in receipt} == receipt

        _, http_page = await http_get_json(messages_url(api_server, room))
        ws_page = await jc.expect("history", room=room)
        assert ws_page.pop("type") == "history_page" and ws_page.pop("ref")
        assert http_page == ws_page
        assert http_page["messages"] == [live, second]

        _, http_members = await http_get_json(f"{api_server.url}/api/rooms/{room}/members")
        ws_members = await jc.expect("members", room=room)
        assert ws_members.pop("type") == "member_list" and ws_members.pop("ref")
        assert http_members == ws_members == {
            "room": room, "members": [{"id": jc.welcome["id"], "nick": "shaper"}]}

        _, http_rooms = await http_get_json(f"{api_server.url}/api/rooms?limit=1000")
        ws_rooms = await jc.expect("rooms", limit=1000)
        assert ws_rooms.pop("type") == "room_list" and ws_rooms.pop("ref")
        assert {"room": room, "members": 1, "offset": 2} in http_rooms["rooms"]
        assert set(http_rooms) == set(ws_rooms) == {"rooms", "has_more"}


@pytest.mark.parametrize("room", ["a%20b", "a" * 65, "a%00b", "a%0Ab", "%F0%9F%98%80"])
async def test_invalid_room_in_path(api_server: ServerProcess, room: str) -> None:
    status, body = await post(api_server, room, {"text": "x"})
    assert_api_error(status, body, 400, "invalid_room")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"text": "x"'])
async def test_invalid_json_body(api_server: ServerProcess, raw: bytes) -> None:
    status, body = await post(api_server, unique("bad"), raw=raw)
    assert_api_error(status, body, 400, "bad_json")


@pytest.mark.parametrize("raw", [b"[1]", b"5", b'"text"', b"null"])
async def test_body_not_an_object(api_server: ServerProcess, raw: bytes) -> None:
    status, body = await post(api_server, unique("bad"), raw=raw)
    assert_api_error(status, body, 400, "bad_json")


@pytest.mark.parametrize("payload", [{}, {"from": "x"}, {"text": None}, {"text": 5},
                                     {"text": ["x"]}])
async def test_missing_or_mistyped_text(api_server: ServerProcess,
                                        payload: dict[str, Any]) -> None:
    status, body = await post(api_server, unique("bad"), payload)
    assert_api_error(status, body, 400, "bad_request")


async def test_text_too_large(api_server: ServerProcess) -> None:
    status, body = await post(api_server, unique("big"), {"text": "x" * 1001})
    assert_api_error(status, body, 413, "message_too_large")


async def test_body_over_max_frame_bytes(api_server: ServerProcess) -> None:
    status, body = await post(api_server, unique("huge"), {"data": "x" * 3000})
    assert_api_error(status, body, 413, "body_too_large")


@pytest.mark.parametrize("sender", ["", " lead", "n" * 33, "a\nb", 5, None, ["x"]])
async def test_invalid_from(api_server: ServerProcess, sender: object) -> None:
    status, body = await post(api_server, unique("from"), {"text": "x", "from": sender})
    assert status == 400, body
    assert body["code"] in ("invalid_nick", "bad_request"), body


async def test_api_refused_without_room_side_effects(api_server: ServerProcess) -> None:
    room = unique("noeffect")
    await post(api_server, room, {"text": 5})
    status, body = await http_get_json(messages_url(api_server, room))
    assert_api_error(status, body, 404, "room_not_found")


async def test_history_with_after_before_limit(api_server: ServerProcess) -> None:
    room = unique("apihist")
    for i in range(6):
        await post(api_server, room, {"text": f"m{i}"})
    status, page = await http_get_json(messages_url(api_server, room))
    assert status == 200
    assert set(page) == {"room", "epoch", "offset", "messages", "has_more"}
    assert page["room"] == room and page["offset"] == 6 and page["has_more"] is False
    assert [m["offset"] for m in page["messages"]] == [1, 2, 3, 4, 5, 6]
    assert page["messages"][0]["type"] == "message" and page["messages"][0]["text"] == "m0"
    status, page = await http_get_json(messages_url(api_server, room) + "?after=2&limit=2")
    assert [m["offset"] for m in page["messages"]] == [3, 4] and page["has_more"] is True
    status, page = await http_get_json(messages_url(api_server, room) + "?before=3")
    assert [m["offset"] for m in page["messages"]] == [1, 2] and page["has_more"] is False
    status, page = await http_get_json(messages_url(api_server, room) + "?limit=2")
    assert [m["offset"] for m in page["messages"]] == [5, 6] and page["has_more"] is True


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=100000", "limit=-1",
                                   "limit=1.5", "after=-1", "after=x", "before=-5",
                                   "before=1e3", f"after={2**64}"])
async def test_history_bad_query(api_server: ServerProcess, query: str) -> None:
    room = unique("q")
    await post(api_server, room, {"text": "x"})
    status, body = await http_get_json(messages_url(api_server, room) + "?" + query)
    assert_api_error(status, body, 400, "bad_request")


async def test_history_unknown_room(api_server: ServerProcess) -> None:
    status, body = await http_get_json(messages_url(api_server, unique("nope")))
    assert_api_error(status, body, 404, "room_not_found")


async def test_rooms_list(api_server: ServerProcess) -> None:
    room = unique("listed")
    await post(api_server, room, {"text": "x"})
    await post(api_server, room, {"text": "y"})
    status, body = await http_get_json(api_server.url + "/api/rooms?limit=1000")
    assert status == 200 and set(body) == {"rooms", "has_more"}
    assert {"room": room, "members": 0, "offset": 2} in body["rooms"]


async def test_healthz(api_server: ServerProcess) -> None:
    status, body = await http_get_json(api_server.url + "/healthz")
    assert status == 200 and body["status"] == "ok"


async def test_metrics(api_server: ServerProcess) -> None:
    async with json_client(api_server.ws_url), aiohttp.ClientSession() as session, \
            session.get(api_server.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["hubbub_connections"] >= 1
    assert "hubbub_slow_closes_total" in values or "hubbub_slow_closes" in values


async def test_index_serves_html_with_csp(api_server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session, session.get(api_server.url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "<html" in (await response.text()).lower()


async def test_api_errors_have_security_headers(api_server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session, \
            session.get(messages_url(api_server, unique("hdr"))) as response:
        assert response.status == 404
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- API key -----------------------------------------------------------------------------------

AUTH_CASES = [(None, 401), ("Bearer wrong-key-123", 401), (f"Basic {KEY}", 401),
              ("Bearer", 401), (f"Bearer {KEY}", 201), (f"bearer {KEY}", 201)]


async def _check_auth(server: ServerProcess) -> None:
    room = unique("auth")
    for header, expected in AUTH_CASES:
        headers = {"Authorization": header} if header else None
        status, body = await post(server, room, {"text": "x"}, headers=headers)
        assert status == expected, (header, body)
        if expected == 401:
            assert body["code"] and body["reason"], body
    # Reading history needs the key too.
    status, _ = await http_get_json(messages_url(server, room))
    assert status == 401


async def test_api_key_flag(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--api-key", KEY) as server:
        await _check_auth(server)
        assert KEY not in server.log_text()


async def test_api_key_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", env={"HUBBUB_API_KEY": KEY}) as server:
        await _check_auth(server)


async def test_unauthorized_is_json(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--api-key", KEY) as server:
        async with aiohttp.ClientSession() as session, session.post(
            messages_url(server, "r"), data=json.dumps({"text": "x"})
        ) as response:
            assert response.status == 401
            assert "Bearer" in response.headers.get("WWW-Authenticate", "")
            body = await response.json(content_type=None)
            assert set(body) == {"code", "reason"}
