"""The bot framework, the `hubbub bot` runner and `examples/nobot.py`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from hubbub.client import Message, PresenceEvent, connect
from hubbub.client.bot import Bot, Context, MessageContext
from hubbub.client.bot_runner import main as bot_runner_main
from support.server import ServerProcess, free_port

from .helpers import WAIT, next_from, next_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_nobot_asks_and_answers(shared_server: ServerProcess) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "bot", str(EXAMPLES / "nobot.py"), shared_server.ws_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NOBOT_INTERVAL": "0.5"},
    )
    try:
        async with connect(shared_server.ws_url, nick="curious") as chat:
            await chat.join("lobby")
            asks = 0
            while asks < 2:
                msg = await next_from(chat, "nobot")
                assert msg.text == "Ask me a question."
                asks += 1
            await chat.send("lobby", "why is the sky blue?")
            while (msg := await next_from(chat, "nobot")).text != "No.":
                assert msg.text == "Ask me a question."
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 0, out.decode()
        assert "bot nobot stopped" in out.decode()
        assert "Traceback" not in out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_handler_errors_are_logged_and_bot_keeps_going(
    shared_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot(nick="fragile", rooms=["botroom"])
    ticks = 0

    @bot.on_message(contains="boom")
    async def explode(message: Message, ctx: MessageContext) -> None:
        raise RuntimeError("kaboom")

    # Matches its own replies too: if the bot saw its own messages it would loop.
    @bot.on_message(contains="echo")
    async def echo(message: Message, ctx: MessageContext) -> None:
        await ctx.reply(f"seen: {message.text}")

    @bot.on_message(lambda m: m.data == {"ping": True}, room="botroom")
    async def data_handler(message: Message, ctx: MessageContext) -> None:
        await ctx.reply(data={"pong": True})

    @bot.every(0.2)
    async def tick(ctx: Context) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            raise ValueError("first tick fails")
        if ticks == 2:
            await ctx.broadcast("tick")

    async with connect(shared_server.ws_url, nick="user") as chat:
        await chat.join("botroom")
        runner = asyncio.create_task(bot.start(shared_server.ws_url))
        try:
            joined = await next_of(chat, PresenceEvent)
            assert joined.member.nick == "fragile"
            await chat.send("botroom", "boom echo 1")
            assert (await next_from(chat, "fragile")).text in ("tick", "seen: boom echo 1")
            await chat.send("botroom", "echo 2")
            await chat.send("botroom", data={"ping": True})
            texts: list[object] = []
            while len(texts) < 3 or "tick" not in texts:
                msg = await next_from(chat, "fragile")
                texts.append(msg.text if msg.text is not None else msg.data)
            replies = [t for t in texts if t != "tick"]
            assert replies[-2:] == ["seen: echo 2", {"pong": True}]
        finally:
            bot.stop()
            await asyncio.wait_for(runner, WAIT)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("handler explode failed" in r.getMessage() and r.exc_info
               and "kaboom" in str(r.exc_info[1]) for r in failures)
    assert any("periodic task tick failed" in r.getMessage() and r.exc_info for r in failures)


def test_run_reports_unreachable_server(caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot(nick="lonely")
    assert bot.run(f"ws://127.0.0.1:{free_port()}/ws") == 1
    assert any("cannot reach" in r.getMessage() for r in caplog.records)


def test_registration_mistakes() -> None:
    bot = Bot(nick="x")
    with pytest.raises(ValueError):
        bot.every(0)
    with pytest.raises(TypeError):
        bot.on_message(contains="?")(lambda m, c: None)  # type: ignore[arg-type, return-value]

    @bot.on_message
    async def everything(message: Message, ctx: MessageContext) -> None:
        return None

    assert bot._routes[-1].handler is everything


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "no such file"),
        ("x = 1\n", "must define a module-level `bot = Bot(...)` (found nothing)"),
        ("bot = 42\n", "(found int)"),
        ("def broken(:\n", "failed to load"),
        ("raise RuntimeError('at import')\n", "failed to load"),
    ],
)
def test_runner_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  source: str | None, expected: str) -> None:
    path = tmp_path / "mybot.py"
    if source is not None:
        path.write_text(source)
    assert bot_runner_main([str(path), "ws://127.0.0.1:1/ws"]) == 1
    err = capsys.readouterr().err
    assert f"hubbub bot: error: {path}" in err or "no such file" in err
    assert expected in err
