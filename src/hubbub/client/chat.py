"""`hubbub chat URL`: an interactive terminal chat client on prompt_toolkit.

Incoming events print above the input line (`patch_stdout`), so what is being typed is never
mangled. Plain text goes to the current room; `/help` lists the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from collections.abc import Awaitable, Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from hubbub.client.connection import Client, connect
from hubbub.client.errors import ClientError, ConnectionFailed, HubbubError
from hubbub.client.events import (
    Disconnected,
    Event,
    Message,
    PresenceEvent,
    Reconnected,
    Reconnecting,
    RecoveryFailed,
)

HELP = """\
commands:
  /join ROOM      join ROOM (or switch to it) and make it the current room
  /leave [ROOM]   leave ROOM (default: the current room)
  /nick NAME      change your nickname
  /who            who is in the current room
  /history [N]    the last N messages of the current room (default 20)
  /rooms          rooms on the server
  /quit           leave (Ctrl-D works too)
  /help           this text
anything else is sent to the current room"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server URL, e.g. http://127.0.0.1:8080 or ws://HOST:PORT/ws")
    parser.add_argument("--room", default="lobby", help="room to join first")
    parser.add_argument("--nick", help="nickname (default: a guest name from the server)")
    parser.add_argument("--token", help="JWT, when the server requires one")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except ConnectionFailed as exc:
        print(f"hubbub chat: error: {exc}", file=sys.stderr)
        return 1
    except HubbubError as exc:
        print(f"hubbub chat: error: {exc.reason} ({exc.code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def say(line: str) -> None:
    print(line, flush=True)


def render(event: Event) -> str:
    """One line per event, as the terminal shows it."""
    match event:
        case Message():
            return f"[{event.room}] {event.nick}: {event.body}"
        case PresenceEvent(room=room, event="join", member=member):
            return f"* {member.nick} joined {room}"
        case PresenceEvent(room=room, event="leave", member=member):
            return f"* {member.nick} left {room}"
        case PresenceEvent(room=room, member=member, old_nick=old):
            return f"* {old} is now known as {member.nick} (in {room})"
        case Disconnected(reason=reason, will_reconnect=will):
            return f"* disconnected: {reason}" + ("" if will else "; not reconnecting")
        case Reconnecting(attempt=attempt, delay=delay, error=error):
            why = f" (last attempt: {error})" if error else ""
            return f"* reconnecting in {delay:.1f} s… (attempt {attempt}){why}"
        case Reconnected():
            count = event.total_recovered
            return f"* reconnected; recovered {count} message{'' if count == 1 else 's'}"
        case RecoveryFailed(room=room, reason=reason):
            return (f"* could not recover {room} ({reason}): messages may be missing; "
                    "/history reloads it")


class ChatApp:
    def __init__(self, client: Client, room: str) -> None:
        self.client = client
        self.room: str | None = room
        self.commands: dict[str, Callable[[list[str]], Awaitable[bool]]] = {
            "join": self.cmd_join, "leave": self.cmd_leave, "nick": self.cmd_nick,
            "who": self.cmd_who, "history": self.cmd_history, "rooms": self.cmd_rooms,
            "quit": self.cmd_quit, "help": self.cmd_help,
        }

    def prompt(self) -> str:
        return f"[{self.room or '-'}] {self.client.nick}> "

    async def handle(self, line: str) -> bool:
        """Act on one input line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/") or line.startswith("//"):
            text = line[1:] if line.startswith("//") else line
            if self.room is None:
                say("* you are in no room; /join ROOM first")
            else:
                await self.client.send(self.room, text)
            return True
        try:
            name, *args = shlex.split(line[1:])
        except ValueError as exc:
            say(f"* cannot read that command: {exc}")
            return True
        command = self.commands.get(name.lower())
        if command is None:
            say(f"* unknown command /{name}; /help lists them")
            return True
        return await command(args)

    async def cmd_join(self, args: list[str]) -> bool:
        if len(args) != 1:
            say("* usage: /join ROOM")
            return True
        await self.client.join(args[0])
        self.room = args[0]
        say(f"* joined {args[0]} ({len(self.client.presence(args[0]))} here)")
        return True

    async def cmd_leave(self, args: list[str]) -> bool:
        room = args[0] if args else self.room
        if room is None:
            say("* usage: /leave ROOM")
            return True
        await self.client.leave(room)
        say(f"* left {room}")
        if room == self.room:
            self.room = self.client.rooms[0] if self.client.rooms else None
        return True

    async def cmd_nick(self, args: list[str]) -> bool:
        if len(args) != 1:
            say('* usage: /nick NAME (quote a name with spaces: /nick "Ada L")')
            return True
        say(f"* you are now {await self.client.set_nick(args[0])}")
        return True

    async def cmd_who(self, args: list[str]) -> bool:
        if self.room is None:
            say("* you are in no room")
            return True
        names = sorted(m.nick for m in self.client.presence(self.room))
        say(f"* in {self.room} ({len(names)}): {', '.join(names)}")
        return True

    async def cmd_history(self, args: list[str]) -> bool:
        if self.room is None:
            say("* you are in no room")
            return True
        try:
            limit = int(args[0]) if args else 20
        except ValueError:
            say("* usage: /history [N]")
            return True
        limit = max(1, min(limit, int(self.client.limits.get("history_page_max", 100))))
        page = await self.client.history(self.room, limit=limit)
        say(f"* last {len(page.messages)} messages of {self.room}:")
        for message in page.messages:
            say(render(message))
        return True

    async def cmd_rooms(self, args: list[str]) -> bool:
        rooms = await self.client.list_rooms()
        mine = set(self.client.rooms)
        for info in rooms:
            mark = "*" if info.room in mine else " "
            say(f"{mark} {info.room}: {info.members} here, {info.offset} messages")
        if not rooms:
            say("* no rooms yet")
        return True

    async def cmd_quit(self, args: list[str]) -> bool:
        return False

    async def cmd_help(self, args: list[str]) -> bool:
        say(HELP)
        return True


async def _print_events(client: Client) -> None:
    async for event in client:
        say(render(event))


async def _input_loop(app: ChatApp) -> None:
    session: PromptSession[str] = PromptSession()
    while True:
        try:
            line = await session.prompt_async(app.prompt)
        except (EOFError, KeyboardInterrupt):
            return
        try:
            if not await app.handle(line):
                return
        except HubbubError as exc:
            say(f"* error: {exc.reason} ({exc.code})")
        except ClientError as exc:
            say(f"* error: {exc}")


async def _main(args: argparse.Namespace) -> int:
    async with connect(args.url, nick=args.nick, token=args.token, rooms=[args.room]) as client:
        app = ChatApp(client, args.room)
        with patch_stdout():
            say(f"* connected as {client.nick}; in {args.room} "
                f"({len(client.presence(args.room))} here); /help for commands")
            printer = asyncio.create_task(_print_events(client))
            reader = asyncio.create_task(_input_loop(app))
            await asyncio.wait({printer, reader}, return_when=asyncio.FIRST_COMPLETED)
            code = 0
            if printer.done():
                # The connection is gone for good: say why and stop reading input.
                exc = printer.exception()
                if exc is not None:
                    say(f"* connection lost: {exc}")
                    code = 1
            for task in (printer, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub chat", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
