"""ASGI messages in and out: the types, headers, query, replies; shared by the adapter's
HTTP side (`app`) and its sockets (`sockets`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from hubbub.server.api import Reply
from hubbub.server.app import CONTENT_SECURITY_POLICY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


async def respond(send: Send, status: int, body: bytes, content_type: str,
                  extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS, *extra]})
    await send({"type": "http.response.body", "body": body})


async def reply(send: Send, answer: Reply) -> None:
    extra = tuple((name.lower().encode(), value.encode())
                  for name, value in answer.headers.items())
    await respond(send, answer.status, answer.json(), "application/json; charset=utf-8", extra)


def headers_of(scope: Scope) -> CIMultiDictProxy[str]:
    # As aiohttp reads them: UTF-8, bytes that are not kept as surrogates (which the
    # Authorization check refuses with a 400).
    return CIMultiDictProxy(CIMultiDict(
        (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
        for name, value in scope["headers"]))


def query_of(scope: Scope) -> MultiDictProxy[str]:
    text = scope.get("query_string", b"").decode("latin-1")
    return MultiDictProxy(MultiDict(parse_qsl(text, keep_blank_values=True)))


def address_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def local_path(scope: Scope) -> str:
    """The path below where the app is mounted: Starlette's `Mount` keeps the full path in
    `path` and the mount point in `root_path`."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
