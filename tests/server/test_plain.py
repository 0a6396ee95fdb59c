"""The plain-text protocol: the teaching note's chat, against a real server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from support.server import ADAPTERS, ServerProcess, running
from support.wsclient import http_post_json, join, json_client, plain_client

pytestmark = pytest.mark.timeout(60)

# The bot of the teaching note, section 5, with only its slips fixed: `aiohttp.ClientSession`
# (not asyncio's), `await asyncio.sleep`, the missing `WSMsgType` import, and a short
# interval so the test does not wait ten seconds. The URL comes from argv.
TEACHING_NOTE_BOT = """\
import asyncio, aiohttp, sys
from aiohttp import WSMsgType
url = sys.argv[1]

async def send_stuff(ws):
    while True:
        await ws.send_str("Ask me a question.")
        await asyncio.sleep(0.2)

async def main():
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(url) as ws:
            asyncio.create_task(send_stuff(ws))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and '?' in msg.data:
                    await ws.send_str('No.')

asyncio.run(main())
"""


@pytest.fixture(scope="module", params=list(ADAPTERS))
def lobby_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # No lobby replay on connect here: the tests share the lobby, and each expects its own
    # lines first. The replay itself is tested on servers of its own below.
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 "--max-text-bytes", "100", "--plain-history", "0",
                 adapter=request.param) as server:
        yield server


async def test_line_reaches_every_lobby_member_including_sender(
        lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url, nick="ann") as ann, \
            plain_client(lobby_server.ws_url, nick="bob") as bob:
        await bob.round_trip("bob is here")  # bob is live in the lobby before ann speaks
        await ann.send("hello everyone")
        assert await ann.wait_for("ann: hello everyone")
        assert await bob.wait_for("ann: hello everyone")


async def test_guest_name_without_nick(lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url) as guest:
        line = await guest.round_trip("who am I")
        assert re.fullmatch(r"guest-[0-9a-f]{4}: who am I", line), line


async def test_nick_query_sets_the_name(lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url, nick="Zoë") as zoe:
        assert await zoe.round_trip("bonjour") == "Zoë: bonjour"


async def test_plain_and_json_clients_see_each_other(lobby_server: ServerProcess) -> None:
    async with json_client(lobby_server.ws_url, nick="jay") as jay, \
            plain_client(lobby_server.ws_url, nick="pat") as pat:
        await join(jay, "lobby")
        await pat.round_trip("pat ready")
        await pat.send("from plain")
        event = await jay.wait_for(lambda e: e.get("text") == "from plain")
        assert event["type"] == "message"
        assert event["room"] == "lobby"
        assert event["from"] == "pat"
        await jay.expect("publish", room="lobby", text="from json")
        assert await pat.wait_for("jay: from json")


async def test_data_only_message_reaches_plain_as_compact_json(
        lobby_server: ServerProcess) -> None:
    data = {"build": 812, "status": "green", "tags": ["a", "b"]}
    async with plain_client(lobby_server.ws_url, nick="watcher") as watcher:
        await watcher.round_trip("watching")
        status, _ = await http_post_json(lobby_server.url + "/api/rooms/lobby/messages",
                                         {"data": data, "from": "deploy"})
        assert status == 201
        line = await watcher.wait_for(lambda text: text.startswith("deploy: "))
        assert line == "deploy: " + json.dumps(data, separators=(",", ":"))


async def test_binary_frame_closes_with_1003(lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url) as client:
        await client.ws.send_bytes(b"\x00\x01binary")
        msg = await client.ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1003


async def test_text_over_max_text_bytes_is_refused_and_connection_stays(
        lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url, nick="long") as client:
        await client.send("x" * 101)
        # The reason alone: no code, no JSON (the plain-text codec's error line).
        assert await client.recv() == "error: text is longer than 100 bytes"
        assert await client.round_trip("short again") == "long: short again"


async def test_a_rate_limited_line_gets_an_error_line_and_nothing_else(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0.1",
                 "--rate-burst", "3", "--plain-history", "0") as server:
        async with plain_client(server.ws_url, nick="fast") as client:
            for i in range(6):
                await client.send(f"line {i}")
            got = [await client.recv() for _ in range(6)]
            # One frame per line, in order: the burst is published, the rest refused with
            # the bare reason (no code, no retry_after, which JSON clients get).
            assert got[:3] == ["fast: line 0", "fast: line 1", "fast: line 2"], got
            assert got[3:] == ["error: too many requests"] * 3, got


async def test_last_ten_lobby_messages_on_connect_by_default(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory") as server:
        async with plain_client(server.ws_url, nick="old") as old:
            for i in range(15):
                await old.round_trip(f"line {i}")
        async with plain_client(server.ws_url, nick="new") as new:
            got = [await new.recv() for _ in range(10)]
            assert got == [f"old: line {i}" for i in range(5, 15)]
            # Nothing else was replayed: the next frame is our own live line.
            assert await new.round_trip("now") == "new: now"
            assert len(got) == 10


async def test_plain_history_setting(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--plain-history", "3") as server:
        async with plain_client(server.ws_url, nick="old") as old:
            for i in range(5):
                await old.round_trip(f"line {i}")
        async with plain_client(server.ws_url, nick="new") as new:
            got = [await new.recv() for _ in range(3)]
            assert got == ["old: line 2", "old: line 3", "old: line 4"]
            await new.send("now")
            assert await new.recv() == "new: now"


async def test_plain_history_zero_disables_replay(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, "--store", "memory", "--plain-history", "0") as server:
        async with plain_client(server.ws_url, nick="old") as old:
            await old.round_trip("before")
        async with plain_client(server.ws_url, nick="new") as new:
            await new.send("first")
            assert await new.recv() == "new: first"


async def test_plain_client_gets_no_presence_or_acks(lobby_server: ServerProcess) -> None:
    async with plain_client(lobby_server.ws_url, nick="quiet") as quiet:
        await quiet.round_trip("start")
        async with json_client(lobby_server.ws_url, nick="noisy") as noisy:
            await join(noisy, "lobby")
            await noisy.expect("nick", nick="noisier")
            await noisy.expect("publish", room="lobby", text="marker")
        # Everything between start and the marker would be presence or acks if leaked.
        line = await quiet.recv()
        assert line == "noisier: marker"


async def test_teaching_note_bot(server: ServerProcess, tmp_path: Path) -> None:
    bot_file = tmp_path / "bot.py"
    bot_file.write_text(TEACHING_NOTE_BOT)
    bot = await asyncio.create_subprocess_exec(
        sys.executable, str(bot_file), server.ws_url + "?nick=bot",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with plain_client(server.ws_url, nick="asker") as asker:
            for _ in range(2):  # it keeps asking, not just once
                await asker.wait_for("bot: Ask me a question.")
            await asker.send("Will it rain tomorrow?")
            await asker.wait_for("asker: Will it rain tomorrow?")
            assert await asker.wait_for(lambda line: line.startswith("bot: N")) == "bot: No."
        assert bot.returncode is None, "the bot died"
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(bot.wait(), 5)
        except TimeoutError:
            bot.kill()
            await bot.wait()
