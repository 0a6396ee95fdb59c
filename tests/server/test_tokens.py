"""What a connection token binds: identity, rooms, expiry, refresh, keys (issue 10, item 6).

Every test talks to a real `hubbub serve` over real sockets; tokens are signed here with
PyJWT, keys made here with `cryptography`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support.server import ServerProcess, running
from support.wsclient import TIMEOUT, json_client, plain_client, unique

pytestmark = pytest.mark.timeout(60)

SECRET = "jwt-secret-for-tests-" + "0123456789abcdef" * 3
API_KEY = "api-key-for-tests-0123456789"


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def alice(**claims: Any) -> str:
    return token({"sub": "u-alice", "nick": "alice", "exp": int(time.time()) + 3600, **claims})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--jwt-secret", SECRET, "--api-key", API_KEY) as server:
        yield server


@pytest.fixture(scope="module", params=["aiohttp", "asgi"])
def either_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server under `hubbub serve` and under uvicorn (`hubbub.asgi`)."""
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--jwt-secret", SECRET, "--api-key", API_KEY,
                 adapter=request.param) as server:
        yield server


async def handshake_status(url: str, protocols: tuple[str, ...] = ("hubbub.v1",)) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, protocols=protocols)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def http(method: str, url: str, bearer: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with aiohttp.ClientSession() as session, session.request(
        method, url, json=body, headers=headers
    ) as response:
        return response.status, await response.json(content_type=None)


# --- identity ---------------------------------------------------------------------------


async def test_token_nick_cannot_be_changed(server: ServerProcess) -> None:
    async with json_client(f"{server.ws_url}?token={alice()}&nick=admin") as client:
        assert client.welcome["nick"] == "alice"
        reply = await client.request("nick", nick="admin")
        assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        room = unique("ident")
        await client.expect("join", rooms=[room])
        await client.expect("publish", room=room, text="hi")
        [message] = await client.messages(room, 1)
        assert message["from"] == "alice"


async def test_subject_is_the_nick_when_the_token_names_none(server: ServerProcess) -> None:
    sub_only = token({"sub": "carol"})
    async with json_client(f"{server.ws_url}?token={sub_only}&nick=admin") as client:
        assert client.welcome["nick"] == "carol"
        assert (await client.request("nick", nick="admin"))["code"] == "forbidden"


@pytest.mark.parametrize("claims", [
    {"nick": "alice", "exp": str(int(time.time()) + 3600)},   # PyJWT alone accepts it
    {"nick": "alice", "exp": True},
    {"nick": "alice", "nbf": "0"},
    {"nick": "server"},                                       # reserved nickname
    {"nick": "alice", "rooms": ["lobby"]},                    # not an object
    {"nick": "alice", "rooms": {"lobby": ["write"]}},         # unknown action
    {"nick": "alice", "rooms": {"a/b": ["read"]}},            # not a room name
])
async def test_malformed_claims_refuse_the_token(server: ServerProcess,
                                                 claims: dict[str, Any]) -> None:
    assert await handshake_status(f"{server.ws_url}?token={token(claims)}") == 401
    assert await handshake_status(f"{server.ws_url}?token={token(claims)}", ()) == 401


async def test_string_exp_is_not_accepted_over_http_either(server: ServerProcess) -> None:
    bad = token({"nick": "alice", "exp": str(int(time.time()) + 3600)})
    status, body = await http("GET", f"{server.url}/api/rooms/lobby/messages", bad)
    assert status == 401 and body["code"] == "unauthorized", body


# --- rooms ------------------------------------------------------------------------------


async def test_rooms_claim_limits_the_websocket(server: ServerProcess) -> None:
    team = unique("team")
    rooms = {"lobby": ["read", "publish", "presence"], "team-*": ["read"],
             "team-secret": []}
    async with json_client(f"{server.ws_url}?token={alice(rooms=rooms)}") as client:
        await client.expect("join", rooms=["lobby"])
        await client.expect("publish", room="lobby", text="hello")
        await client.expect("members", room="lobby")
        await client.expect("history", room="lobby")
        # A pattern allows reading only.
        await client.expect("join", rooms=[team])
        requests: list[tuple[str, dict[str, Any]]] = [
            ("publish", {"room": team, "text": "x"}),
            ("members", {"room": team}),
            ("join", {"rooms": ["elsewhere"]}),
            ("join", {"rooms": ["lobby", "team-secret"]}),
            ("history", {"room": "team-secret"}),
            ("history", {"room": "elsewhere"}),
        ]
        for kind, fields in requests:
            reply = await client.request(kind, **fields)
            assert reply["type"] == "error" and reply["code"] == "forbidden", (kind, reply)
        await client.assert_alive()


async def test_rooms_claim_limits_the_http_api(server: ServerProcess) -> None:
    rooms = {"news": ["read"], "chat-*": ["read", "publish"]}
    bearer = alice(rooms=rooms)
    chat = unique("chat")
    base = f"{server.url}/api/rooms"
    status, body = await http("POST", f"{base}/{chat}/messages", bearer, {"text": "hi"})
    assert status == 201, body
    status, body = await http("GET", f"{base}/{chat}/messages", bearer)
    assert status == 200 and body["messages"][-1]["from"] == "alice", body
    # Anything else the token does not grant is 403.
    for method, url, payload in [
        ("POST", f"{base}/news/messages", {"text": "hi"}),
        ("POST", f"{base}/{chat}/messages", {"text": "hi", "from": "admin"}),
        ("GET", f"{base}/secret/messages", None),
        ("GET", f"{base}/{chat}/members", None),
    ]:
        status, body = await http(method, url, bearer, payload)
        assert status == 403 and body["code"] == "forbidden", (method, url, body)
    # The API key still allows everything; a forged token nothing.
    status, body = await http("GET", f"{base}/{chat}/members", API_KEY)
    assert status == 200, body
    forged = token({"nick": "alice"}, key="another-secret-0123456789abcdefghij")
    status, body = await http("GET", f"{base}/{chat}/messages", forged)
    assert status == 401, body


async def test_room_lists_show_only_granted_rooms(server: ServerProcess) -> None:
    hidden, shown = unique("hidden"), unique("shown")
    for room in (hidden, shown):
        status, body = await http("POST", f"{server.url}/api/rooms/{room}/messages", API_KEY,
                                  {"text": "x"})
        assert status == 201, body
    bearer = alice(rooms={shown: ["read"]})
    async with json_client(f"{server.ws_url}?token={bearer}") as client:
        names = {entry["room"] for entry in (await client.expect("rooms"))["rooms"]}
        assert names == {shown}
    status, body = await http("GET", f"{server.url}/api/rooms", bearer)
    assert status == 200 and {entry["room"] for entry in body["rooms"]} == {shown}, body
    status, body = await http("GET", f"{server.url}/api/rooms", API_KEY)
    assert {hidden, shown} <= {entry["room"] for entry in body["rooms"]}


async def test_plain_client_needs_read_in_the_lobby(server: ServerProcess) -> None:
    url = f"{server.ws_url}?token={alice(rooms={'elsewhere': ['read']})}"
    async with plain_client(url) as plain:
        msg = await plain.ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4001, msg
    url = f"{server.ws_url}?token={alice(rooms={'lobby': ['read']})}"
    async with plain_client(url) as plain:
        await plain.send("may I?")
        line = await plain.wait_for(lambda text: text.startswith("error:"))
        assert "publish" in line


# --- expiry and refresh -----------------------------------------------------------------


async def test_refresh_extends_the_connection_past_the_old_exp(server: ServerProcess) -> None:
    soon = int(time.time()) + 2
    async with json_client(f"{server.ws_url}?token={alice(exp=soon)}") as client:
        later = int(time.time()) + 3600
        reply = await client.expect("refresh", token=alice(exp=later))
        assert reply["type"] == "refreshed" and reply["expires"] == later, reply
        await asyncio.sleep(max(soon - time.time(), 0) + 1.5)
        await client.assert_alive()  # the old exp has passed; the new token holds


async def test_a_tokens_exp_closes_the_connection_with_4001(
        either_server: ServerProcess) -> None:
    async with json_client(f"{either_server.ws_url}?token={alice(exp=int(time.time()) + 2)}"
                           ) as client:
        closed = await client.closed(seconds=TIMEOUT + 3)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4001, closed


async def test_refreshed_exp_is_enforced(either_server: ServerProcess) -> None:
    server = either_server
    async with json_client(f"{server.ws_url}?token={alice()}") as client:
        await client.expect("refresh", token=alice(exp=int(time.time()) + 2))
        closed = await client.closed(seconds=TIMEOUT + 3)
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4001, closed


async def test_refresh_applies_new_rooms_and_keeps_the_subject(server: ServerProcess) -> None:
    room = unique("narrow")
    async with json_client(f"{server.ws_url}?token={alice()}") as client:
        await client.expect("join", rooms=[room, "lobby"])
        narrower = alice(rooms={"lobby": ["read"]})
        reply = await client.expect("refresh", token=narrower)
        assert reply["left"] == [room], reply
        reply = await client.request("publish", room="lobby", text="now read-only")
        assert reply["code"] == "forbidden", reply
        for bad in [token({"sub": "u-mallory", "nick": "alice"}),   # another subject
                    token({"sub": "u-alice", "nick": "admin"}),     # another nickname
                    token({"sub": "u-alice", "nick": "alice", "exp": int(time.time()) - 9}),
                    "not-a-jwt"]:
            reply = await client.request("refresh", token=bad)
            assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        # The narrower token is still the one in force.
        assert (await client.request("join", rooms=[room]))["code"] == "forbidden"


async def test_refresh_without_a_token_connection(server: ServerProcess) -> None:
    async with json_client(f"{server.ws_url}?token={API_KEY}") as client:
        reply = await client.request("refresh", token=alice())
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply


# --- keys -------------------------------------------------------------------------------


def hs256_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with any bytes (PyJWT refuses a PEM key as an HMAC secret)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + part(signature)


def write_public_key(path: Path, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_tokens_from_a_public_key_file(
        tmp_path_factory: pytest.TempPathFactory, algorithm: str) -> None:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=2048)
    else:
        private, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
            ec.SECP256R1())
    key_file = write_public_key(tmp_path_factory.mktemp("keys") / "public.pem", private)
    with running(tmp_path_factory, "--store", "memory", "--jwt-secret", SECRET,
                 "--jwt-public-key-file", str(key_file)) as srv:
        good = token({"sub": "bob", "nick": "bob"}, private, algorithm)
        async with json_client(f"{srv.ws_url}?token={good}") as client:
            assert client.welcome["nick"] == "bob"
        # HS256 with the secret still works beside it.
        assert await handshake_status(f"{srv.ws_url}?token={alice()}") == 101
        forged = token({"sub": "bob"}, other, algorithm)
        assert await handshake_status(f"{srv.ws_url}?token={forged}") == 401
        # The public key is no HMAC secret (algorithm confusion).
        confused = hs256_by_hand({"sub": "bob"}, key_file.read_bytes())
        assert await handshake_status(f"{srv.ws_url}?token={confused}") == 401


