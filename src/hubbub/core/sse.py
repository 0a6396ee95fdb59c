"""Server-Sent Events for a room (`GET /api/rooms/{room}/events`): no I/O.

A stream is one hub connection that joined one room; `SseStream.translate` turns what the
hub sends that connection (the WebSocket protocol's JSON events) into SSE events:

- `message`: `data` is the WebSocket `message` event as it is, `id` is `EPOCH:OFFSET`, so
  a browser's `EventSource` resumes with `Last-Event-ID` after a reconnect.
- `presence`: the WebSocket `presence` event.
- `reset`: the join could not recover (`recovered: false`): `{room, epoch, offset, reason}`
  with the reasons of the WebSocket join, and the stream goes on live from there.
- At the start, an `id` line alone (no event is dispatched for it) that sets the client's
  last event id to where the stream starts, so that a reconnect before the first message
  loses nothing either.

This is the one place that decides what an SSE event looks like.
"""

from __future__ import annotations

from typing import Any

import orjson

from hubbub.core.codes import ErrorCode
from hubbub.core.protocol import Position, ProtocolError

HEARTBEAT = b": heartbeat\n\n"
"""A comment line: keeps proxies from closing an idle stream; `EventSource` ignores it."""

MAX_EPOCH = 64
"""Longest epoch accepted in a position, as in a WebSocket join's `since`."""


def event_id(epoch: str, offset: int) -> str:
    return f"{epoch}:{offset}"


def parse_position(last_event_id: str | None, since: str | None,
                   epoch: str | None) -> Position | None:
    """Where a stream resumes: `Last-Event-ID` (`EPOCH:OFFSET`, sent by `EventSource` on
    reconnect) if given, else `?since=OFFSET&epoch=EPOCH`, else None (live from now).
    Malformed input is a `ProtocolError` (bad_request)."""
    if last_event_id:
        epoch_part, colon, offset_part = last_event_id.strip().rpartition(":")
        if not colon:
            raise _bad("Last-Event-ID must be EPOCH:OFFSET, as the stream's event ids are")
        return Position(_offset(offset_part, "the offset of Last-Event-ID"),
                        _epoch(epoch_part, "the epoch of Last-Event-ID"))
    if since is None and epoch is None:
        return None
    if since is None or epoch is None:
        raise _bad("give since and epoch together (?since=OFFSET&epoch=EPOCH)")
    return Position(_offset(since, "since"), _epoch(epoch, "epoch"))


def _offset(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise _bad(f"{what} must be a whole number of at least 0")
    value = int(text)
    if value > 2**63 - 1:
        raise _bad(f"{what} must be a whole number of at least 0")
    return value


def _epoch(text: str, what: str) -> str:
    if not 0 < len(text) <= MAX_EPOCH or not text.isprintable():
        raise _bad(f"{what} must be 1-{MAX_EPOCH} printable characters")
    return text


def _bad(reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, reason)


class SseStream:
    """What one stream has been told so far; one per SSE connection."""

    __slots__ = ("since",)

    def __init__(self, since: Position | None) -> None:
        self.since = since

    def translate(self, text: str) -> bytes | None:
        """The SSE bytes for one event the hub sent this stream's connection, or None for
        events a stream does not carry (replies to requests it never makes)."""
        event: dict[str, Any] = orjson.loads(text)
        kind = event.get("type")
        if kind == "message":
            return _event("message", text, event_id(event["epoch"], event["offset"]))
        if kind == "presence":
            return _event("presence", text)
        if kind == "joined":
            return self._joined(event["rooms"][0])
        return None

    def _joined(self, entry: dict[str, Any]) -> bytes:
        epoch, offset = entry["epoch"], entry["offset"]
        if not entry.get("recovered", True):
            reset = {"room": entry["room"], "epoch": epoch, "offset": offset,
                     "reason": entry["reason"]}
            return _event("reset", orjson.dumps(reset).decode(), event_id(epoch, offset))
        # Recovered: the replay starts after `since` (offset 0 of any epoch is the start of
        # the room's current one); live: after the room's offset now.
        start = offset if self.since is None else self.since.offset
        return f"id: {event_id(epoch, start)}\n\n".encode()


def _event(name: str, data: str, id_: str | None = None) -> bytes:
    # The JSON has no raw newlines (orjson escapes them), so `data` is one line.
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n".encode()
