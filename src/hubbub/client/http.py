"""The server's HTTP push API from Python: `POST /api/rooms/{room}/messages`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import yarl

from hubbub.client import wire
from hubbub.client.errors import ConnectionFailed, HubbubError, ProtocolViolation, unreachable
from hubbub.client.events import Ack
from hubbub.core.names import ROOM_RULE, is_valid_room

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def http_base(url: str) -> yarl.URL:
    """The server's base URL; a WebSocket URL (`ws://host:port/ws`) maps to its HTTP origin."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        raise ConnectionFailed(f"bad URL {url!r}: {exc}") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise ConnectionFailed(
            f"bad URL {url!r}: expected http://HOST:PORT (or ws://HOST:PORT/ws)"
        )
    path = parsed.path
    if parsed.scheme in ("ws", "wss") and path.endswith("/ws"):
        path = path[: -len("/ws")]
    return parsed.with_scheme(_SCHEMES[parsed.scheme]).with_path(path or "/").with_query(None)


async def publish(
    url: str,
    room: str,
    text: str | None = None,
    data: Any = None,
    *,
    sender_name: str | None = None,
    api_key: str | None = None,
    id: str | None = None,
    request_timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> Ack:
    """Publish one message over HTTP; returns the server's ack.

    `id` (1-64 characters of `A-Z a-z 0-9 _ -`) makes the publish idempotent: calling again
    with the same id within the server's window (5 minutes), after a failure whose outcome
    is unknown, stores the message at most once; the repeat's ack has `duplicate` set.

    Raises `HubbubError` (the server's `code`/`reason`, e.g. `unauthorized`; `retry_after`
    in ms from `Retry-After` for `unavailable` and `rate_limited`), `ConnectionFailed` (bad
    URL, unreachable, no answer within `request_timeout`), `ProtocolViolation` (an answer
    that is not hubbub's), or `ValueError` for a room name or id the server would refuse.
    """
    if not is_valid_room(room):
        raise ValueError(f"bad room name {room!r}: {ROOM_RULE}")
    if text is None and data is None:
        raise ValueError("a message needs text or data")
    wire.message_id(id)
    base = http_base(url)
    endpoint = base / "api" / "rooms" / room / "messages"
    body: dict[str, Any] = {}
    if text is not None:
        body["text"] = text
    if data is not None:
        body["data"] = data
    if sender_name is not None:
        body["from"] = sender_name
    if id is not None:
        body["id"] = id
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    owned = session is None
    http = session or aiohttp.ClientSession()
    try:
        async with asyncio.timeout(request_timeout):
            async with http.post(endpoint, data=orjson.dumps(body), headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _retry_after_ms(resp.headers.get("Retry-After"))
    except aiohttp.ClientConnectorError as exc:
        raise unreachable(base, exc) from exc
    except TimeoutError:
        raise ConnectionFailed(f"no answer from {base} within {request_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ConnectionFailed(f"request to {base} failed: {exc}") from exc
    finally:
        if owned:
            await http.close()
    return _answer(status, raw, endpoint, retry_after)


def _retry_after_ms(header: str | None) -> int | None:
    """`Retry-After` in milliseconds, as `HubbubError.retry_after` has it over WebSocket;
    None when absent or not a number of seconds (hubbub never sends an HTTP date)."""
    if header is None or not header.strip().isdigit():
        return None
    return int(header) * 1000


def _answer(status: int, raw: bytes, endpoint: yarl.URL, retry_after: int | None) -> Ack:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if status >= 400:
        if isinstance(obj, dict) and isinstance(obj.get("code"), str):
            raise wire.error(obj, retry_after=retry_after)
        snippet = raw[:200].decode("utf-8", "replace").strip() or "(empty body)"
        raise HubbubError(f"http_{status}", f"HTTP {status} from {endpoint}: {snippet}",
                          retry_after=retry_after)
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"{endpoint} answered {status} without a JSON object")
    return wire.ack(obj)