def test_unusable_public_key_file_stops_start_up(tmp_path: Path) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    for path in (not_a_key, tmp_path / "missing.pem"):
        result = subprocess.run(
            [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--store", "memory",
             "--jwt-public-key-file", str(path)],
            capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 1, result
        assert "jwt_public_key_file" in result.stderr and str(path) in result.stderr


def test_require_token_needs_something_to_check_tokens_with() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--require-token"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "require_token" in result.stderr, result


async def test_require_token_with_only_an_api_key(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--api-key", API_KEY,
                 "--require-token") as srv:
        assert await handshake_status(srv.ws_url) == 401
        assert await handshake_status(srv.ws_url, ()) == 401
        assert await handshake_status(f"{srv.ws_url}?token=wrong-key-0123456789") == 401
        async with json_client(f"{srv.ws_url}?token={API_KEY}&nick=ops") as client:
            assert client.welcome["nick"] == "ops"
            await client.expect("nick", nick="ops2")  # the API key binds no identity


async def test_python_client_refresh(server: ServerProcess) -> None:
    from hubbub.client import HubbubError, connect

    room = unique("client")
    async with connect(server.ws_url, token=alice()) as client:
        await client.join(room, "lobby")
        left = await client.refresh(alice(rooms={"lobby": ["read", "publish"]}))
        assert left == (room,) and set(client.rooms) == {"lobby"}
        assert (await client.send("lobby", "still here")).offset >= 1
        with pytest.raises(HubbubError) as refused:
            await client.refresh(token({"sub": "someone-else", "nick": "alice"}))
        assert refused.value.code == "forbidden"
        with pytest.raises(HubbubError) as refused:
            await client.set_nick("admin")
        assert refused.value.code == "forbidden"
