"""Hostile clients (issue 10, items 4, 5, 7, 8, 9, 12, 13): each probe against a real server.

Cross-site publishes, DNS rebinding, half-finished requests, connection floods, ping floods,
headers that used to be a 500 or a traceback in the log, and a data directory whose files
are read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.server.security import allowed_hosts, is_loopback
from support.rawws import OP_PING, OP_PONG, RawWebSocket, frame
from support.server import ServerProcess, running
from support.wsclient import TIMEOUT, http_get_json, unique

pytestmark = pytest.mark.timeout(90)

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory") as started:
        yield started


async def raw_http(port: int, request: bytes, *, read_all: bool = True,
                   until: bytes = b"\r\n\r\n") -> bytes:
    """Send `request` on a new socket; everything the server sends until it closes (or,
    without `read_all`, up to `until`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(TIMEOUT * 2):
            return await reader.read() if read_all else await reader.readuntil(until)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def publish(server: ServerProcess, room: str, body: bytes,
                  headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.post(
            f"{server.url}/api/rooms/{room}/messages", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


# --- 4: cross-site publishes --------------------------------------------------------------

@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1"])
async def test_a_foreign_origin_cannot_publish(server: ServerProcess, origin: str) -> None:
    room = unique("csrf")
    # What a `no-cors` fetch from another site sends: text/plain, Origin of that site.
    status, body, _ = await publish(server, room, b'{"text": "pwned", "from": "admin"}',
                                    {"Origin": origin, "Content-Type": "text/plain"})
    assert status == 403 and body["code"] == "origin_not_allowed", body
    status, _ = await http_get_json(f"{server.url}/api/rooms/{room}/messages")
    assert status == 404  # nothing was stored, not even the room


async def test_same_origin_and_originless_publishes_work(server: ServerProcess) -> None:
    room = unique("own")
    status, _, _ = await publish(server, room, b'{"text": "from the page"}',
                                 {"Origin": server.url, "Content-Type": "application/json"})
    assert status == 201
    # README's curl line exactly: `curl -X POST URL -d '{"text": "hi from curl"}'` sends no
    # Origin and a form content type.
    curl = shutil.which("curl")
    if curl is not None:
        proc = await asyncio.create_subprocess_exec(
            curl, "-s", "-X", "POST", f"{server.url}/api/rooms/{room}/messages",
            "-d", '{"text": "hi from curl"}', stdout=subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert b'"offset":2' in out, out
    else:
        status, _, _ = await publish(server, room, b'{"text": "hi from curl"}',
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 201


async def test_reads_need_no_origin_check(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            f"{server.url}/api/rooms", headers={"Origin": EVIL}) as resp:
        assert resp.status == 200


# --- 7: 400/404 instead of 500 ------------------------------------------------------------

@pytest.mark.parametrize(("path", "headers", "expected"), [
    ("/ws", b"Origin: http://127.0.0.1:99999\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400),
    ("/api/rooms/x/messages", b"Origin: http://127.0.0.1:99999\r\n", 400),
    ("/api/rooms/x/messages", b"Origin: http://[::1\r\n", 400),
    ("/static/" + "a" * 8000, b"", 404),
    ("/static/" + "a/" * 3000, b"", 404),
])
async def test_bad_headers_and_paths_are_not_a_500(server: ServerProcess, path: str,
                                                   headers: bytes, expected: int) -> None:
    method = b"POST" if path.startswith("/api/") else b"GET"
    body = b'{"text": "x"}' if method == b"POST" else b""
    request = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
               + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
               + body)
    response = await raw_http(server.port, request)
    assert status_of(response) == expected, response[:300]
    assert "Traceback" not in server.log_text()


async def test_raw_bytes_in_authorization_are_a_400(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--api-key", "k" * 16) as keyed:
        for auth, expected in ((b"Bearer \xff\xfe", 400), (b"Bearer \xc3\xa9", 401),
                               (b"Bearer " + b"k" * 16, 200)):
            response = await raw_http(keyed.port, b"GET /api/rooms HTTP/1.1\r\nHost: 127.0.0.1"
                                      b"\r\nAuthorization: " + auth + b"\r\nConnection: close"
                                      b"\r\n\r\n")
            assert status_of(response) == expected, response[:300]
        assert "Traceback" not in keyed.log_text()


# --- 9: DNS rebinding ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api/rooms", "/ws", "/healthz"])
async def test_a_rebound_host_name_is_refused(server: ServerProcess, path: str) -> None:
    # The browser on evil.example (now resolving to 127.0.0.1) sends its own name as Host
    # and Origin, which the same-origin check alone would accept.
    name = f"evil.example:{server.port}"
    response = await raw_http(server.port, f"GET {path} HTTP/1.1\r\nHost: {name}\r\nOrigin: "
                              f"http://{name}\r\nConnection: close\r\n\r\n".encode())
    assert status_of(response) == 421, response[:300]
    assert b"allowed_hosts" in response


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST."])
async def test_loopback_names_are_allowed_by_default(server: ServerProcess, host: str) -> None:
    response = await raw_http(server.port, f"GET /healthz HTTP/1.1\r\nHost: {host}:{server.port}"
                              "\r\nConnection: close\r\n\r\n".encode())
    assert status_of(response) == 200, response[:300]


async def test_allowed_hosts_setting(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--allowed-host", "chat.example",
                 "--allowed-host", ".corp.example") as named:
        for host, expected in (("chat.example", 200), ("a.corp.example", 200),
                               ("corp.example", 200), ("evil.example", 421),
                               ("127.0.0.1", 200), ("192.0.2.1", 421)):
            response = await raw_http(named.port, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n"
                                      "Connection: close\r\n\r\n".encode())
            assert status_of(response) == expected, (host, response[:300])


# --- 5: timeouts and connection caps ------------------------------------------------------

@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--header-timeout", "1",
                 "--keepalive-timeout", "1") as started:
        yield started


@pytest.mark.parametrize("partial", [b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
async def test_half_finished_requests_are_dropped(impatient: ServerProcess,
                                                  partial: bytes) -> None:
    response = await raw_http(impatient.port, partial)  # returns once the server closes
    assert response == b"" or status_of(response) == 408, response


async def test_idle_keepalive_connections_are_closed(impatient: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(TIMEOUT * 2):
            head = await reader.readuntil(b"\r\n\r\n")
            assert status_of(head) == 200 and b"close" not in head.lower(), head
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
            await reader.readexactly(length)
            assert await reader.read() == b""  # closed by the server, nothing more sent
    finally:
        writer.close()


async def test_a_slow_api_body_is_answered_408(impatient: ServerProcess) -> None:
    response = await raw_http(impatient.port, b"POST /api/rooms/slow/messages HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"text\":",
                              read_all=False, until=b"}")
    assert status_of(response) == 408, response
    assert b'"code":"request_timeout"' in response


async def test_websockets_outlive_the_timeouts(impatient: ServerProcess) -> None:
    ws = await RawWebSocket.connect(impatient.port)
    try:
        await asyncio.sleep(2.5)  # past both timeouts (not a duration being measured)
        await ws.send(frame(OP_PING, b"still here"))
        got = await ws.read_frame()
        assert got.opcode == OP_PONG and got.payload == b"still here"
    finally:
        await ws.close()


async def refusals(port: int, attempts: int) -> tuple[list[RawWebSocket], bytes]:
    """Open WebSockets until one is refused: (those that opened, the refusal)."""
    opened: list[RawWebSocket] = []
    for _ in range(attempts):
        try:
            opened.append(await RawWebSocket.connect(port))
        except AssertionError as exc:  # the handshake was answered with something else
            return opened, str(exc).encode("latin-1", "replace")
    raise AssertionError(f"no refusal after {attempts} connections")


async def handshake(port: int, *, read_all: bool = False) -> bytes:
    return await raw_http(port, b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", read_all=read_all)


@pytest.mark.parametrize(("flags", "status", "code"), [
    (("--max-connections-per-ip", "3"), 429, "max_connections_per_ip"),
    (("--max-connections", "3"), 503, "max_connections"),
])
async def test_connection_caps(tmp_path_factory: pytest.TempPathFactory, flags: tuple[str, ...],
                               status: int, code: str) -> None:
    with running(tmp_path_factory, "--store", "memory", *flags) as capped:
        opened = [await RawWebSocket.connect(capped.port) for _ in range(3)]
        try:
            refused = await handshake(capped.port, read_all=True)
            assert status_of(refused) == status, refused
            assert b"Retry-After: 5" in refused and code.encode() in refused
            response = await raw_http(capped.port, b"GET /api/rooms HTTP/1.1\r\nHost: "
                                      b"127.0.0.1\r\nConnection: close\r\n\r\n")
            assert status_of(response) == status and b'"code":"too_many_connections"' \
                in response, response
            await opened.pop().close()
            for _ in range(100):  # until the server has seen the close
                response = await handshake(capped.port)
                if status_of(response) == 101:
                    break
                await asyncio.sleep(0.05)
            assert status_of(response) == 101, response
        finally:
            for ws in opened:
                await ws.close()
        # At least the two refusals above (the handshake and the API request) are counted
        # for operators; more if a probe below was refused while closes were still on
        # their way.
        for _ in range(100):
            status, text = await raw_metrics(capped.port)
            if status == 200:
                break
            await asyncio.sleep(0.05)
        found = re.search(rf'hubbub_connection_limit_hits_total{{reason="{code}"}} (\S+)', text)
        assert found is not None and float(found[1]) >= 2, text
        assert "refused a connection from 127.0.0.1" in capped.log_text()


async def raw_metrics(port: int) -> tuple[int, str]:
    response = await raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Connection: close\r\n\r\n", read_all=True)
    return status_of(response), response.decode(errors="replace")


async def test_connection_rate_per_address(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--connection-rate-per-second", "0.01",
                 "--connection-rate-burst", "20") as limited:
        # The start-up health checks spent some of the burst; the rest open, then 429.
        opened, refusal = await refusals(limited.port, 25)
        try:
            assert opened and b" 429 " in refusal and b"Retry-After" in refusal, refusal
        finally:
            for ws in opened:
                await ws.close()


def test_open_file_limit_is_raised(tmp_path: Path) -> None:
    found = shutil.which("prlimit")
    if found is None:
        pytest.skip("needs prlimit (util-linux)")
    prlimit: str = found

    class Limited(ServerProcess):
        def command(self) -> list[str]:
            return [prlimit, "--nofile=256:2048", *super().command()]

    limited = Limited(tmp_path / "data", "--store", "memory").start()
    try:
        assert limited.proc is not None
        limits = Path(f"/proc/{limited.proc.pid}/limits").read_text()
        assert re.search(r"Max open files\s+2048\s+2048", limits), limits
        log = limited.log_text()
        assert "open-file limit raised from 256 to 2048" in log, log
    finally:
        limited.kill()


# --- 12: ping floods and the HTTP API rate --------------------------------------------------

async def test_a_ping_flood_is_closed_with_4029(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--ping-rate-per-second", "1",
                 "--ping-rate-burst", "5") as limited:
        polite = await RawWebSocket.connect(limited.port)
        flood = await RawWebSocket.connect(limited.port)
        try:
            for n in range(5):
                await polite.send(frame(OP_PING, b"%d" % n))
                assert (await polite.read_frame()).opcode == OP_PONG
            await flood.send(b"".join(frame(OP_PING, b"x") for _ in range(200)))
            closed = await flood.read_until_close()
            assert closed is not None and closed.close_code == 4029, closed
            pongs = await RawWebSocket.connect(limited.port)  # unsolicited pongs count too
            await pongs.send(b"".join(frame(OP_PONG, b"x") for _ in range(200)))
            closed = await pongs.read_until_close()
            await pongs.close()
            assert closed is not None and closed.close_code == 4029, closed
            await asyncio.sleep(1.1)  # one more token for the polite client
            await polite.send(frame(OP_PING, b"later"))
            got = await polite.read_frame()
            assert got.opcode == OP_PONG and got.payload == b"later"
        finally:
            await polite.close()
            await flood.close()
        assert "pings per second" in limited.log_text()


async def test_the_http_api_is_rate_limited_per_address(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--http-rate-per-second", "0.01",
                 "--http-rate-burst", "3") as limited:
        statuses = []
        async with aiohttp.ClientSession() as session:
            for _ in range(4):
                async with session.get(f"{limited.url}/api/rooms") as resp:
                    statuses.append(resp.status)
                    last, headers = await resp.json(), resp.headers
            assert statuses == [200, 200, 200, 429]
            assert set(last) == {"code", "reason"} and last["code"] == "rate_limited"
            assert int(headers["Retry-After"]) >= 1
            async with session.get(f"{limited.url}/healthz") as resp:
                assert resp.status == 200  # only the API is limited


# --- 8: one line, not a traceback -----------------------------------------------------------

async def test_oversized_headers_log_one_rate_limited_line(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory") as target:
        for _ in range(60):
            response = await raw_http(target.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"X-Big: " + b"a" * 10_000 + b"\r\n\r\n")
            assert status_of(response) == 400
        await asyncio.sleep(0.3)
        log = target.log_text()
        assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
        lines = [line for line in log.splitlines() if "bad request from 127.0.0.1" in line]
        assert 1 <= len(lines) < 60, log[-2000:]  # 20 at once, then one a second
        assert all("WARNING" in line for line in lines)


async def test_a_reset_during_pings_logs_no_traceback(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--heartbeat", "0.2",
                 "--ping-rate-per-second", "0") as target:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", target.port))
            ws = None
            with contextlib.suppress(ConnectionError):
                reader, writer = await asyncio.open_connection(sock=sock)
                ws = RawWebSocket(reader, writer)
                await handshake_on(ws, target.port)
                # A stream of pings whose pongs the client never reads, then a reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                await ws.send(b"".join(frame(OP_PING, b"p" * 100) for _ in range(2000)))
                ws.abort()
        await asyncio.sleep(0.5)
        log = target.log_text()
        assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


async def handshake_on(ws: RawWebSocket, port: int) -> None:
    ws.writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await ws.writer.drain()
    head = await asyncio.wait_for(ws.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert b" 101 " in head


# --- 13: read-only database files -----------------------------------------------------------

def _make_read_only(paths: list[Path]) -> list[str]:
    """Read-only even for root: `chattr +i` as root, else the mode bits; the undo command."""
    if os.geteuid() != 0:
        for path in paths:
            path.chmod(0o444)
        return ["chmod", "0644", *map(str, paths)]
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)],
                                        capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: files cannot be made read-only")
    return [chattr, "-i", *map(str, paths)]


def test_read_only_database_files_are_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data).start()
    first.stop()
    files = sorted(p for p in data.iterdir() if p.is_file())
    assert any(p.name == "hubbub.sqlite3" for p in files), files
    undo = _make_read_only(files)
    try:
        second = ServerProcess(data)
        with pytest.raises(RuntimeError, match="server exited with 1") as failed:
            second.start()
        message = str(failed.value)
        assert "read-only" in message and str(data / "hubbub.sqlite3") in message, message
        assert "directory" not in message.split("read-only", 1)[0].split("\n")[-1], message
    finally:
        subprocess.run(undo, check=True)


# --- the rules behind the defaults (no server can be bound off loopback in the tests) -------

@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("192.0.2.7", False), ("chat.example.com", False)])
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_allowed_hosts_defaults() -> None:
    assert allowed_hosts("127.0.0.1", ()) == ("localhost", "127.0.0.1", "[::1]")
    assert allowed_hosts("::1", ()) == ("localhost", "127.0.0.1", "[::1]")
    assert allowed_hosts("127.0.0.5", ()) == ("localhost", "127.0.0.1", "[::1]", "127.0.0.5")
    assert allowed_hosts("0.0.0.0", ()) == ("*",)
    assert allowed_hosts("0.0.0.0", ("chat.example",)) == (
        "chat.example", "localhost", "127.0.0.1", "[::1]")
    assert allowed_hosts("127.0.0.1", ("*",)) == ("*",)
