"""`hubbub.setup`: hubbub mounted in an aiohttp application of someone else's, served on a
real socket by `AppRunner`, talked to by real clients."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

import hubbub
from hubbub.core.grants import Identity, parse_grants
from hubbub.core.store import StoreOpenError
from hubbub.server.storage import database_path
from support.server import free_port
from support.sseclient import sse_stream
from support.wsclient import handshake_refusal, http_get_json, join, json_client

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on a free loopback port; its shutdown runs when the block ends."""
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def host_app() -> web.Application:
    """An application with routes and a middleware of its own."""

    @web.middleware
    async def stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Host-App"] = "yes"
        return response

    app = web.Application(middlewares=[stamp])

    async def home(request: web.Request) -> web.Response:
        return web.Response(text="the host's home")

    async def announce(request: web.Request) -> web.Response:
        message = await request.app[hubbub.HUB].publish("lobby", text="from the host app")
        return web.json_response({"offset": message.offset})

    app.router.add_get("/", home)
    app.router.add_post("/announce", announce)
    return app


def memory() -> hubbub.Settings:
    return hubbub.settings(store="memory")


async def test_mounted_under_a_prefix_next_to_the_apps_own_routes() -> None:
    app = host_app()
    hub = hubbub.setup(app, "/chat", memory())
    assert app[hubbub.HUB] is hub and app[hubbub.HUBS] == {"/chat": hub}
    async with serving(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/") as response:
            assert await response.text() == "the host's home"
            assert "Content-Security-Policy" not in response.headers  # untouched
            assert response.headers["X-Host-App"] == "yes"
        async with session.get(url + "/chat", allow_redirects=False) as response:
            assert response.status == 308 and response.headers["Location"] == "/chat/"
        async with session.get(url + "/chat/") as response:
            page = await response.text()
            assert response.status == 200 and "Content-Security-Policy" in response.headers
        assert 'src="static/js/main.js"' in page  # relative: resolves under /chat/
        async with session.get(url + "/chat/static/js/main.js") as response:
            assert response.status == 200
        async with session.get(url + "/static/js/main.js") as response:
            assert response.status == 404
        status, health = await http_get_json(url + "/chat/healthz")
        assert status == 200 and health["status"] == "ok"
        async with json_client(url.replace("http", "ws") + "/chat/ws") as ws:
            await join(ws, "lobby")
            async with session.post(url + "/announce") as response:
                assert response.status == 200
            event = await ws.wait_for(lambda e: e["type"] == "message")
            assert event["text"] == "from the host app" and event["from"] == "server"
            status, page_of_history = await http_get_json(url + "/chat/api/rooms/lobby/messages")
            assert status == 200
            assert [m["text"] for m in page_of_history["messages"]] == ["from the host app"]


async def test_several_prefixes_are_separate_hubs() -> None:
    app = host_app()
    first = hubbub.setup(app, "/one", memory())
    second = hubbub.setup(app, "/two/", memory())
    assert first is not second
    assert app[hubbub.HUB] is first and app[hubbub.HUBS] == {"/one": first, "/two": second}
    async with serving(app) as url:
        ws_url = url.replace("http", "ws")
        async with json_client(ws_url + "/one/ws") as one, json_client(ws_url + "/two/ws") as two:
            await join(one, "lobby")
            await join(two, "lobby")
            await second.publish("lobby", text="only for two")
            assert (await two.wait_for(lambda e: e["type"] == "message"))["text"] == "only for two"
            await first.publish("lobby", text="only for one")
            assert (await one.wait_for(lambda e: e["type"] == "message"))["text"] == "only for one"
            assert [e for e in two.pending if e["type"] == "message"] == []


async def test_no_prefix_shares_the_root_and_leaves_the_apps_routes_alone() -> None:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/hello", hello)
    hub = hubbub.setup(app, "", memory())
    assert app[hubbub.HUBS] == {"": hub}
    async with serving(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/hello", headers={"Host": "not-allowed.example"}) as resp:
            # hubbub's guard (allowed_hosts) and headers are for its own paths only
            assert resp.status == 200 and "Content-Security-Policy" not in resp.headers
        async with session.get(url + "/healthz", headers={"Host": "not-allowed.example"}) as resp:
            assert resp.status == 421
        async with sse_stream(url + "/api/rooms/lobby/events") as sse:
            await sse.started()
            await hub.publish("lobby", text="rootless")
            assert (await sse.next_of("message")).json()["text"] == "rootless"


@pytest.mark.parametrize(("prefix", "existing"), [
    ("/chat", "/chat/rooms"),
    ("/chat", "/chat"),
    ("", "/"),
    ("", "/api/users"),
    ("", "/ws"),
])
def test_a_prefix_that_collides_with_the_apps_routes_is_refused(prefix: str,
                                                                existing: str) -> None:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get(existing, handler)
    with pytest.raises(ValueError, match=f"already has the route '{existing}'"):
        hubbub.setup(app, prefix, memory())
    assert hubbub.HUBS not in app


def test_settings_from_code_are_checked_as_flags_are() -> None:
    with pytest.raises(hubbub.ConfigError, match="heartbeat"):
        hubbub.setup(web.Application(), "/chat", hubbub.Settings(heartbeat=-1))
    with pytest.raises(hubbub.ConfigError, match="unknown setting 'colour'"):
        hubbub.settings(colour="blue")
    with pytest.raises(hubbub.ConfigError, match="max_text_bytes"):
        hubbub.settings(max_text_bytes=10_000, max_frame_bytes=1_000)


@pytest.mark.parametrize("prefix", ["chat", "/{room}", "//chat", "/chat//x", "/../admin",
                                    "/chat/.", "/ch at", "/chat?x=1", "/chat#x", "/ch\nat",
                                    "/" + "\u00e9"])
def test_a_prefix_that_is_not_a_plain_path_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        hubbub.setup(web.Application(), prefix, memory())


def team_login() -> Callable[[web.Request], Identity]:
    """The app's own login: a `team` cookie names a user's team, its room is theirs."""

    def authorize(request: web.Request) -> Identity:
        user, _, team = request.cookies.get("login", "").partition("@")
        if not user or not team:
            raise web.HTTPForbidden(text="log in first")
        return Identity(subject=user, nick=user,
                        grants=parse_grants({f"team-{team}": ["read", "publish", "presence"]}))

    return authorize


async def test_authorize_decides_for_websocket_api_and_sse() -> None:
    app = host_app()
    hubbub.setup(app, "/chat", memory(), authorize=team_login())
    async with serving(app) as url:
        ws_url = url.replace("http", "ws") + "/chat/ws"
        assert await handshake_refusal(ws_url) == 403  # no login
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/chat/api/rooms/team-red/messages") as response:
                assert response.status == 403
                assert (await response.json())["code"] == "forbidden"
            async with session.get(url + "/chat/api/rooms/team-red/events") as response:
                assert response.status == 403
                assert (await response.json())["code"] == "forbidden"
            async with session.get(url + "/chat/") as response:
                assert response.status == 200  # the page itself is not guarded
        cookie = {"Cookie": "login=ann@red"}
        async with json_client(ws_url, headers=cookie) as ws:
            assert ws.welcome["nick"] == "ann"  # the identity's nick, bound
            await join(ws, "team-red")
            refused_join = await ws.request("join", rooms=["team-blue"])
            assert refused_join["type"] == "error" and refused_join["code"] == "forbidden"
            renamed = await ws.request("nick", nick="bob")
            assert renamed["type"] == "error" and renamed["code"] == "forbidden"
            async with aiohttp.ClientSession(headers=cookie) as session:
                async with session.post(url + "/chat/api/rooms/team-red/messages",
                                        json={"text": "over http"}) as response:
                    assert response.status == 201, await response.text()
                async with session.get(url + "/chat/api/rooms/team-blue/messages") as response:
                    assert response.status == 403
            message = await ws.wait_for(lambda e: e["type"] == "message")
            assert message["text"] == "over http" and message["from"] == "ann"
        async with sse_stream(url + "/chat/api/rooms/team-red/events", cookie) as sse:
            await sse.started()
            async with aiohttp.ClientSession(headers=cookie) as session, session.post(
                    url + "/chat/api/rooms/team-red/messages", json={"text": "streamed"}):
                pass
            assert (await sse.next_of("message")).json()["text"] == "streamed"


async def test_an_async_authorize_and_what_it_must_return() -> None:
    async def authorize(request: web.Request) -> Identity:
        if request.headers.get("X-User") is None:
            raise web.HTTPUnauthorized(text="who are you?")
        return Identity(subject=None, nick=request.headers["X-User"])

    app = web.Application()
    hubbub.setup(app, "/chat", memory(), authorize=authorize)
    async with serving(app) as url:
        async with aiohttp.ClientSession() as session, \
                session.get(url + "/chat/api/rooms") as response:
            assert response.status == 401
            assert await response.json() == {"code": "unauthorized", "reason": "who are you?"}
        ws_url = url.replace("http", "ws") + "/chat/ws"
        async with json_client(ws_url, headers={"X-User": "carol"}) as ws:
            assert ws.welcome["nick"] == "carol"


async def test_shutdown_closes_hubbubs_sockets_1001_and_keeps_the_data(tmp_path: Path) -> None:
    settings = hubbub.settings(store="sqlite", data_dir=tmp_path)
    app = host_app()
    hubbub.setup(app, "/chat", settings)
    async with serving(app) as url:
        ws_url = url.replace("http", "ws") + "/chat/ws"
        events = url + "/chat/api/rooms/lobby/events"
        async with json_client(ws_url) as ws, sse_stream(events) as sse:
            await join(ws, "lobby")
            await sse.started()
            async with aiohttp.ClientSession() as session, session.post(url + "/announce"):
                pass
            await ws.wait_for(lambda e: e["type"] == "message")
            await app.shutdown()  # what the runner's cleanup starts with
            closed = await ws.closed()
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1001
            await sse.next_of("message")
            with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                await sse.next()
    with sqlite3.connect(database_path(settings)) as db:
        texts = [row[0] for row in db.execute("SELECT text FROM messages")]
    assert texts == ["from the host app"]


async def test_a_store_that_cannot_open_fails_the_apps_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = web.Application()
    hubbub.setup(app, "/chat", hubbub.settings(store="sqlite", data_dir=blocker))
    runner = web.AppRunner(app)
    with pytest.raises(StoreOpenError):
        await runner.setup()
    await runner.cleanup()
