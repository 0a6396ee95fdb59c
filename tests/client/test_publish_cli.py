"""`hubbub publish` as a user runs it: a real subprocess against a real server."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import pytest

from hubbub.client import Message, connect
from support.server import ServerFactory, ServerProcess, free_port

from .helpers import messages


async def hubbub(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_one_line_failure(code: int, out: str, err: str, expected: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("hubbub publish: error: "), err
    assert expected in err, err
    assert out == ""


async def test_reaches_json_and_plain_text_clients(shared_server: ServerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(shared_server.ws_url) as plain,
        connect(shared_server.ws_url) as chat,
    ):
        await chat.join("lobby")
        code, out, err = await hubbub("publish", shared_server.url, "lobby", "deployed v2",
                                      "--from", "deploy")
        assert code == 0, err
        assert out.startswith("published to lobby at offset 1 (id ")
        [msg] = await messages(chat, 1)
        assert (msg.nick, msg.text, msg.sender) == ("deploy", "deployed v2", None)
        assert await asyncio.wait_for(plain.receive_str(), 10) == "deploy: deployed v2"

        # A ws:// URL works too, and data-only messages reach plain clients as JSON.
        code, out, err = await hubbub("publish", shared_server.ws_url, "lobby",
                                      "--data", '{"build": 812, "ok": true}')
        assert code == 0, err
        [data_msg] = await messages(chat, 1)
        assert isinstance(data_msg, Message)
        assert data_msg.data == {"build": 812, "ok": True} and data_msg.offset == 2
        line = await asyncio.wait_for(plain.receive_str(), 10)
        assert line.endswith(': {"build":812,"ok":true}')


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bad room", "hi"], "bad room name 'bad room'"),
        (["a/b", "hi"], "bad room name"),
        (["x" * 65, "hi"], "bad room name"),
        (["lobby", "--data", "{nope"], "--data is not valid JSON"),
        (["lobby", "--data", ""], "--data is not valid JSON"),
        (["lobby"], "give TEXT, --data JSON, or both"),
        (["lobby", "x" * 9000], "message_too_large"),
        (["lobby", "hi", "--from", "bad name!"], "invalid_nick"),
        (["lobby", "--data", '"' + "y" * 70_000 + '"'], "body_too_large"),
        (["lobby", "hi", "--timeout", "nope"], ""),
    ],
)
async def test_failures_are_one_line(shared_server: ServerProcess, args: list[str],
                                     expected: str) -> None:
    code, out, err = await hubbub("publish", shared_server.url, *args)
    if not expected:  # argparse's usage error: exit 2, usage line + error line
        assert code == 2 and "Traceback" not in err and "invalid float value" in err
        return
    assert_one_line_failure(code, out, err, expected)


async def test_unreachable_and_bad_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await hubbub("publish", url, "lobby", "hi")
    assert_one_line_failure(code, out, err, "Connection refused")
    code, out, err = await hubbub("publish", "ftp://127.0.0.1", "lobby", "hi")
    assert_one_line_failure(code, out, err, "bad URL")


async def test_api_key(start_server: ServerFactory) -> None:
    server = start_server("--api-key", "sekrit-key-1")
    code, out, err = await hubbub("publish", server.url, "lobby", "hi")
    assert_one_line_failure(code, out, err, "server refused")
    code, out, err = await hubbub("publish", server.url, "lobby", "hi", "--api-key", "wrong")
    assert_one_line_failure(code, out, err, "server refused")
    code, out, err = await hubbub("publish", server.url, "lobby", "hi", "--api-key", "sekrit-key-1")
    assert code == 0 and "offset 1" in out, err
    code, out, err = await hubbub("publish", server.url, "lobby", "hi",
                                  env={"HUBBUB_API_KEY": "sekrit-key-1"})
    assert code == 0 and "offset 2" in out, err


async def test_id_makes_a_rerun_a_duplicate(shared_server: ServerProcess) -> None:
    args = ("publish", shared_server.url, "cron", "nightly done", "--id", "nightly-2026-12-02")
    code, first, err = await hubbub(*args)
    assert code == 0, err
    assert first.startswith("published to cron at offset ") and "(id nightly-2026-12-02," in first
    code, again, err = await hubbub(*args)
    assert code == 0, err
    assert again == first.rstrip("\n") + "; already published, nothing new stored\n"
    code, out, err = await hubbub("publish", shared_server.url, "cron", "x", "--id", "a b")
    assert_one_line_failure(code, out, err, "bad message id 'a b': id must be 1 to 64")
