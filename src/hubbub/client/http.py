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
    request_timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> Ack:
    """Publish one message over HTTP; returns the server's ack.

    Raises `HubbubError` (the server's `code`/`reason`, e.g. `unauthorized`), `ConnectionFailed`
    (bad URL, unreachable, no answer within `request_timeout`), `ProtocolViolation` (an answer that
    is not hubbub's), or `ValueError` for a room name the server would refuse anyway.
    """
    if not is_valid_room(room):
        raise ValueError(f"bad room name {room!r}: {ROOM_RULE}")
    if text is None and data is None:
        raise ValueError("a message needs text or data")
    base = http_base(url)
    endpoint = base / "api" / "rooms" / room / "messages"
    body: dict[str, Any] = {}
    if text is not None:
        body["text"] = text
    if data is not None:
        body["data"] = data
    if sender_name is not None:
        body["from"] = sender_name
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
    except aiohttp.ClientConnectorError as exc:
        raise unreachable(base, exc) from exc
    except TimeoutError:
        raise ConnectionFailed(f"no answer from {base} within {request_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ConnectionFailed(f"request to {base} failed: {exc}") from exc
    finally:
        if owned:
            await http.close()
    return _answer(status, raw, endpoint)


def _answer(status: int, raw: bytes, endpoint: yarl.URL) -> Ack:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if status >= 400:
        if isinstance(obj, dict) and isinstance(obj.get("code"), str):
            raise wire.error(obj)
        snippet = raw[:200].decode("utf-8", "replace").strip() or "(empty body)"
        raise HubbubError(f"http_{status}", f"HTTP {status} from {endpoint}: {snippet}")
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"{endpoint} answered {status} without a JSON object")
    return wire.ack(obj)

