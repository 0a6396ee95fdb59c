"""A small Server-Sent Events reader over aiohttp, for tests against a real server.

It parses the stream as the HTML spec says a browser does (fields, comments, blank-line
dispatch, the last event id kept across events), with a timeout on every read so that a
missing event fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from support.wsclient import TIMEOUT


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None
    """The stream's last event id once this event was dispatched (as `EventSource` has it)."""

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReader:
    response: aiohttp.ClientResponse
    last_id: str | None = None
    comments: list[str] = field(default_factory=list)

    async def _line(self, seconds: float) -> str:
        raw = await asyncio.wait_for(self.response.content.readline(), seconds)
        if not raw:
            raise EOFError("the stream ended")
        return raw.decode().rstrip("\r\n")

    async def next(self, seconds: float = TIMEOUT) -> SseEvent:
        """The next dispatched event (comments and id-only blocks are taken in passing)."""
        event, data = "", list[str]()
        while True:
            line = await self._line(seconds)
            if line == "":
                if data:
                    return SseEvent(event or "message", "\n".join(data), self.last_id)
                event = ""
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                self.last_id = value

    async def next_of(self, kind: str, seconds: float = TIMEOUT) -> SseEvent:
        while True:
            event = await self.next(seconds)
            if event.event == kind:
                return event

    async def comment(self, seconds: float = TIMEOUT) -> str:
        """Read until a comment line arrives; returns it."""
        seen = len(self.comments)
        while len(self.comments) == seen:
            line = await self._line(seconds)
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("id:"):
                self.last_id = line[3:].strip()
        return self.comments[-1]

    async def started(self, seconds: float = TIMEOUT) -> str | None:
        """Read the id-only block a stream starts with; returns the last event id."""
        while self.last_id is None:
            line = await self._line(seconds)
            if line.startswith("id:"):
                self.last_id = line[3:].strip()
        return self.last_id


@asynccontextmanager
async def sse_stream(url: str, headers: dict[str, str] | None = None,
                     ) -> AsyncIterator[SseReader]:
    """An open stream with a 200 reply (the test fails otherwise)."""
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Accept": "text/event-stream", **(headers or {})}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield SseReader(response)
