"""The HTTP API's JSON error answer, shared by the API and the request guard in front of it;
its body is `hubbub.core.events.error_body`."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from hubbub.core import events


def error_response(status: int, code: str, reason: str, **headers: str) -> web.Response:
    return web.json_response(events.error_body(code, reason), status=status,
                             headers=headers or None, dumps=dumps)


def http_error_response(exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (raised by a handler, or by an embedding app's `authorize`)
    as the API's JSON error: its code is the reason phrase in snake case."""
    return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
