"""A small bot framework on top of `hubbub.client`.

```python
bot = Bot(nick="nobot", rooms=["lobby"])

@bot.on_message(contains="?")
async def answer(message: Message, ctx: MessageContext) -> None:
    await ctx.reply("No.")

@bot.every(10)
async def ask(ctx: Context) -> None:
    await ctx.broadcast("Ask me a question.")

bot.run("ws://127.0.0.1:8080/ws")
```

Message handlers run one at a time, in message order, so a bot sees the room as it
happened; a handler with long work should start its own task. An exception in a handler
or a periodic task is logged with its traceback and the bot carries on. Reconnection and
exactly-once delivery come from the client library; the bot never sees its own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, overload

from hubbub.client.connection import Client, connect
from hubbub.client.errors import ClientError
from hubbub.client.events import (
    Ack,
    Disconnected,
    Message,
    Reconnected,
    Reconnecting,
    RecoveryFailed,
    Reset,
)
from hubbub.client.policy import ReconnectPolicy

log = logging.getLogger("hubbub.bot")

Predicate = Callable[[Message], bool]
MessageHandler = Callable[[Message, "MessageContext"], Awaitable[None]]
PeriodicTask = Callable[["Context"], Awaitable[None]]


class Context:
    """What a handler can do: send to rooms, reach the underlying `Client`."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def rooms(self) -> tuple[str, ...]:
        return self.client.rooms

    async def send(self, room: str, text: str | None = None, data: Any = None) -> Ack:
        return await self.client.send(room, text, data)

    async def broadcast(self, text: str | None = None, data: Any = None) -> list[Ack]:
        """Send to every room the bot is in."""
        return [await self.client.send(room, text, data) for room in self.client.rooms]


class MessageContext(Context):
    """A `Context` that knows the message being handled."""

    def __init__(self, client: Client, message: Message) -> None:
        super().__init__(client)
        self.message = message

    async def reply(self, text: str | None = None, data: Any = None) -> Ack:
        """Send to the room the message came from."""
        return await self.client.send(self.message.room, text, data)


@dataclass(frozen=True, slots=True)
class _Route:
    handler: MessageHandler
    predicate: Predicate | None
    contains: str | None
    room: str | None

    def matches(self, message: Message) -> bool:
        if self.room is not None and message.room != self.room:
            return False
        if self.contains is not None and (
            message.text is None or self.contains not in message.text
        ):
            return False
        return self.predicate is None or bool(self.predicate(message))


class Bot:
    """A bot: a nickname, the rooms it sits in, message handlers and periodic tasks.

    `client_options` go to `hubbub.client.connect` (e.g. `token=`, `request_timeout=`).
    """

    def __init__(
        self,
        nick: str,
        rooms: Iterable[str] = ("lobby",),
        *,
        reconnect: bool | ReconnectPolicy = True,
        **client_options: Any,
    ) -> None:
        self.nick = nick
        self.rooms = tuple(rooms)
        self.reconnect = reconnect
        self.client_options = client_options
        self._routes: list[_Route] = []
        self._periodic: list[tuple[float, PeriodicTask]] = []
        self._stop: asyncio.Event | None = None
        self.client: Client | None = None

    # -- registration ------------------------------------------------------------------

    @overload
    def on_message(self, predicate: MessageHandler) -> MessageHandler: ...

    @overload
    def on_message(
        self,
        predicate: Predicate | None = None,
        *,
        contains: str | None = None,
        room: str | None = None,
    ) -> Callable[[MessageHandler], MessageHandler]: ...

    def on_message(
        self,
        predicate: Predicate | MessageHandler | None = None,
        *,
        contains: str | None = None,
        room: str | None = None,
    ) -> Any:
        """Register `async def handler(message, ctx)` for messages that match.

        `@bot.on_message` alone matches every message; `contains=` matches a substring of
        the text; a plain (non-async) `predicate(message) -> bool` decides anything else.
        All conditions given must hold.
        """
        if inspect.iscoroutinefunction(predicate):
            # Bare `@bot.on_message` on an async function: it is the handler itself.
            handler: MessageHandler = predicate
            self._routes.append(_Route(handler, None, None, None))
            return handler

        def register(handler: MessageHandler) -> MessageHandler:
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"message handler {handler!r} must be an async function")
            self._routes.append(_Route(handler, predicate, contains, room))  # type: ignore[arg-type]
            return handler

        return register

    def every(self, seconds: float) -> Callable[[PeriodicTask], PeriodicTask]:
        """Register `async def task(ctx)` to run at start and then every `seconds`."""
        if not seconds > 0:
            raise ValueError(f"every() needs a positive interval, not {seconds!r}")

        def register(task: PeriodicTask) -> PeriodicTask:
            if not inspect.iscoroutinefunction(task):
                raise TypeError(f"periodic task {task!r} must be an async function")
            self._periodic.append((seconds, task))
            return task

        return register

    # -- running -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask a running bot to stop (safe to call from a signal handler)."""
        if self._stop is not None:
            self._stop.set()

    async def start(self, url: str) -> None:
        """Run until `stop()`; raises `ConnectionFailed` / `ConnectionLost` if the
        connection cannot be made or is lost for good."""
        self._stop = asyncio.Event()
        async with connect(
            url, nick=self.nick, rooms=self.rooms, reconnect=self.reconnect,
            **self.client_options,
        ) as client:
            self.client = client
            log.info("%s connected to %s, in %s", client.nick, url, ", ".join(client.rooms))
            ctx = Context(client)
            tasks = [
                asyncio.create_task(self._every(seconds, task, ctx), name=f"bot-{task.__name__}")
                for seconds, task in self._periodic
            ]
            consumer = asyncio.create_task(self._consume(client), name="bot-consumer")
            stopper = asyncio.create_task(self._stop.wait())
            try:
                await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if consumer.done():
                    consumer.result()
            finally:
                for task in (*tasks, consumer, stopper):
                    task.cancel()
                for task in (*tasks, consumer, stopper):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self.client = None

    def run(self, url: str) -> int:
        """Run in the foreground until SIGINT/SIGTERM; returns an exit status (0: stopped
        by a signal, 1: could not connect or lost the connection for good)."""
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        try:
            asyncio.run(self._run_until_signal(url))
        except ClientError as exc:
            log.error("bot %s stopped: %s", self.nick, exc)
            return 1
        return 0

    async def _run_until_signal(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.start(url)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info("bot %s stopped", self.nick)

    async def _consume(self, client: Client) -> None:
        async for event in client:
            if isinstance(event, Message):
                if not event.own:
                    await self._dispatch(client, event)
            elif isinstance(event, Disconnected | Reconnecting | Reconnected):
                log.info("%s", event)
            elif isinstance(event, RecoveryFailed):
                log.warning("could not recover %s (%s): messages may be missing",
                            event.room, event.reason)
            elif isinstance(event, Reset):
                # Handlers see only messages, as they come; the bot goes on with the new
                # epoch's, and what it missed is gone with the old one.
                log.warning("the history of %s was reset on the server (%s)",
                            event.room, event.reason)

    async def _dispatch(self, client: Client, message: Message) -> None:
        for route in self._routes:
            try:
                if not route.matches(message):
                    continue
                await route.handler(message, MessageContext(client, message))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "handler %s failed on message %s@%d", route.handler.__name__,
                    message.room, message.offset,
                )

    async def _every(self, seconds: float, task: PeriodicTask, ctx: Context) -> None:
        while True:
            try:
                await task(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic task %s failed", task.__name__)
            await asyncio.sleep(seconds)
