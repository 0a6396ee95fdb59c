"""Connection failures: each gives `ConnectionFailed` with a message that says why."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from hubbub.client import ConnectionFailed, connect
from support.server import ServerFactory, ServerProcess, free_port


async def test_unreachable_server(shared_server: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    with pytest.raises(ConnectionFailed, match=r"cannot reach .*Connection refused") as info:
        async with connect(url, connect_timeout=5):
            pass
    assert info.value.status is None


async def test_foreign_origin_is_refused_with_403(shared_server: ServerProcess) -> None:
    with pytest.raises(ConnectionFailed, match=r"403 Forbidden.*'http://evil\.example'") as info:
        async with connect(shared_server.ws_url, origin="http://evil.example"):
            pass
    assert info.value.status == 403


async def test_missing_token_is_refused_with_401(start_server: ServerFactory) -> None:
    server = start_server(env={"HUBBUB_JWT_SECRET": "s" * 32})
    with pytest.raises(ConnectionFailed, match=r"401 Unauthorized") as info:
        async with connect(server.ws_url):
            pass
    assert info.value.status == 401


@pytest.mark.parametrize("nick", [" lead", "x" * 33, "a  b", "<script>", "\x00"])
async def test_invalid_nick_is_refused_with_400(shared_server: ServerProcess, nick: str) -> None:
    with pytest.raises(ConnectionFailed, match=r"400") as info:
        async with connect(shared_server.ws_url, nick=nick):
            pass
    assert info.value.status == 400


async def test_no_websocket_endpoint(shared_server: ServerProcess) -> None:
    with pytest.raises(ConnectionFailed, match=r"404"):
        async with connect(shared_server.url + "/nowhere"):
            pass


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/ws", "not a url", "ws://", "127.0.0.1:8080", "", "ws://[::1/ws"],
)
async def test_bad_urls(url: str) -> None:
    with pytest.raises(ConnectionFailed, match=r"bad URL"):
        async with connect(url):
            pass


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    sock: socket.socket = server.sockets[0]
    yield sock.getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_server_times_out(silent_port: int) -> None:
    with pytest.raises(ConnectionFailed, match=r"no answer from .* within 0\.5 s"):
        async with connect(f"ws://127.0.0.1:{silent_port}/ws", connect_timeout=0.5):
            pass
