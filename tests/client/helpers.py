"""Shared helpers for the client tests: wait for typed events with a bound."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import aiohttp

from hubbub.client import Client, Event, Message

E = TypeVar("E")
"""The `start_server` fixture of tests/conftest.py."""

WAIT = 10.0
"""Upper bound on any single wait in these tests: a failure, never a measurement."""


async def next_of(client: Client, kind: type[E], *, within: float = WAIT) -> E:
    """The next event of type `kind`, skipping others."""
    async with asyncio.timeout(within):
        async for event in client:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"client stopped before a {kind.__name__}")


async def messages(client: Client, count: int, *, within: float = WAIT) -> list[Message]:
    found: list[Message] = []
    async with asyncio.timeout(within):
        while len(found) < count:
            found.append(await next_of(client, Message, within=within))
    return found


async def drain(client: Client, until: type[Any]) -> list[Event]:
    """Every event up to and including the first `until`."""
    seen: list[Event] = []
    async with asyncio.timeout(WAIT):
        async for event in client:
            seen.append(event)
            if isinstance(event, until):
                return seen
    raise AssertionError(f"client stopped before a {until.__name__}: {seen}")


async def post(base: str, room: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A raw HTTP publish, independent of the client library under test."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/api/rooms/{room}/messages", json=body, headers=headers or {}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def next_from(client: Client, nick: str, *, within: float = WAIT) -> Message:
    """The next message sent under `nick`, skipping everything else."""
    async with asyncio.timeout(within):
        while True:
            msg = await next_of(client, Message)
            if msg.nick == nick:
                return msg
