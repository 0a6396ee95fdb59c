"""What the cluster tests do over and over: publish in bulk, read a room up to a marker,
ask a node about its health."""

from __future__ import annotations

import itertools
from collections.abc import Callable
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
