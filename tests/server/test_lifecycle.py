"""Shutdown, restart, debug mode, heartbeats and too-slow clients, on real processes."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from support.rawws import OP_TEXT, RawWebSocket
from support.server import ServerFactory, ServerProcess, wait_until
from support.wsclient import (
    TIMEOUT,
    http_get_json,
    http_post_json,
    join,
    json_client,
    plain_client,
    unique,
)

pytestmark = pytest.mark.timeout(90)



@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_clients_1001_exits_0_and_keeps_data(
        server: ServerProcess, sig: signal.Signals) -> None:
    room = unique("durable")
    status, stored = await http_post_json(f"{server.url}/api/rooms/{room}/messages",
                                          {"text": "keep me"})
    assert status == 201
    async with json_client(server.ws_url) as jc, plain_client(server.ws_url, nick="p") as pc:
        await join(jc, room)
        await pc.round_trip("before shutdown")
        assert server.proc is not None
        server.proc.send_signal(sig)
        json_close = await jc.closed()
        plain_close = await pc.ws.receive(timeout=TIMEOUT)
        assert json_close.type == aiohttp.WSMsgType.CLOSE and json_close.data == 1001
        assert plain_close.type == aiohttp.WSMsgType.CLOSE and plain_close.data == 1001
    assert server.stop() == 0
    assert "Traceback" not in server.log_text()
    server.start()
    status, page = await http_get_json(f"{server.url}/api/rooms/{room}/messages")
    assert status == 200
    assert [(m["id"], m["text"]) for m in page["messages"]] == [(stored["id"], "keep me")]
    assert page["epoch"] == stored["epoch"]


async def test_idle_server_stops_with_0(server: ServerProcess) -> None:
    assert server.stop() == 0
    assert "stopped" in server.log_text()


async def test_dev_mode_logs_asyncio_debug(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--dev")
    assert "asyncio debug mode" in server.log_text()
    async with json_client(server.ws_url) as client:
        await client.assert_alive()
    assert server.stop() == 0


async def test_no_debug_mode_without_dev(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory")
    assert "asyncio debug mode" not in server.log_text()


async def _connections(server: ServerProcess) -> int:
    status, body = await http_get_json(server.url + "/healthz")
    assert status == 200
    return int(body["connections"])


async def test_heartbeat_drops_client_that_never_answers_pings(
        start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--heartbeat", "0.5")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url, autoping=False) as mute, \
            json_client(server.ws_url) as lively:
        assert await _connections(server) == 2
        # `mute` never reads, so it never answers a ping. aiohttp answers pings only inside
        # `receive`, so `lively` keeps making round trips while we wait.

        async def mute_dropped() -> bool:
            await lively.assert_alive()
            return await _connections(server) == 1

        assert await wait_until(mute_dropped), "the silent client was never disconnected"
        await lively.assert_alive()
        while True:  # now drain what mute was sent: pings, then the end
            msg = await mute.receive(timeout=TIMEOUT)
            if msg.type != aiohttp.WSMsgType.PING:
                break
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR), msg


async def _slow_closes(session: aiohttp.ClientSession, server: ServerProcess) -> float:
    async with session.get(server.url + "/metrics") as response:
        metrics = await response.text()
    values = [float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith("hubbub_slow_closes")]
    assert values, metrics
    return values[0]


async def test_slow_client_closed_4008_fast_client_gets_everything(
        start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--outbox-max-bytes", "65536",
                          "--rate-per-second", "0")
    room = unique("firehose")
    size, batch = 8000, 64
    max_batches = 40  # at most ~20 MB: the kernel's send buffer alone may take 4 MB
    # A small receive buffer, so the kernel cannot swallow the whole flood for the client.
    slow = await RawWebSocket.connect(server.port, protocol="hubbub.v1", read_limit=4096,
                                      rcvbuf=4096)
    welcome = await slow.read_frame()
    assert welcome.opcode == OP_TEXT
    await slow.send_text(f'{{"type": "join", "rooms": ["{room}"], "ref": 1}}')
    assert b'"joined"' in (await slow.read_frame()).payload

    async with json_client(server.ws_url) as fast, aiohttp.ClientSession() as session:
        await join(fast, room)
        sent = 0
        received: list[int] = []

        async def keep_reading() -> None:
            while True:
                event = await fast.wait_for(lambda e: e["type"] == "message", seconds=30)
                received.append(event["offset"])

        reader = asyncio.create_task(keep_reading())
        try:
            for _ in range(max_batches):
                for _ in range(batch):
                    async with session.post(f"{server.url}/api/rooms/{room}/messages",
                                            json={"text": "x" * size}) as response:
                        assert response.status == 201
                    sent += 1
                if await _slow_closes(session, server) >= 1:
                    break

            async def all_received() -> bool:
                return len(received) >= sent

            assert await wait_until(all_received, attempts=150), (len(received), sent)
        finally:
            reader.cancel()
        assert received == list(range(1, sent + 1))
        assert await _slow_closes(session, server) >= 1, f"never closed after {sent} messages"

    closing = await slow.read_until_close(seconds=15)
    assert closing is None or closing.close_code == 4008, closing
    await slow.close()
    assert "4008" in server.log_text()


async def test_heartbeat_keeps_a_client_that_answers_pings(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--heartbeat", "0.3")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url, autoping=False) as quiet:
        pings = 0
        while pings < 5:  # five rounds: long past the point where silence is cut off
            msg = await quiet.receive(timeout=TIMEOUT)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
                await quiet.pong(msg.data)
            else:
                assert msg.type == aiohttp.WSMsgType.TEXT, msg  # lobby traffic only
        assert await _connections(server) == 1


async def test_server_answers_a_clients_ping(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url, autoping=False, protocols=("hubbub.v1",)) as ws:
        await ws.receive_json(timeout=TIMEOUT)  # welcome
        await ws.ping(b"are you there")
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"are you there"


def start_up_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.log_text().splitlines() if line.startswith("hubbub ")]


def test_start_up_says_where_the_data_lives_whatever_the_log_level(
        start_server: ServerFactory, tmp_path: Path) -> None:
    relative = Path(os.path.relpath(tmp_path / "rel-data"))  # as a user would type it
    server = start_server("--log-level", "error", data_dir=relative)
    database = (tmp_path / "rel-data" / "hubbub.sqlite3").resolve()
    assert database.exists()
    lines = start_up_lines(server)
    assert f"hubbub data: {database} (sqlite store, fsync durability)" in lines, lines
    assert not any("warning" in line for line in lines), lines
    assert server.stop() == 0

    batch = start_server("--durability", "batch", "--commit-window-ms", "7",
                         data_dir=tmp_path / "batch")
    assert (f"hubbub data: {(tmp_path / 'batch' / 'hubbub.sqlite3').resolve()} (sqlite store, "
            "batch durability: commits gathered for up to 7 ms)") in start_up_lines(batch)
    memory = start_server("--store", "memory", "--log-level", "warning",
                          data_dir=tmp_path / "mem")
    assert ("hubbub data: in memory (memory store: history is lost when the server stops)"
            in start_up_lines(memory))
    assert not (tmp_path / "mem").exists()


@pytest.mark.parametrize(("flags", "open_parts"), [
    ([], ["the HTTP API needs no key (--api-key)", "/ws needs no token (--jwt-secret)"]),
    (["--api-key", "k" * 16], ["/ws needs no token (--jwt-secret)"]),
    (["--jwt-secret", "s" * 16], ["the HTTP API needs no key (--api-key)"]),
    (["--api-key", "k" * 16, "--jwt-secret", "s" * 16], []),
])
def test_listening_beyond_loopback_warns_of_what_is_open(
        start_server: ServerFactory, flags: list[str], open_parts: list[str]) -> None:
    # Listens on every interface for the moment of the check; nothing but /healthz is sent.
    server = start_server("--host", "0.0.0.0", "--store", "memory", "--log-level", "error",
                          *flags)
    lines = start_up_lines(server)
    warnings = [line for line in lines if line.startswith("hubbub warning:")]
    assert server.stop() == 0
    if not open_parts:
        assert warnings == [], lines
        return
    assert warnings == [f"hubbub warning: listening on 0.0.0.0 (not only loopback) while "
                        f"{' and '.join(open_parts)}: anyone who can reach it can use it"], lines


async def test_retention_first_pass_runs_at_start_up(server: ServerProcess) -> None:
    # docs/operations.md: the first pass runs as the server starts, then one every 60 s
    # after the previous pass ends. A restarted server trims at once, not a minute later.
    room = unique("retained")
    for text in ("old 1", "old 2", "new"):
        status, _ = await http_post_json(f"{server.url}/api/rooms/{room}/messages",
                                         {"text": text})
        assert status == 201
    assert server.stop() == 0
    server.args += ["--retention-max-count", "1"]
    server.start()

    async def trimmed() -> bool:
        status, page = await http_get_json(f"{server.url}/api/rooms/{room}/messages")
        assert status == 200
        return [m["text"] for m in page["messages"]] == ["new"]

    # Bounded polling far below the 60 s interval: only a start-up pass can pass this.
    assert await wait_until(trimmed, attempts=100, pause=0.1)
    assert "retention removed 2 message(s)" in server.log_text()
