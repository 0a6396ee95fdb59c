"""The exceptions the Python client raises, all under `ClientError`.

- `HubbubError`: the server answered a request with an `error` frame (`.code`, `.reason`).
- `ConnectionFailed`: a connection could not be made: bad URL, unreachable server, handshake
  refused (401, 403, 400, ...); `.status` is the HTTP status of a refusal.
- `ConnectionLost`: an open connection ended and will not come back (close code not worth
  retrying, reconnect off or given up), or it dropped while a request was in flight.
- `RequestTimeout`: no reply (or no reconnection) within the configured timeout.
- `ProtocolViolation`: the server sent something that is not `hubbub.v1`.

`HubbubError` and `ConnectionFailed` are siblings: one is the server saying no, the other is
never having reached a server that could say anything.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp


class ClientError(Exception):
    """Base class of everything the hubbub client raises on purpose."""


class HubbubError(ClientError):
    """The server refused a request; `code` is the protocol's error code (`docs/protocol.md`).

    `code` is a plain string rather than `ErrorCode` so that codes added by newer servers
    still arrive intact. `retry_after` (milliseconds) says when to try again: set for
    `rate_limited` and `unavailable` (the server's message broker or store cannot take the
    publish now; nothing was stored), over WebSocket and HTTP alike (HTTP's `Retry-After`).
    """

    def __init__(self, code: str, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.retry_after = retry_after


class ConnectionFailed(ClientError):
    """A connection attempt failed; `status` is the HTTP status when the handshake was refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def unreachable(where: object, exc: aiohttp.ClientConnectorError) -> ConnectionFailed:
    """The error for a server that could not be reached at all (WebSocket or HTTP)."""
    # aiohttp's strerror is "Connect call failed (...)"; the errno's text says why.
    errno = exc.os_error.errno
    reason = os.strerror(errno) if errno else str(exc.os_error) or str(exc)
    return ConnectionFailed(f"cannot reach {where}: {reason}")


class ConnectionLost(ClientError):
    """The connection is gone: `close_code` is the WebSocket close code when there was one.

    Raised to a request in flight when the connection drops (its fate is unknown: a publish
    may or may not have been stored), and by the event iterator when the client stops for
    good (close code not worth retrying, reconnect disabled or out of attempts).
    """

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class RequestTimeout(ClientError, TimeoutError):
    """A wait hit its timeout: a reply that did not come, or a reconnection that did not."""


class ProtocolViolation(ClientError):
    """The server sent a frame that is not valid `hubbub.v1` (a server bug, or not hubbub)."""
