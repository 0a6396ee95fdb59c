"""What the cluster tests do over and over: publish in bulk, read a room up to a marker,
ask a node about its health."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from support.server import ServerProcess
from support.wsclient import TIMEOUT, Event, JsonClient, http_get_json

NodesFactory = Callable[..., list[ServerProcess]]
"""The `nodes` fixture: `nodes(3)`, `nodes(2, "--presence-ttl", "3", redis=own_redis)`."""

_refs = itertools.count(1)


async def publish_all(client: JsonClient, room: str, texts: list[str], *,
                      ids: list[str] | None = None, seconds: float = TIMEOUT) -> list[Event]:
    """Send every publish at once (pipelined), then return their replies in send order:
    acks, or errors. `ids` gives each publish its idempotency id."""
    refs = []
    for index, text in enumerate(texts):
        ref = f"c{next(_refs)}"
        refs.append(ref)
        frame: dict[str, Any] = {"type": "publish", "room": room, "text": text, "ref": ref}
        if ids is not None:
            frame["id"] = ids[index]
        await client.send(frame)
    return [await client.wait_for(_reply_to(ref), seconds) for ref in refs]


def _reply_to(ref: str) -> Callable[[Event], bool]:
    return lambda event: event.get("ref") == ref


def acked(replies: list[Event]) -> list[Event]:
    """The replies, each asserted to be an ack."""
    for reply in replies:
        assert reply["type"] == "ack", reply
    return replies


async def until_marker(client: JsonClient, room: str, marker: str,
                       seconds: float = TIMEOUT) -> list[Event]:
    """The room's messages as they arrive, up to (without) the one whose text is `marker`.
    Publishing a marker after a batch and reading up to it shows that nothing of the batch
    came twice: a repeat would have to arrive before the marker, which is later in order."""
    got: list[Event] = []
    while True:
        event = await client.wait_for(
            lambda e: e["type"] == "message" and e["room"] == room, seconds)
        if event.get("text") == marker:
            return got
        got.append(event)


def offsets(messages: list[Event]) -> list[int]:
    return [m["offset"] for m in messages]


async def health(node: ServerProcess) -> tuple[Event, int]:
    """`/healthz`'s body, and `/readyz`'s status code."""
    status, body = await http_get_json(node.url + "/healthz")
    assert status == 200, body
    ready, _ = await http_get_json(node.url + "/readyz")
    return body, ready


@dataclass
class OutagePublisher:
    """Publishes into one room without pause, `window` at a time, each message with its own
    idempotency id, and records every reply: an ack, or a refusal (which must be
    `unavailable`). It stops by itself after `limit` publishes, so a test that forgets to
    stop it stays bounded."""

    client: JsonClient
    room: str
    window: int = 4
    limit: int = 3_000
    sent: list[str] = field(default_factory=list)
    acks: dict[str, Event] = field(default_factory=dict)
    refused: dict[str, Event] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    last: Event | None = None
    task: asyncio.Task[None] | None = None
    stopped: bool = False

    async def run(self) -> None:
        waiting: dict[str, str] = {}  # ref -> id
        while len(self.sent) < self.limit or waiting:
            while len(waiting) < self.window and len(self.sent) < self.limit:
                message_id = f"o{len(self.sent)}"
                ref = f"c{next(_refs)}"
                waiting[ref] = message_id
                self.sent.append(message_id)
                await self.client.send({"type": "publish", "room": self.room, "ref": ref,
                                        "text": message_id, "id": message_id})
            # TIMEOUT is the client's own, generous limit: a publish that Redis cannot take
            # must be refused well before it (the issue: within --redis-timeout).
            event = await self.client.recv(TIMEOUT)
            message_id = waiting.pop(event.get("ref", ""), "")
            if not message_id:
                continue  # the room's messages
            self.last = event
            if event["type"] == "ack":
                self.acks[message_id] = event
            else:
                assert event["type"] == "error" and event["code"] == "unavailable", event
                self.refused[message_id] = event
                await asyncio.sleep(0.02)  # a refused client backs off a little
            self.progress.set()
            self.progress.clear()
        self.progress.set()  # a waiter sees that it stopped

    def stop(self) -> None:
        """Send no more; `run` returns once every publish sent has its reply."""
        self.stopped = True
        self.limit = len(self.sent)

    async def stopping(self) -> None:
        """`stop`, and wait (bounded) until every publish sent has its reply."""
        self.stop()
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), 2 * TIMEOUT)

    async def until(self, done: Callable[[], bool], seconds: float = 15.0) -> None:
        """Wait (at most `seconds`) until `done()` holds; fail at once if `run` failed."""
        try:
            async with asyncio.timeout(seconds):
                while not done():
                    if self.task is not None and self.task.done():
                        self.task.result()  # its exception, if it failed
                        raise AssertionError(f"the publisher stopped: {len(self.sent)} sent, "
                                             f"{len(self.acks)} acked, {len(self.refused)} "
                                             f"refused, limit {self.limit}")
                    await self.progress.wait()
        except TimeoutError:
            raise AssertionError(f"no progress in {seconds} s: {len(self.sent)} sent, "
                                 f"{len(self.acks)} acked, {len(self.refused)} refused, "
                                 f"last reply {self.last!r}") from None

@asynccontextmanager
async def publishing_through(client: JsonClient, room: str,
                             **options: Any) -> AsyncIterator[OutagePublisher]:
    """An `OutagePublisher` running for the block. At its end the publisher stops (if the
    block did not stop it) and every publish it sent is answered; it fails the test if it
    failed, or ran out of publishes before the block ended."""
    publisher = OutagePublisher(client, room, **options)
    task = publisher.task = asyncio.create_task(publisher.run())
    try:
        yield publisher
        assert publisher.stopped or not task.done(), f"the publisher stopped early: {task}"
        await publisher.stopping()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
