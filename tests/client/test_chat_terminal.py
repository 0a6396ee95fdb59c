"""`hubbub chat` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import asyncio
import os
import sys

import pexpect

from hubbub.client import PresenceEvent, Reconnected, ReconnectPolicy, connect
from support.server import ServerFactory, ServerProcess

from .helpers import WAIT, next_from, next_of


class Terminal:
    def __init__(self, *args: str) -> None:
        env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.child = pexpect.spawn(
            sys.executable, ["-m", "hubbub", "chat", *args],
            env=env, dimensions=(40, 120), encoding="utf-8", timeout=WAIT,
        )

    async def expect(self, text: str) -> None:
        await self.child.expect_exact(text, async_=True)

    def type(self, line: str) -> None:
        self.child.sendline(line)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


async def test_chat_session(start_server: ServerFactory) -> None:
    server = start_server()
    term = Terminal(server.url, "--room", "lobby", "--nick", "ann")
    policy = ReconnectPolicy(base=0.2, max_delay=1.0)
    try:
        await term.expect("connected as ann; in lobby")
        term.type("hello from ann")
        await term.expect("[lobby] ann: hello from ann")

        async with connect(server.ws_url, nick="bob", reconnect=policy) as bob:
            await bob.join("lobby")
            await term.expect("* bob joined lobby")
            await bob.send("lobby", "hi ann")
            await term.expect("[lobby] bob: hi ann")
            term.type("second line")
            got = await next_from(bob, "ann")
            assert got.text == "second line"

            term.type("/who")
            await term.expect("* in lobby (2): ann, bob")
            term.type("/nick anna")
            await term.expect("* you are now anna")
            renamed = await next_of(bob, PresenceEvent)
            assert (renamed.old_nick, renamed.member.nick) == ("ann", "anna")
            term.type("/nick \"not ok!\"")
            await term.expect("* error: nicknames are")

            term.type("/join dev")
            await term.expect("* joined dev (1 here)")
            term.type("in dev")
            await term.expect("[dev] anna: in dev")
            term.type("/rooms")
            await term.expect("lobby: 2 here, 3 messages")
            term.type("/history 5")
            await term.expect("* last 1 messages of dev:")
            term.type("/bogus")
            await term.expect("* unknown command /bogus; /help lists them")
            term.type("/help")
            await term.expect("/leave [ROOM]")

            await asyncio.to_thread(server.stop)
            await term.expect("* disconnected: closed with 1001 (going away)")
            await term.expect("* reconnecting in")
            await asyncio.to_thread(server.start)
            await term.expect("* reconnected; recovered 0 messages")
            await next_of(bob, Reconnected)
            await bob.send("lobby", "welcome back")
            await term.expect("[lobby] bob: welcome back")
            term.type("/join lobby")
            await term.expect("* joined lobby (2 here)")
            term.type("still here")
            got = await next_from(bob, "anna")
            assert got.text == "still here"

            term.type("/leave")
            await term.expect("* left lobby")
            await next_of(bob, PresenceEvent)
        term.type("/quit")
        await term.child.expect(pexpect.EOF, async_=True)
        term.child.close()
        assert term.child.exitstatus == 0
    finally:
        term.close()


async def test_chat_cannot_connect() -> None:
    term = Terminal("ftp://nowhere")
    try:
        await term.expect("hubbub chat: error: bad URL")
        await term.child.expect(pexpect.EOF, async_=True)
        term.child.close()
        assert term.child.exitstatus == 1
        assert "Traceback" not in (term.child.before or "")
    finally:
        term.close()


async def test_chat_refusals_are_one_line(shared_server: ServerProcess) -> None:
    for args, expected in [
        (["--room", "bad room"], "hubbub chat: error: room names are"),
        (["--nick", "bad!"], "hubbub chat: error: ws://127.0.0.1"),
    ]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", "chat", shared_server.url, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 1
        assert err.decode().count("\n") == 1 and err.decode().startswith(expected), err
