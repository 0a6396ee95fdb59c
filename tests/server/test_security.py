"""Who may connect: the browser Origin check and JWT connection tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator

import aiohttp
import jwt
import pytest

from support.server import ServerProcess, running
from support.wsclient import TIMEOUT, json_client, plain_client

pytestmark = pytest.mark.timeout(60)

SECRET = "jwt-secret-for-tests-" + "0123456789abcdef" * 3
EVIL = "http://evil.example"


async def handshake_status(url: str, headers: dict[str, str] | None = None,
                           protocols: tuple[str, ...] = ("hubbub.v1",)) -> int:
    """101 when the WebSocket opened, else the HTTP status the server refused it with."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, headers=headers, protocols=protocols)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory") as server:
        yield server


@pytest.mark.parametrize("protocols", [("hubbub.v1",), ()])
async def test_foreign_origin_refused_and_logged(plain_server: ServerProcess,
                                                 protocols: tuple[str, ...]) -> None:
    status = await handshake_status(plain_server.ws_url, {"Origin": EVIL}, protocols)
    assert status == 403
    assert f"origin {EVIL}" in plain_server.log_text()


@pytest.mark.parametrize("origin", [
    "http://evil.example:80", "https://127.0.0.1", "http://127.0.0.1",
    "http://localhost", "null", "http://127.0.0.1.evil.example", ""])
async def test_near_miss_origins_refused(plain_server: ServerProcess, origin: str) -> None:
    assert await handshake_status(plain_server.ws_url, {"Origin": origin}) == 403


async def test_same_origin_allowed(plain_server: ServerProcess) -> None:
    origin = f"http://127.0.0.1:{plain_server.port}"
    assert await handshake_status(plain_server.ws_url, {"Origin": origin}) == 101
    assert await handshake_status(plain_server.ws_url, {"Origin": origin + "/"}) == 101


async def test_no_origin_allowed(plain_server: ServerProcess) -> None:
    assert await handshake_status(plain_server.ws_url) == 101
    assert await handshake_status(plain_server.ws_url, protocols=()) == 101


@pytest.mark.parametrize("allowed", [EVIL, "*", "HTTP://EVIL.EXAMPLE/"])
async def test_allowed_origin_opens_it(tmp_path_factory: pytest.TempPathFactory,
                                       allowed: str) -> None:
    with running(tmp_path_factory, "--store", "memory", "--allowed-origin", allowed) as server:
        assert await handshake_status(server.ws_url, {"Origin": EVIL}) == 101
        if allowed != "*":
            assert await handshake_status(server.ws_url, {"Origin": "http://other.example"}) \
                == 403


async def test_allowed_origin_is_repeatable(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--allowed-origin", EVIL,
                 "--allowed-origin", "https://good.example") as server:
        assert await handshake_status(server.ws_url, {"Origin": EVIL}) == 101
        assert await handshake_status(server.ws_url, {"Origin": "https://good.example"}) == 101


# --- JWT --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--jwt-secret", SECRET) as server:
        yield server


def token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize("protocols", [("hubbub.v1",), ()])
async def test_jwt_required(jwt_server: ServerProcess, protocols: tuple[str, ...]) -> None:
    assert await handshake_status(jwt_server.ws_url, protocols=protocols) == 401
    assert await handshake_status(jwt_server.ws_url + "?token=", protocols=protocols) == 401


@pytest.mark.parametrize("bad", [
    "not-a-jwt",
    token({"nick": "x"}, secret="another-secret-0123456789abcdefghij"),
    token({"nick": "x"}, algorithm="HS512"),
    jwt.encode({"nick": "x"}, "", algorithm="none"),
    token({"nick": "x", "exp": int(time.time()) - 60}),
    token({"nick": "x", "nbf": int(time.time()) + 3600}),
])
async def test_bad_or_expired_token_refused(jwt_server: ServerProcess, bad: str) -> None:
    assert await handshake_status(f"{jwt_server.ws_url}?token={bad}") == 401


async def test_valid_token_sets_nick(jwt_server: ServerProcess) -> None:
    good = token({"nick": "tokenized", "exp": int(time.time()) + 3600})
    async with json_client(f"{jwt_server.ws_url}?token={good}") as client:
        assert client.welcome["nick"] == "tokenized"
    async with plain_client(f"{jwt_server.ws_url}?token={good}") as plain:
        assert await plain.round_trip("hi") == "tokenized: hi"


async def test_token_nick_wins_over_query_nick(jwt_server: ServerProcess) -> None:
    good = token({"nick": "fromtoken"})
    async with json_client(f"{jwt_server.ws_url}?token={good}&nick=fromquery") as client:
        assert client.welcome["nick"] == "fromtoken"


async def test_token_without_nick_is_its_subject_or_a_guest(jwt_server: ServerProcess) -> None:
    async with json_client(f"{jwt_server.ws_url}?token={token({'sub': '1'})}") as client:
        assert client.welcome["nick"] == "1"
    # A subject that is no valid nickname ("@" is not allowed) gives a guest name.
    async with json_client(f"{jwt_server.ws_url}?token={token({'sub': 'u@1'})}") as client:
        assert client.welcome["nick"].startswith("guest-")


async def test_connection_closed_4001_when_token_expires(jwt_server: ServerProcess) -> None:
    soon = token({"nick": "brief", "exp": int(time.time()) + 2})
    async with json_client(f"{jwt_server.ws_url}?token={soon}") as client:
        closed = await client.closed(seconds=TIMEOUT + 3)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4001, closed
