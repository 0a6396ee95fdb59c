"""`hubbub chat URL`: an interactive terminal chat client on prompt_toolkit.

Incoming events print above the input line (`patch_stdout`), so what is being typed is never
mangled. Plain text goes to the current room; `/help` lists the commands.

Joining a room shows its last `--history` messages between dim "earlier messages" and "live"
lines. A line you send is shown once: the prompt line is erased on Enter and the message
appears, marked ✓ as yours, once the server has stored it (on its ack, or on its echo if that
comes first; the other one is then not shown again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
import unicodedata
from collections.abc import Awaitable, Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from hubbub.client.connection import Client, connect
from hubbub.client.errors import ClientError, ConnectionFailed, HubbubError
from hubbub.client.events import (
    Ack,
    Disconnected,
    Event,
    Message,
    PresenceEvent,
    Reconnected,
    Reconnecting,
    RecoveryFailed,
    Reset,
)

HELP = """\
commands:
  /join ROOM      join ROOM (showing its last --history messages, or switch to it)
                  and make it the current room
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
    parser.add_argument("--history", type=_count, default=DEFAULT_HISTORY, metavar="N",
                        help="earlier messages shown on joining a room (0 = none; at most "
                             "the server's history_page_max)")


DEFAULT_HISTORY = 20
OWN_MARK = "✓"
EARLIER = "— earlier messages —"
LIVE = "— live —"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


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
    print(printable(line), flush=True)


def say_dim(line: str) -> None:
    print(f"\x1b[2m{line}\x1b[0m", flush=True)


def printable(text: str) -> str:
    """`text` with control characters (escape sequences, carriage returns...) made visible,
    so that what others send cannot drive this terminal (stdout is patched raw, for
    `say_dim`); newlines and tabs are kept."""
    return "".join(
        f"\\x{ord(ch):02x}" if unicodedata.category(ch) == "Cc" and ch not in "\n\t" else ch
        for ch in text
    )


def render(event: Event) -> str:
    """One line per event, as the terminal shows it."""
    match event:
        case Message(own=True):
            return f"[{event.room}] {event.nick}: {event.body} {OWN_MARK}"
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
        case Reset(room=room):
            return f"* the history of {room} was reset on the server; /history reloads it"


class ChatApp:
    def __init__(self, client: Client, room: str, history: int = DEFAULT_HISTORY) -> None:
        self.client = client
        self.room: str | None = room
        self.history = history
        # Per room, the (epoch, offset) of the latest message shown in order: a message at or
        # below it was shown already (in the earlier messages, or live).
        self._shown: dict[str, tuple[str, int]] = {}
        # Rooms whose earlier messages are being loaded, with the live messages held meanwhile.
        self._loading: dict[str, list[Message]] = {}
        # Own messages shown on their ack, whose echo is not to be shown again.
        self._acked: set[tuple[str, str, int]] = set()
        self.commands: dict[str, Callable[[list[str]], Awaitable[bool]]] = {
            "join": self.cmd_join, "leave": self.cmd_leave, "nick": self.cmd_nick,
            "who": self.cmd_who, "history": self.cmd_history, "rooms": self.cmd_rooms,
            "quit": self.cmd_quit, "help": self.cmd_help,
        }

    def prompt(self) -> str:
        return f"[{self.room or '-'}] {self.client.nick}> "

    # -- what the terminal shows -----------------------------------------------------------

    def show(self, event: Event) -> None:
        """Print one event from the connection, each message once and in its room's order."""
        if not isinstance(event, Message):
            if isinstance(event, Reset):
                # Offsets start again in the new epoch: what was shown says nothing of them.
                self._shown.pop(event.room, None)
                self._acked = {key for key in self._acked if key[0] != event.room}
            say(render(event))
            return
        held = self._loading.get(event.room)
        if held is not None:
            held.append(event)
            return
        key = (event.room, event.epoch, event.offset)
        if key in self._acked:
            self._acked.discard(key)  # shown when its ack came
        elif self._seen(event.room, event.epoch, event.offset):
            return
        else:
            say(render(event))
        self._shown[event.room] = (event.epoch, event.offset)

    def _seen(self, room: str, epoch: str, offset: int) -> bool:
        last = self._shown.get(room)
        return last is not None and last[0] == epoch and offset <= last[1]

    def show_sent(self, room: str, text: str, ack: Ack) -> None:
        """Show a line this terminal sent, now that the server has stored it."""
        if self._seen(room, ack.epoch, ack.offset):
            return  # its echo came first and was shown
        self._acked.add((room, ack.epoch, ack.offset))
        say(render(Message(room, ack.offset, ack.epoch, ack.id, self.client.nick or "you",
                           self.client.connection_id, text, None, ack.ts, own=True)))

    async def show_earlier(self, room: str) -> None:
        """Show the room's last `history` messages, set apart from the live ones that follow
        (those arriving meanwhile are held, then shown unless the page had them)."""
        if self.history <= 0:
            return
        self._loading[room] = []
        try:
            limit = min(self.history, int(self.client.limits.get("history_page_max", 100)))
            try:
                page = await self.client.history(room, limit=limit)
            except HubbubError as exc:
                if exc.code != "room_not_found":  # a room without messages yet
                    say(f"* could not load earlier messages of {room}: {exc.reason} ({exc.code})")
                return
            except ClientError as exc:
                say(f"* could not load earlier messages of {room}: {exc}")
                return
            if page.messages:
                say_dim(EARLIER)
                for message in page.messages:
                    say(render(message))
                say_dim(LIVE)
            self._shown[room] = (page.epoch, page.offset)
        finally:
            for message in self._loading.pop(room):
                self.show(message)

    async def handle(self, line: str) -> bool:
        """Act on one input line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/") or line.startswith("//"):
            text = line[1:] if line.startswith("//") else line
            if self.room is None:
                say(f"* you are in no room; /join ROOM first (not sent: {text})")
                return True
            room = self.room
            try:
                ack = await self.client.send(room, text)
            except HubbubError as exc:
                say(f"* error: {exc.reason} ({exc.code}); not sent: {text}")
            except ClientError as exc:
                say(f"* error: {exc}; {text} may not have been sent")
            else:
                self.show_sent(room, text, ack)
            return True
        say(self.prompt() + line)  # the command as typed, above what it prints
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
        already = args[0] in self.client.rooms
        await self.client.join(args[0])
        self.room = args[0]
        say(f"* joined {args[0]} ({len(self.client.presence(args[0]))} here)")
        if not already:
            await self.show_earlier(args[0])
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


async def _print_events(app: ChatApp) -> None:
    async for event in app.client:
        app.show(event)


async def _input_loop(app: ChatApp) -> None:
    if app.room is not None:
        await app.show_earlier(app.room)
    # The typed line is erased on Enter: a message reappears once stored, a command is
    # echoed by `handle` (so nothing shows twice).
    session: PromptSession[str] = PromptSession(erase_when_done=True)
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
        app = ChatApp(client, args.room, args.history)
        # raw: the dim separators' escape codes pass; what others send is made printable.
        with patch_stdout(raw=True):
            say(f"* connected as {client.nick}; in {args.room} "
                f"({len(client.presence(args.room))} here); /help for commands")
            printer = asyncio.create_task(_print_events(app))
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
