"""`hubbub chat` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import shutil
import subprocess
import sys

import pexpect
import pytest

from hubbub.client import PresenceEvent, Reconnected, ReconnectPolicy, connect
from support.server import ServerFactory, ServerProcess

from .helpers import WAIT, next_from, next_of, post


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


class Screen:
    """`hubbub chat` in a tmux pane of its own tmux server, read back as the screen shows
    it (what pexpect sees is the byte stream, where a typed line is there however it ends
    up displayed)."""

    _names = itertools.count()

    def __init__(self, *args: str) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("needs tmux (scripts/test.sh installs it)")
        self.socket = f"hubbub-test-{os.getpid()}-{next(self._names)}"
        command = shlex.join(["env", "TERM=xterm", "PROMPT_TOOLKIT_NO_CPR=1",
                              sys.executable, "-m", "hubbub", "chat", *args])
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", command)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              check=True, capture_output=True, text=True, timeout=WAIT).stdout

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p").splitlines()
                if line.strip()]

    async def wait_for(self, line: str) -> list[str]:
        """The screen's lines once one of them is `line` (a failure after about WAIT s)."""
        for _ in range(int(WAIT / 0.05)):
            lines = await asyncio.to_thread(self.lines)
            if line in lines:
                return lines
            await asyncio.sleep(0.05)
        raise AssertionError(f"{line!r} never showed; the screen:\n" + "\n".join(lines))

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-l", line)
        self.tmux("send-keys", "Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=WAIT)


async def test_chat_shows_earlier_messages_then_live_and_own_lines_once(
        start_server: ServerFactory) -> None:
    server = start_server()
    for text in ("m1", "m2", "m3"):
        assert (await post(server.url, "hist", {"text": text}))[0] == 201
    assert (await post(server.url, "other", {"text": "o1"}))[0] == 201
    screen = Screen(server.url, "--room", "hist", "--nick", "ann", "--history", "2")
    try:
        lines = await screen.wait_for("— live —")
        assert lines[:5] == ["* connected as ann; in hist (1 here); /help for commands",
                             "— earlier messages —", "[hist] server: m2", "[hist] server: m3",
                             "— live —"], lines

        async with connect(server.ws_url, nick="bob") as bob:
            await bob.join("hist")
            await screen.wait_for("* bob joined hist")
            screen.type("hello from ann")
            got = await next_from(bob, "ann")
            assert got.text == "hello from ann"
            await screen.wait_for("[hist] ann: hello from ann ✓")
            # Bob's line comes after ann's echo on ann's connection: once it is on screen,
            # the echo has been handled too.
            await bob.send("hist", "after ann")
            lines = await screen.wait_for("[hist] bob: after ann")
            assert [line for line in lines if "hello from ann" in line] == [
                "[hist] ann: hello from ann ✓"], lines
            assert lines.index("[hist] ann: hello from ann ✓") > lines.index("— live —")

            screen.type("/join other")
            await screen.wait_for("[other] server: o1")
            screen.type("/who")
            lines = await screen.wait_for("* in other (1): ann")
            at = lines.index("[hist] ann> /join other")  # a command stays as typed, once
            assert lines[at:at + 7] == [
                "[hist] ann> /join other", "* joined other (1 here)", "— earlier messages —",
                "[other] server: o1", "— live —", "[other] ann> /who", "* in other (1): ann",
            ], lines
            assert sum("/join other" in line for line in lines) == 1
            screen.type("/join hist")  # already in it: switches, shows nothing again
            await screen.wait_for("* joined hist (2 here)")
            screen.type("second")
            lines = await screen.wait_for("[hist] ann: second ✓")
            assert lines.count("[hist] server: m3") == 1
            assert sum("second" in line for line in lines) == 1
    finally:
        screen.close()


async def test_chat_history_zero_shows_none_and_is_capped_by_the_server(
        start_server: ServerFactory) -> None:
    server = start_server("--history-page-max", "2", "--plain-history", "2")
    for text in ("m1", "m2", "m3"):
        assert (await post(server.url, "capped", {"text": text}))[0] == 201
    capped = Screen(server.url, "--room", "capped", "--history", "50")
    none: Screen | None = None
    try:
        lines = await capped.wait_for("— live —")
        assert lines[1:4] == ["— earlier messages —", "[capped] server: m2",
                              "[capped] server: m3"], lines
        none = Screen(server.url, "--room", "capped", "--history", "0", "--nick", "zed")
        await none.wait_for("* connected as zed; in capped (2 here); /help for commands")
        # What others send cannot drive the terminal: control characters show escaped.
        assert (await post(server.url, "capped", {"text": "live \x1b[2J\rone"}))[0] == 201
        lines = await none.wait_for("[capped] server: live \\x1b[2J\\x0done")
        assert not any("m3" in line or "earlier" in line or "live —" in line
                       for line in lines), lines
    finally:
        capped.close()
        if none is not None:
            none.close()


async def test_chat_rejects_a_negative_history() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "chat", "http://127.0.0.1:1", "--history", "-1",
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 2
    assert "--history: '-1' is negative" in err.decode()


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
